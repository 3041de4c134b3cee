/**
 * One jest run covers every tier except the compose test (jest.compose.config.js):
 *   unit         <pkg>/test/unit/**        in-process, no child processes
 *   integration  <pkg>/test/integration/** real sockets, child processes (fake camera, relay, sshd)
 *   browser      relay/test/browser/**     real headless Chromium (Debian chromium)
 * Tiers that need a system component (sshd, chromium, promtool) skip with a loud message when it is
 * missing, unless REQUIRE_ALL=1 (set by .ci/run), where a missing component fails the run.
 */
const base = {
  testEnvironment: 'node',
  transform: { '^.+\\.ts$': ['ts-jest', { isolatedModules: true, tsconfig: '<rootDir>/tsconfig.test.json' }] },
  moduleNameMapper: { '^@camrelay/common$': '<rootDir>/common/src/index.ts' },
  rootDir: __dirname,
};

module.exports = {
  projects: [
    { ...base, displayName: 'unit', testMatch: ['<rootDir>/*/test/unit/**/*.test.ts'] },
    { ...base, displayName: 'integration', testMatch: ['<rootDir>/*/test/integration/**/*.test.ts'], slowTestThreshold: 30 },
    { ...base, displayName: 'browser', testMatch: ['<rootDir>/*/test/browser/**/*.test.ts'], slowTestThreshold: 60 },
  ],
};
