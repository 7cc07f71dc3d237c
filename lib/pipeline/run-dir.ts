/**
 * The run directory (`--run-dir`, QuantizeOptions.runDir): a quantize run's state on disk, so that
 * a killed run resumes where it stopped and ends with exactly the result of an uninterrupted run.
 *
 *   manifest.json        what determines the result: a digest of the canonical model, a digest of the
 *                        calibration samples, every option that changes a bit (defaults resolved).
 *                        Written first; a run with a different manifest is refused.
 *   pack.ckpt            Pack-PTQ's scores, packs and bits (packptq only).
 *   calibration.ckpt     the quantizers reconstruction starts from, and the names of its units.
 *   units/NNNN.ckpt      after unit NNNN: the quantizers that unit finished (AdaRound hard codes,
 *                        learned activation steps) and its report.
 *   final.ckpt           the quantized model the run ended with (what `packptq export` writes).
 *
 * Every file is written under a temporary name and renamed into place, so a kill at any moment
 * leaves only whole files; unit checkpoints are trusted as a prefix (0, 1, ... up to the first gap).
 *
 * .ckpt format (little-endian): the 8 bytes "PKPTQCK1", a uint32 header length n, n bytes of
 * UTF-8 JSON, zero padding to a multiple of 8, then the raw arrays. In the JSON every typed array
 * is replaced by {"$array": type, "stored": type, "offset": bytes from the data start, "length":
 * elements} (int32 codes are stored as int8/int16 when they fit) and every non-finite number by
 * {"$number": "NaN" | "Infinity" | "-Infinity"}; everything else is plain JSON.
 */
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { BadDataError, BadOptionError, IoError } from '../errors';
import { Subset } from '../data/subset';
import { Graph } from '../graph/ir';
import { QuantizedGraph } from '../quant/types';
import { UnitReport } from '../recon/reconstruct';
import type { PackReport, QuantizeOptions } from './quantize';

export const MANIFEST_FORMAT = 'packptq-run-dir/1';
const MAGIC = Buffer.from('PKPTQCK1', 'latin1');

export interface RunManifest {
  format: string;
  model: { file: string; digest: string };
  calib: { source: string; samples: number; digest: string };
  /** The options that determine the result, defaults resolved; null where the method ignores one. */
  options: Record<string, unknown>;
}

/** The command-line spelling of each manifest option, for messages. */
const OPTION_NAMES: Record<string, string> = {
  method: '--method', wBits: '--w-bits', aBits: '--a-bits', firstLast: '--first-last', layerBits: '--layer-bits',
  exclude: '--exclude', weightGranularity: '--per-tensor', layerWidths: 'layerWidths', split: '--split', blockPrefixes: '--blocks',
  init: '--init', percentile: '--percentile', calibSize: '--calib-size', actCalibSize: '--act-calib-size', actSearch: '--act-search',
  seed: '--seed', batch: '--batch', threads: '--threads', iters: '--iters', lambda: '--lambda', dropProb: '--drop-prob',
  lrRound: '--lr-round', lrAct: '--lr-act', cacheDtype: '--cache', inputQuantProb: 'inputQuantProb', scoreForm: '--score-form',
  mixedPrecision: '--mixed-precision', budgetBits: '--budget-bits', budgetActBits: '--budget-bits (activations)', mpRule: '--mp-rule',
};

/** sha256 of everything in the canonical graph that computation depends on. */
/** `--equalize`'s scales, written beside the checkpoints so `export --run-dir` can rebuild the rescaled graph. */
export const EQUALIZATION_FILE = 'equalization.json';

