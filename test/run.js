#!/usr/bin/env node
// `npm test`: runs jest with its normal output, then prints the plain summary line
// "N passed, N failed" that CI reads, and exits with jest's status. Extra arguments go to jest.
'use strict';
const { spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const out = path.join(os.tmpdir(), `packptq-jest-${process.pid}.json`);
const jest = require.resolve('jest/bin/jest');
const r = spawnSync(process.execPath, [jest, '--json', `--outputFile=${out}`, ...process.argv.slice(2)], {
  stdio: 'inherit',
  cwd: path.join(__dirname, '..'),
});
let passed = 0, failed = 0;
try {
  const res = JSON.parse(fs.readFileSync(out, 'utf8'));
  passed = res.numPassedTests;
  failed = res.numFailedTests + res.numRuntimeErrorTestSuites;
  fs.unlinkSync(out);
} catch (e) {
  failed = Math.max(failed, 1);
  console.error(`could not read jest results: ${e.message}`);
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(r.status === 0 && failed === 0 ? 0 : 1);
