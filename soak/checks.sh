#!/usr/bin/env bash
# Run by scripts/test-compose.sh (as CAMRELAY_STACK_CHECKS, set by soak/run.sh) once the soak's stack
# is up: the harness itself. Usage: soak/checks.sh REPORT.json
set -euo pipefail
cd "$(dirname "$0")/.."
exec node -r ./bench/register.js soak/src/main.ts --report-json "$1"
