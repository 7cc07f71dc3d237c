/**
 * `packptq export --run-dir DIR --out FILE`: the QDQ ONNX model of a finished quantize run, from its
 * run directory (lib/pipeline/run-dir.ts) alone — no calibration data, no recomputation. The bytes
 * are those `quantize --out` writes for the same run.
 */
import * as fs from 'fs';
import { Command } from 'commander';
import { Model } from '../engine/model';
import { BadDataError, BadOptionError } from '../errors';
import * as path from 'path';
import { reapplyEqualization } from '../pipeline/equalize';
import { writeQdqModel } from '../export/qdq';
import { EQUALIZATION_FILE, RunDir, graphDigest } from '../pipeline/run-dir';

export interface ExportCliOptions { runDir: string; out: string; model?: string; json?: boolean }

export function registerExport(program: Command): void {
  program
    .command('export')
    .description('Write the QDQ ONNX model of a finished `quantize --run-dir` run')
    .requiredOption('--run-dir <dir>', 'run directory of a finished quantize run')
    .requiredOption('--out <file>', 'QDQ ONNX file to write (atomically)')
    .option('--model <file>', 'the FP32 model the run quantized (default: the path recorded in the run directory); must be the same model')
    .option('--json', 'print exactly one JSON object on stdout')
    .addHelpText('after', `
Examples:
  packptq quantize model.onnx --calib calib.npy --method qdrop --run-dir runs/qdrop
  packptq export --run-dir runs/qdrop --out model-qdrop.onnx
  packptq export --run-dir runs/qdrop --model moved/model.onnx --out model-qdrop.onnx`)
    .action((o: ExportCliOptions) => {
      const r = runExport(o);
      if (o.json) process.stdout.write(JSON.stringify(r) + '\n');
      else process.stdout.write(`wrote        ${r.out} (${r.bytes.toLocaleString('en-US')} bytes; ${r.method} W${r.wBits}A${r.aBits} from ${r.runDir})\n`);
    });
}

export function runExport(o: ExportCliOptions): { out: string; bytes: number; runDir: string; model: string; method: string; wBits: number; aBits: number } {
  const run = RunDir.read(o.runDir);
  const m = run.manifest;
  const quantized = run.final();
  if (!quantized) throw new BadOptionError(`--run-dir ${o.runDir} holds an unfinished run: ${run.unfinished()}; rerun its quantize command to finish it`);
  const file = o.model ?? m.model.file;
  if (!o.model && !fs.existsSync(file)) throw new BadOptionError(`the model of --run-dir ${o.runDir}, ${file}, no longer exists; give its new path with --model`);
  let model = Model.load(file);
  // A run made with --equalize quantized the rescaled graph; its scales are kept in the run dir.
  const eqFile = path.join(o.runDir, EQUALIZATION_FILE);
  if (fs.existsSync(eqFile)) {
    let stored: { links: Parameters<typeof reapplyEqualization>[1] };
    try {
      stored = JSON.parse(fs.readFileSync(eqFile, 'utf8'));
      model = reapplyEqualization(model, stored.links);
    } catch (err) {
      throw new BadDataError(`${eqFile}: not a packptq equalization record (${(err as Error).message})`);
    }
  }
  if (graphDigest(model.graph) !== m.model.digest)
    throw new BadOptionError(`${o.model ? '--model ' : ''}${file} is not the model --run-dir ${o.runDir} quantized (${m.model.file}): their graphs differ`);
  const opt = m.options as { method: string; wBits: number; aBits: number };
  // The same call, with the same options, as `quantize --out` (lib/cli/quantize.ts): the same bytes.
  writeQdqModel(o.out, model.graph, quantized, { wBits: opt.wBits, aBits: opt.aBits, method: opt.method } as Parameters<typeof writeQdqModel>[3]);
  return { out: o.out, bytes: fs.statSync(o.out).size, runDir: o.runDir, model: file, method: opt.method, wBits: opt.wBits, aBits: opt.aBits };
}
