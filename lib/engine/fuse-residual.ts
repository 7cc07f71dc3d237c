/**
 * Lowering peephole: a residual `Add(conv_out, other)` whose conv_out is written by a Conv and read
 * by nothing else becomes that Conv's optional fourth input `sum` (native/exec/op.h), added to the
 * output before the fused activation, so the residual costs no separate pass over the tensor (and a
 * Relu / Clip after the Add then folds into the same Conv through fuseActivations, which runs after
 * this). onnxruntime's FusedConv does the same.
 *
 * The Conv moves to the Add's place in the op list: `other` (a shortcut branch) may be computed
 * after the Conv, and the Conv's own inputs are all ready earlier, so running it later is always
 * valid. Not applied when conv_out is a program output or has another reader, when the Conv
 * already carries an activation (it would act before the sum), when shapes differ (broadcasting),
 * or when the Add reads conv_out twice. Only for the inference executor: programs for the
 * differentiable executor are lowered with fuseActivations: false, which skips this too.
 */
import { dataflow } from './fuse-activations';
import type { OpDesc, ProgramDesc } from './lower';

const sameShape = (a: number[], b: number[]) => a.length === b.length && a.every((d, i) => d === b[i]);

export function fuseResidual(desc: ProgramDesc): ProgramDesc {
  const { readers, writer, outputs } = dataflow(desc);

  const ops: (OpDesc | null)[] = [...desc.ops];
  let fused = 0;
  desc.ops.forEach((add, i) => {
    if (add.type !== 'Add' || add.inputs.length !== 2 || add.outputs.length !== 1) return;
    const out = add.outputs[0];
    for (const k of [0, 1]) {
      const mid = add.inputs[k], other = add.inputs[1 - k];
      const w = writer.get(mid);
      if (w === undefined || w >= i || ops[w] === null || mid === other || other < 0) continue;
      const conv = ops[w]!;
      if (conv.type !== 'Conv' || conv.outputs.length !== 1 || conv.attrs.activation !== undefined || conv.inputs.length > 3) continue;
      if (readers.get(mid) !== 1 || outputs.has(mid) || desc.tensors[mid].data) continue;
      const shape = desc.tensors[out].shape;
      if (!sameShape(desc.tensors[mid].shape, shape) || !sameShape(desc.tensors[other].shape, shape)) continue;
      const inputs = [...conv.inputs];
      while (inputs.length < 3) inputs.push(-1); // absent bias
      ops[i] = { ...conv, inputs: [...inputs, other], outputs: [out] };
      ops[w] = null;
      fused++;
      return;
    }
  });
  if (fused === 0) return desc;
  return { ...desc, ops: ops.filter((op): op is OpDesc => op !== null) };
}
