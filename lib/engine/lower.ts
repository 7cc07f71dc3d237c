/**
 * Lowering: a specialised graph becomes the description of a native Program: numbered tensors with
 * concrete shapes (constants carrying float32 data) and ops of the canonical set in native/exec/op.h.
 */
import { NativeError } from '../errors';
import { Tensor, numel } from '../graph/ir';
import { OPS, LowerContext } from '../graph/ops';
import { Specialized } from '../graph/specialize';
import { fuseActivations } from './fuse-activations';
import { fuseResidual } from './fuse-residual';

export interface TensorDesc { shape: number[]; data?: Float32Array; name?: string }
export interface OpDesc {
  type: string;
  name: string;
  inputs: number[];
  outputs: number[];
  attrs: Record<string, number | number[] | string>;
}
export interface ProgramDesc {
  tensors: TensorDesc[];
  inputs: number[];
  outputs: number[];
  ops: OpDesc[];
  isa?: string;
  threads?: number;
}

function asFloat32(t: Tensor): Float32Array {
  return t.data instanceof Float32Array ? t.data : Float32Array.from(t.data);
}

export function lower(s: Specialized, opts: { fuseActivations?: boolean } = {}): ProgramDesc {
  const tensors: TensorDesc[] = [];
  const ids = new Map<string, number>();
  const ops: OpDesc[] = [];
  let tempCount = 0;

  const add = (name: string, shape: number[], data?: Float32Array): number => {
    tensors.push({ shape: [...shape], data, name });
    ids.set(name, tensors.length - 1);
    return tensors.length - 1;
  };
  const idOf = (name: string): number => {
    if (name === '') return -1;
    const known = ids.get(name);
    if (known !== undefined) return known;
    const v = s.values.get(name);
    if (!v) throw new NativeError(`lowering: value "${name}" has no shape`);
    return add(name, v.shape, v.value ? asFloat32(v.value) : undefined);
  };

  const inputs = s.inputs.map((n) => idOf(n));
  for (const node of s.nodes) {
    const def = OPS[node.opType];
    const c: LowerContext = {
      node,
      opset: s.graph.opset,
      inShapes: node.inputs.map((i) => (i ? s.values.get(i)!.shape : undefined)),
      inTypes: node.inputs.map((i) => (i ? s.values.get(i)!.dtype : undefined)),
      consts: node.inputs.map((i) => (i ? s.values.get(i)!.value : undefined)),
      outShapes: node.outputs.map((o) => (o ? s.values.get(o)!.shape : [])),
      emit: (type, ins, outs, attrs = {}) => {
        // Trailing omitted optional outputs are dropped; an omitted one in the middle becomes -1.
        const used = [...outs];
        while (used.length > 1 && used[used.length - 1] === '') used.pop();
        ops.push({ type, name: node.name || node.outputs[0], inputs: ins.map(idOf), outputs: used.map(idOf), attrs });
      },
      temp: (shape) => {
        const name = `packptq::tmp${tempCount++}`;
        add(name, shape);
        return name;
      },
      constant: (t) => {
        const name = `packptq::const${tempCount++}`;
        add(name, t.dims, asFloat32(t));
        return name;
      },
    };
    if (def.lower) def.lower(c);
    else c.emit(node.opType, node.inputs, node.outputs);
  }
  // Outputs known at compile time (or fed straight from an input) still need a tensor the program
  // writes: copy them.
  const outputs = s.outputs.map((name) => {
    const v = s.values.get(name)!;
    const written = ops.some((o) => o.outputs.includes(ids.get(name) ?? -2));
    if (written) return ids.get(name)!;
    const src = idOf(name);
    const dst = add(`packptq::out:${name}`, v.shape);
    ops.push({ type: 'Reshape', name: `output ${name}`, inputs: [src], outputs: [dst], attrs: {} });
    return dst;
  });
  // Drop the names from the description to keep it small; they stay useful in debugging via ids.
  for (const t of tensors) if (t.data && numel(t.shape) !== t.data.length) throw new NativeError(`lowering: constant "${t.name}" has a wrong size`);
  const desc = { tensors, inputs, outputs, ops };
  // Residual Adds first: an Add -> Relu pair then folds into the same Conv as its activation.
  return opts.fuseActivations === false ? desc : fuseActivations(fuseResidual(desc));
}
