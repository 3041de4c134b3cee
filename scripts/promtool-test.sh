#!/usr/bin/env bash
# The promtool tier of `make test` (and `make test-promtool`):
#   promtool check config prometheus/prometheus.yml     (also loads the rule files it names)
#   promtool check rules  prometheus/rules/*.yml
#   promtool test rules   prometheus/rule-tests/*.yml   (unit tests: every alert fires and stays quiet)
# Each file checked or tested counts as one test. Usage: scripts/promtool-test.sh [REPORT.json]
# writes {"passed":N,"failed":N} to REPORT.json when given; exits non-zero when anything failed.
# Without promtool (Debian package `prometheus`): SKIPPED TIER and exit 0, unless REQUIRE_ALL=1.
set -uo pipefail
cd "$(dirname "$0")/.."

report=${1:-}
passed=0
failed=0

write_report() {
  if [ -n "$report" ]; then
    mkdir -p "$(dirname "$report")"
    printf '{"passed":%d,"failed":%d}\n' "$passed" "$failed" >"$report"
  fi
}

PROMTOOL=${PROMTOOL:-$(command -v promtool || true)}
if [ -z "$PROMTOOL" ] || [ ! -x "$PROMTOOL" ]; then
  msg="promtool is not installed (Debian package: prometheus): the promtool tier cannot run"
  if [ "${REQUIRE_ALL:-}" = "1" ]; then
    echo "FAILED TIER: $msg (REQUIRE_ALL=1)" >&2
    failed=1
    write_report
    exit 1
  fi
  echo "SKIPPED TIER: $msg. Install it (see .ci/run) or set REQUIRE_ALL=1 to make this fatal." >&2
  write_report
  exit 0
fi

# run NAME CMD...: one test; prints promtool's output only when it fails.
run() {
  local name=$1 out
  shift
  if out=$("$@" 2>&1); then
    passed=$((passed + 1))
    echo "  ok    $name"
  else
    failed=$((failed + 1))
    echo "  FAIL  $name"
    printf '%s\n' "$out" | sed 's/^/        /'
  fi
}

echo "promtool tier ($("$PROMTOOL" --version 2>&1 | head -n1))"
run "check config prometheus/prometheus.yml" "$PROMTOOL" check config prometheus/prometheus.yml

shopt -s nullglob
rules=(prometheus/rules/*.yml)
tests=(prometheus/rule-tests/*.yml)
if [ ${#rules[@]} -eq 0 ]; then
  echo "  FAIL  no rule files in prometheus/rules"
  failed=$((failed + 1))
fi
if [ ${#tests[@]} -eq 0 ]; then
  echo "  FAIL  no unit tests in prometheus/rule-tests"
  failed=$((failed + 1))
fi
for f in "${rules[@]}"; do
  run "check rules $f" "$PROMTOOL" check rules "$f"
done
for f in "${tests[@]}"; do
  run "test rules $f" "$PROMTOOL" test rules "$f"
done

echo "promtool tier: $passed passed, $failed failed"
write_report
[ "$failed" -eq 0 ]
