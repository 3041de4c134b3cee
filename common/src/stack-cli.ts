#!/usr/bin/env node
/** stack-config with the key-name check only (the tunnel-agent's image): see stack-cli-main.ts. */
import { stackCli } from './stack-cli-main';

void stackCli();
