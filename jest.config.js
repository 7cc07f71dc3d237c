/** Tests are TypeScript, run through ts-jest (CommonJS). The custom environment shares the
 * typed-array constructors with the outer realm so onnxruntime-node accepts our tensors. */
module.exports = {
  preset: 'ts-jest',
  testEnvironment: '<rootDir>/test/helpers/node-environment.js',
  testMatch: ['<rootDir>/test/**/*.test.ts'],
  testTimeout: 120000,
  globalSetup: '<rootDir>/test/helpers/build-once.js',
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: { isolatedModules: true } }] },
};
