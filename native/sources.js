// Lists the C++ sources of each binding.gyp target: files named *_avx2.cpp / *_avx512.cpp belong to
// the ISA libraries, every other .cpp under native/ to the addon itself.
const fs = require('fs');
const path = require('path');

function walk(dir) {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? walk(p) : [p];
  });
}

function sources(kind) {
  const all = walk(path.join(__dirname)).filter((f) => f.endsWith('.cpp')).sort();
  const rel = all.map((f) => path.relative(path.join(__dirname, '..'), f));
  if (kind === 'avx2') return rel.filter((f) => f.endsWith('_avx2.cpp'));
  if (kind === 'avx512') return rel.filter((f) => f.endsWith('_avx512.cpp'));
  return rel.filter((f) => !f.endsWith('_avx2.cpp') && !f.endsWith('_avx512.cpp'));
}

module.exports = {
  sources,
  print(kind) { process.stdout.write(sources(kind).join(' ')); },
};
