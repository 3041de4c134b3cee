#!/usr/bin/env node
// Sums every test report in a folder and prints ONE plain line: "N passed, N failed".
// Jest reports (--json) count tests; a suite that failed to run at all counts as one failure.
// Other tiers write {"passed": N, "failed": N} themselves.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const dir = process.argv[2] || 'reports';
let passed = 0;
let failed = 0;
let files = [];
try {
  files = fs.readdirSync(dir).filter((f) => f.endsWith('.json')).sort();
} catch {
  // no reports: nothing ran
}
for (const f of files) {
  try {
    const r = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8'));
    if (typeof r.numPassedTests === 'number') {
      passed += r.numPassedTests;
      failed += r.numFailedTests + (r.numRuntimeErrorTestSuites || 0);
    } else {
      passed += Number(r.passed) || 0;
      failed += Number(r.failed) || 0;
    }
    console.error(`  ${f}: ${typeof r.numPassedTests === 'number' ? `${r.numPassedTests} passed, ${r.numFailedTests + (r.numRuntimeErrorTestSuites || 0)} failed` : `${r.passed} passed, ${r.failed} failed`}`);
  } catch (e) {
    failed += 1;
    console.error(`  ${f}: unreadable report (${e.message}), counted as a failure`);
  }
}
console.log(`${passed} passed, ${failed} failed`);
