/**
 * Jest environment for tests that run onnxruntime-node: jest's default node environment gives each
 * test file its own realm, so a Float32Array made by the code under test is not an instance of the
 * host realm's Float32Array that onnxruntime-node checks ("A float32 tensor's data must be type of
 * function Float32Array()"). Production (one realm) never sees this. Sharing the host's typed-array
 * constructors with the test realm makes the test run what production runs.
 * Set for every test in jest.config.js (testEnvironment).
 */
const { TestEnvironment } = require('jest-environment-node');

class OrtEnvironment extends TestEnvironment {
  constructor(config, context) {
    super(config, context);
    for (const name of ['Float32Array', 'Float64Array', 'Int8Array', 'Uint8Array', 'Int16Array', 'Uint16Array', 'Int32Array', 'Uint32Array', 'BigInt64Array', 'BigUint64Array']) {
      this.global[name] = globalThis[name];
    }
  }
}

module.exports = OrtEnvironment;
