#!/usr/bin/env node
/**
 * stack-config in the relay's image (`make up-vps`, `make reload`, `make demo`): the camera list checked
 * exactly as the relay will read it, then the compose file for the stack (common/src/stack-cli-main.ts).
 */
import { stackCli } from '@camrelay/common';
import { RELAY_LIST_CHECKS } from './config';

void stackCli(RELAY_LIST_CHECKS);
