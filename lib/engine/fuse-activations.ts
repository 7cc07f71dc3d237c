/**
 * Lowering peephole: a Relu or Clip whose input is written by a Conv, Gemm or MatMul and read by
 * nothing else is folded into that op as its fused activation (native/exec/op.h: string
 * `activation` "relu" | "clip", floats `act_min` `act_max`), so the kernels clamp while they write
 * the output instead of a second pass over it. The intermediate tensor disappears from the program.
 *
 * Not applied when the intermediate is a program output (calibration captures read it) or already
 * carries an activation. Programs for the differentiable executor (reconstruction) must not be fused:
 * their gradient ops do not know the attribute, so lower() takes `fuseActivations: false` there.
 */
import type { ProgramDesc } from './lower';

const PRODUCERS = new Set(['Conv', 'Gemm', 'MatMul']);

/** Per tensor: how many op inputs read it, the index of the op writing it; and the program outputs. */
export function dataflow(desc: ProgramDesc): { readers: Map<number, number>; writer: Map<number, number>; outputs: Set<number> } {
  const readers = new Map<number, number>();
  for (const op of desc.ops) for (const id of op.inputs) if (id >= 0) readers.set(id, (readers.get(id) ?? 0) + 1);
  const writer = new Map<number, number>();
  desc.ops.forEach((op, i) => op.outputs.forEach((id) => id >= 0 && writer.set(id, i)));
  return { readers, writer, outputs: new Set(desc.outputs) };
}

export function fuseActivations(desc: ProgramDesc): ProgramDesc {
  const { readers, writer, outputs } = dataflow(desc);

  const drop = new Set<number>();
  desc.ops.forEach((op, i) => {
    if (op.type !== 'Relu' && op.type !== 'Clip') return;
    if (op.inputs.length !== 1 || op.outputs.length !== 1) return;
    const mid = op.inputs[0];
    let w = writer.get(mid);
    if (w === undefined || w >= i || drop.has(w)) return;
    if (readers.get(mid) !== 1 || outputs.has(mid) || desc.tensors[mid].data) return;
    // A 1-D conv is lowered as Reshape -> 2-D Conv -> Reshape: look through that last Reshape (it
    // only renames memory), whose output then becomes the activation's output.
    let reshape: (typeof desc.ops)[number] | undefined;
    if (desc.ops[w].type === 'Reshape') {
      reshape = desc.ops[w];
      const inner = reshape.inputs[0];
      const w2 = writer.get(inner);
      if (w2 === undefined || drop.has(w2) || readers.get(inner) !== 1 || outputs.has(inner) || desc.tensors[inner].data) return;
      w = w2;
    }
    const producer = desc.ops[w];
    if (!PRODUCERS.has(producer.type) || producer.outputs.length !== 1 || producer.attrs.activation !== undefined) return;
    if (op.type === 'Relu') {
      producer.attrs = { ...producer.attrs, activation: 'relu' };
    } else {
      const lo = typeof op.attrs.min === 'number' ? op.attrs.min : -3.4028234663852886e38;
      const hi = typeof op.attrs.max === 'number' ? op.attrs.max : 3.4028234663852886e38;
      producer.attrs = { ...producer.attrs, activation: 'clip', act_min: lo, act_max: hi };
    }
    if (reshape) reshape.outputs = [op.outputs[0]];
    else producer.outputs = [op.outputs[0]];
    drop.add(i);
  });
  if (drop.size === 0) return desc;
  return { ...desc, ops: desc.ops.filter((_, i) => !drop.has(i)) };
}