export function graphDigest(g: Graph): string {
  const h = createHash('sha256');
  const replacer = (_k: string, v: unknown) => (ArrayBuffer.isView(v) ? Array.from(v as unknown as ArrayLike<number>) : typeof v === 'bigint' ? String(v) : v);
  h.update(JSON.stringify({ opset: g.opset, nodes: g.nodes, inputs: g.inputs, outputs: g.outputs }, replacer));
  for (const [name, t] of g.initializers) {
    h.update(JSON.stringify([name, t.dtype, t.dims]));
    h.update(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  }
  return h.digest('hex');
}

/** sha256 of the calibration subset as the model sees it (after normalisation). */
export function subsetDigest(s: Subset): string {
  const h = createHash('sha256');
  h.update(JSON.stringify(s.ds.sampleShape));
  for (const i of s.indices) {
    const x = s.ds.batch(i, 1);
    h.update(new Uint8Array(x.buffer, x.byteOffset, x.byteLength));
  }
  return h.digest('hex');
}

/**
 * The options of a quantize run that determine its result, with quantize()'s defaults filled in
 * (so omitting an option and giving its default agree). `recon` holds the reconstruction defaults
 * of the method (METHOD_SETTINGS), passed in to keep this file free of a cycle at load time.
 */
export function resultOptions(o: QuantizeOptions, recon?: { dropProb: number; inputQuantProb: number }): Record<string, unknown> {
  const method = o.method ?? 'rtn';
  const init = o.init ?? 'mse';
  const packptq = method === 'packptq';
  const mp = packptq && !!o.mixedPrecision;
  return {
    method, wBits: o.wBits, aBits: o.aBits, firstLast: o.firstLast ?? '8bit', layerBits: o.layerBits ?? [], exclude: o.exclude ?? [],
    weightGranularity: o.weightGranularity ?? 'channel',
    layerWidths: o.layerWidths ? [...o.layerWidths].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)) : null,
    split: !!o.split, blockPrefixes: o.blockPrefixes ?? null,
    init, percentile: init === 'percentile' ? o.percentile ?? null : null,
    calibSize: o.calibSize ?? 1024, actCalibSize: o.actCalibSize ?? null, actSearch: o.actSearch ?? 'histogram',
    seed: o.seed ?? 0, batch: o.batch ?? 32, threads: o.threads ?? 1,
    iters: recon ? o.iters ?? 20000 : null, lambda: recon ? o.lambda ?? 0.01 : null,
    dropProb: recon ? o.dropProb ?? recon.dropProb : null, inputQuantProb: recon ? o.inputQuantProb ?? recon.inputQuantProb : null,
    lrRound: recon ? o.lrRound ?? 3e-3 : null, lrAct: recon ? o.lrAct ?? 4e-5 : null,
    // fp16 rounds the cached unit inputs and targets, so it changes the result.
    cacheDtype: recon ? o.cacheDtype ?? 'float32' : null,
    scoreForm: packptq ? o.scoreForm ?? 'paper' : null, mixedPrecision: mp,
    budgetBits: mp ? o.budgetBits ?? null : null, budgetActBits: mp ? o.budgetActBits ?? null : null, mpRule: mp ? o.mpRule ?? 'exact' : null,
  };
}

// ---- the .ckpt container ----

type ArrayType = 'float32' | 'float64' | 'int32' | 'int16' | 'int8' | 'uint8';
const CTORS = { float32: Float32Array, float64: Float64Array, int32: Int32Array, int16: Int16Array, int8: Int8Array, uint8: Uint8Array };

function arrayType(a: ArrayBufferView): ArrayType {
  for (const [t, C] of Object.entries(CTORS)) if (a instanceof C) return t as ArrayType;
  throw new BadOptionError(`cannot store a ${a.constructor.name} in a run directory checkpoint`);
}

/** Integer arrays in the narrowest type holding their values: hard codes are small. */
function storedType(a: ArrayBufferView, t: ArrayType): ArrayType {
  if (t !== 'int32') return t;
  let lo = 0, hi = 0;
  for (const v of a as Int32Array) { if (v < lo) lo = v; if (v > hi) hi = v; }
  return lo >= -128 && hi <= 127 ? 'int8' : lo >= -32768 && hi <= 32767 ? 'int16' : 'int32';
}

export function encodeCheckpoint(value: unknown): Buffer {
  const chunks: Buffer[] = [];
  let offset = 0;
  const header = JSON.stringify(value, function (this: unknown, _k, v) {
    if (typeof v === 'number' && !Number.isFinite(v)) return { $number: String(v) };
    if (!ArrayBuffer.isView(v)) return v;
    const type = arrayType(v);
    const stored = storedType(v, type);
    const data = stored === type ? v : (CTORS[stored] as unknown as { from(a: ArrayLike<number>): ArrayBufferView }).from(v as unknown as ArrayLike<number>);
    const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const ref = { $array: type, stored, offset, length: (v as unknown as ArrayLike<number>).length };
    chunks.push(bytes);
    const pad = (8 - (bytes.length % 8)) % 8;
    if (pad) chunks.push(Buffer.alloc(pad));
    offset += bytes.length + pad;
    return ref;
  });
  const h = Buffer.from(header, 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32LE(h.length);
  const headPad = Buffer.alloc((8 - ((MAGIC.length + 4 + h.length) % 8)) % 8);
  return Buffer.concat([MAGIC, len, h, headPad, ...chunks]);
}

export function decodeCheckpoint(bytes: Buffer, file: string): unknown {
  if (bytes.length < 12 || !bytes.subarray(0, 8).equals(MAGIC)) throw new BadDataError(`${file}: not a packptq checkpoint (no PKPTQCK1 header)`);
  const n = bytes.readUInt32LE(8);
  if (12 + n > bytes.length) throw new BadDataError(`${file}: truncated checkpoint header`);
  const start = 12 + n + ((8 - ((12 + n) % 8)) % 8);
  return JSON.parse(bytes.subarray(12, 12 + n).toString('utf8'), (_k, v) => {
    if (v && typeof v === 'object' && typeof v.$number === 'string') return Number(v.$number);
    if (!v || typeof v !== 'object' || typeof v.$array !== 'string') return v;
    const C = CTORS[v.stored as ArrayType], Out = CTORS[v.$array as ArrayType];
    if (!C || !Out) throw new BadDataError(`${file}: unknown array type ${v.stored}`);
    const end = start + v.offset + v.length * C.BYTES_PER_ELEMENT;
    if (end > bytes.length) throw new BadDataError(`${file}: truncated checkpoint data`);
    // Copy into a fresh, aligned buffer: the file's bytes are not guaranteed aligned in memory.
    const copy = new Uint8Array(v.length * C.BYTES_PER_ELEMENT);
    copy.set(bytes.subarray(start + v.offset, end));
    const stored = new C(copy.buffer);
    return C === Out ? stored : Out.from(stored as unknown as ArrayLike<number>);
  });
}

/** Writes `bytes` to `file` through a temporary file, fsync and rename: whole or absent. */
export function writeFileAtomic(file: string, bytes: Uint8Array | string): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  let fd: number | undefined;
  try {
    fd = fs.openSync(tmp, 'w');
    fs.writeFileSync(fd, bytes);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, file);
  } catch (err) {
    if (fd !== undefined) try { fs.closeSync(fd); } catch { /* already failing */ }
    try { fs.rmSync(tmp, { force: true }); } catch { /* never created */ }
    throw new IoError(`cannot write ${file}: ${(err as Error).message}`, { cause: err });
  }
}

