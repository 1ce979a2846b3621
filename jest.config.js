/** @type {import('jest').Config} */
module.exports = {
  preset: 'ts-jest',
  // node, plus the host's typed arrays shared with the test realm (onnxruntime-node checks them)
  testEnvironment: '<rootDir>/test/ort-environment.js',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  testTimeout: 120000,
  maxWorkers: 2,
  setupFiles: ['<rootDir>/test/setup-env.js'],
  transform: { '^.+\\.ts$': ['ts-jest', { isolatedModules: true }] },
};
