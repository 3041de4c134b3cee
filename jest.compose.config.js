/**
 * The compose integration test (`make test-compose` → scripts/test-compose.sh, which brings the demo
 * stack up first and tears it down afterwards). Not part of `make test`: it needs a Docker engine.
 */
module.exports = {
  rootDir: __dirname,
  testEnvironment: 'node',
  transform: { '^.+\\.ts$': ['ts-jest', { isolatedModules: true, tsconfig: '<rootDir>/tsconfig.test.json' }] },
  moduleNameMapper: { '^@camrelay/common$': '<rootDir>/common/src/index.ts' },
  testMatch: ['<rootDir>/test/compose/**/*.test.ts'],
  testTimeout: 180_000,
  slowTestThreshold: 120,
  maxWorkers: 1,
};
