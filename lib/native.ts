/**
 * Loads the compiled addon. The path is resolved from the package root so it works both from
 * dist/lib (compiled) and lib/ (ts-jest), and PACKPTQ_ADDON may point at another build (benchmarks
 * comparing builds).
 */
import * as fs from 'fs';
import * as path from 'path';
import { NativeError } from './errors';

function packageRoot(): string {
  let dir = __dirname;
  while (!fs.existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new NativeError('cannot find the packptq package root from ' + __dirname);
    dir = up;
  }
  return dir;
}

let cached: any;

/** The raw addon module. Typed loosely here; lib/engine wraps it with strict types. */
export function native(): any {
  if (cached) return cached;
  const file = process.env.PACKPTQ_ADDON ?? path.join(packageRoot(), 'build', 'Release', 'packptq.node');
  if (!fs.existsSync(file)) {
    throw new NativeError(`the native addon is not built (${file} is missing): run "npm install" or "npm run build:native"`);
  }
  cached = require(file);
  return cached;
}