// ---- the directory ----

export interface UnitCheckpoint {
  index: number;
  unit: string;
  /** The quantizers this unit finished (empty for a unit with nothing to train). */
  finished: QuantizedGraph;
  report?: UnitReport;
}

export interface Restored {
  /** The calibration quantizers with every restored unit's finished quantizers in place. */
  quantized: QuantizedGraph;
  /** Units restored (a prefix of the unit list): reconstruction resumes at this index. */
  done: number;
  reports: UnitReport[];
}

const unitFile = (k: number) => path.join('units', `${String(k).padStart(4, '0')}.ckpt`);
const OWN_FILES = ['manifest.json', 'pack.ckpt', 'calibration.ckpt', 'final.ckpt', EQUALIZATION_FILE];

export class RunDir {
  private constructor(readonly dir: string, readonly manifest: RunManifest) {}

  /**
   * Opens `dir` for a run with `manifest`: creates it (or fills an empty folder), resumes it when its
   * manifest matches, refuses it with a BadOptionError naming the first differing option otherwise
   * (unless `overwrite`, which deletes the run dir's own files and starts afresh).
   */
  static open(dir: string, manifest: RunManifest, opts: { overwrite?: boolean } = {}): { run: RunDir; resumed: boolean } {
    const file = path.join(dir, 'manifest.json');
    let entries: string[] = [];
    try {
      if (fs.existsSync(dir) && !fs.statSync(dir).isDirectory()) throw new BadOptionError(`--run-dir ${dir} is not a directory`);
      fs.mkdirSync(path.join(dir, 'units'), { recursive: true });
      entries = fs.readdirSync(dir).filter((e) => e !== 'units' && !/^\..*\.tmp$/.test(e));
    } catch (err) {
      if (err instanceof BadOptionError) throw err;
      throw new IoError(`cannot use --run-dir ${dir}: ${(err as Error).message}`, { cause: err });
    }
    if (entries.length && !entries.includes('manifest.json'))
      throw new BadOptionError(`--run-dir ${dir} holds files but no manifest.json: it is not a packptq run directory (give a new or empty one)`);
    if (entries.includes('manifest.json')) {
      const old = RunDir.read(dir).manifest;
      const diff = manifestDifference(old, manifest);
      if (!diff) {
        removeStaleTemporaries(dir);
        return { run: new RunDir(dir, manifest), resumed: true };
      }
      if (!opts.overwrite) throw new BadOptionError(`--run-dir ${dir} belongs to a different run: ${diff}. Use another --run-dir, or --overwrite-run-dir to discard it`);
      for (const f of OWN_FILES) fs.rmSync(path.join(dir, f), { force: true });
      for (const f of fs.readdirSync(path.join(dir, 'units'))) if (/^\d{4}\.ckpt$/.test(f)) fs.rmSync(path.join(dir, 'units', f), { force: true });
    }
    removeStaleTemporaries(dir);
    writeFileAtomic(file, JSON.stringify(manifest, null, 1));
    return { run: new RunDir(dir, manifest), resumed: false };
  }

