/**
 * The run report: everything a quantize run did, as one JSON document (the HTML report draws from
 * it): the options, the plan (bits per layer and per activation), Pack-PTQ's scores, packs and
 * bits, each unit's loss curve, sizes, accuracies and times. Written atomically.
 */
import * as fs from 'fs';
import * as path from 'path';
import { IoError } from '../errors';
import { QuantizeResult } from '../pipeline/quantize';
import { packptqVersion } from '../export/qdq';

export interface RunMeta {
  model: string;
  command?: string;
  options: Record<string, unknown>;
}

export function buildReport(r: QuantizeResult, meta: RunMeta): Record<string, unknown> {
  return {
    packptq: packptqVersion(),
    date: new Date().toISOString(),
    model: meta.model,
    command: meta.command,
    method: r.method,
    options: meta.options,
    accuracy: {
      fp: r.fp?.accuracy ?? null,
      quantized: r.quant?.accuracy ?? null,
      samples: r.fp?.samples ?? null,
    },
    size: { avgWeightBits: r.avgWeightBits, avgActBits: r.avgActBits, weightBytes: r.weightBytes, fpWeightBytes: r.fpWeightBytes },
    layers: r.plan.layers.map((l) => ({ name: l.layer, op: l.op, wBits: l.wBits ?? null, excluded: l.excluded, actInputs: l.actInputs })),
    activations: r.quantized.acts.map((a) => ({ tensor: a.tensor, bits: a.params.bits, scale: a.params.scale[0], zeroPoint: a.params.zeroPoint[0], consumers: a.consumers })),
    pack: r.pack ?? null,
    units: r.units,
    times: r.times,
    seconds: r.seconds,
  };
}

/** Writes `data` as JSON to `file` through a temporary file and a rename (no partial file ever). */
export function writeJsonAtomic(file: string, data: unknown): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  try {
    fs.writeFileSync(tmp, JSON.stringify(data, null, 1));
    fs.renameSync(tmp, file);
  } catch (err) {
    try { fs.rmSync(tmp, { force: true }); } catch { /* nothing to clean */ }
    throw new IoError(`cannot write ${file}: ${(err as Error).message}`, { cause: err });
  }
}
