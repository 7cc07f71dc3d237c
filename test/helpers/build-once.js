// jest globalSetup: the CLI tests run bin/packptq.js, which loads the compiled dist/; compile the
// TypeScript once so they never test a stale build.
const { execFileSync } = require('child_process');
const path = require('path');

module.exports = async () => {
  const root = path.join(__dirname, '..', '..');
  execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', root], { stdio: 'inherit', cwd: root });
};