  /** Opens an existing run directory read-only (for export). */
  static read(dir: string): RunDir {
    const file = path.join(dir, 'manifest.json');
    if (!fs.existsSync(file)) throw new BadOptionError(`--run-dir ${dir} has no manifest.json: not a packptq run directory`);
    let m: RunManifest;
    try {
      m = JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch (err) {
      throw new BadDataError(`${file}: ${(err as Error).message}`);
    }
    if (m?.format !== MANIFEST_FORMAT) throw new BadDataError(`${file}: expected format ${MANIFEST_FORMAT} but found ${JSON.stringify(m?.format)}`);
    return new RunDir(dir, m);
  }

  private load(name: string): unknown {
    const file = path.join(this.dir, name);
    if (!fs.existsSync(file)) return undefined;
    return decodeCheckpoint(fs.readFileSync(file), file);
  }

  private save(name: string, value: unknown): void {
    writeFileAtomic(path.join(this.dir, name), encodeCheckpoint(value));
  }

  pack(): PackReport | undefined { return this.load('pack.ckpt') as PackReport | undefined; }
  writePack(p: PackReport): void { this.save('pack.ckpt', p); }

  calibration(): { quantized: QuantizedGraph; units: string[] } | undefined {
    return this.load('calibration.ckpt') as { quantized: QuantizedGraph; units: string[] } | undefined;
  }
  writeCalibration(quantized: QuantizedGraph, units: string[]): void { this.save('calibration.ckpt', { quantized, units }); }

  writeUnit(c: UnitCheckpoint): void { this.save(unitFile(c.index), c); }

  /** The unit checkpoints present, as a prefix of `units`; stops at the first gap. */
  units(units: string[]): UnitCheckpoint[] {
    const out: UnitCheckpoint[] = [];
    for (let k = 0; k < units.length; k++) {
      const c = this.load(unitFile(k)) as UnitCheckpoint | undefined;
      if (!c) break;
      if (c.unit !== units[k]) throw new BadDataError(`${path.join(this.dir, unitFile(k))}: holds unit "${c.unit}" but unit ${k} of this run is "${units[k]}"`);
      out.push(c);
    }
    return out;
  }

  /** The calibration quantizers with the finished units' quantizers put in their places (order kept). */
  restore(start: QuantizedGraph, units: string[]): Restored {
    const done = this.units(units);
    const weights = new Map(done.flatMap((c) => c.finished.weights.map((w) => [w.layer, w] as const)));
    const acts = new Map(done.flatMap((c) => c.finished.acts.map((a) => [a.tensor, a] as const)));
    return {
      quantized: { weights: start.weights.map((w) => weights.get(w.layer) ?? w), acts: start.acts.map((a) => acts.get(a.tensor) ?? a) },
      done: done.length,
      reports: done.flatMap((c) => (c.report ? [c.report] : [])),
    };
  }

  final(): QuantizedGraph | undefined { return this.load('final.ckpt') as QuantizedGraph | undefined; }
  writeFinal(q: QuantizedGraph): void { this.save('final.ckpt', q); }

  /** Why the run is not finished, for messages: the phase or the units still missing. */
  unfinished(): string {
    const c = this.calibration();
    if (!c) return 'calibration has not finished (no calibration.ckpt)';
    const done = this.units(c.units).length;
    if (done < c.units.length) {
      const missing = c.units.slice(done).map((u, k) => `${done + k} (${u})`);
      return `${missing.length} of ${c.units.length} units have no checkpoint: ${missing.join(', ')}`;
    }
    return 'every unit is done but the final state was not written';
  }
}

function removeStaleTemporaries(dir: string): void {
  for (const d of [dir, path.join(dir, 'units')])
    for (const f of fs.readdirSync(d)) if (/^\..*\.tmp$/.test(f)) fs.rmSync(path.join(d, f), { force: true });
}

/** The first difference between two manifests, in words naming the option; undefined when equal. */
export function manifestDifference(old: RunManifest, now: RunManifest): string | undefined {
  if (old.format !== now.format) return `its format is ${old.format}, this packptq writes ${now.format}`;
  if (old.model.digest !== now.model.digest) return `it was made from a different model (${old.model.file}, sha256 ${old.model.digest.slice(0, 12)}…) than ${now.model.file} (sha256 ${now.model.digest.slice(0, 12)}…)`;
  const keys = [...new Set([...Object.keys(old.options), ...Object.keys(now.options)])];
  for (const k of keys) {
    const a = JSON.stringify(old.options[k] ?? null), b = JSON.stringify(now.options[k] ?? null);
    if (a !== b) { const name = OPTION_NAMES[k] ?? k; return `it was made with ${name} ${a}, this run asks for ${name} ${b}`; }
  }
  if (old.calib.digest !== now.calib.digest || old.calib.samples !== now.calib.samples)
    return `its calibration samples (--calib ${old.calib.source}, ${old.calib.samples} chosen) differ from this run's (--calib ${now.calib.source}, ${now.calib.samples} chosen)`;
  return undefined;
}
