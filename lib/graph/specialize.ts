/**
 * Specialisation: fixes the model input shapes (the batch size, above all), then walks the graph
 * once in topological order doing shape inference and constant folding together. What comes out is
 * every value's concrete shape and type, the values known at compile time, and the nodes left to
 * run. The Shape → Gather → Concat → Reshape chains of dynamic-batch exports fold away here, and
 * so does a ViT's class-token broadcast.
 */
import { BadGraphError, ShapeMismatchError, UnsupportedModelError, UnsupportedOpError } from '../errors';
import { DType, Graph, Node, Tensor, describeNode } from './ir';
import { OPS, OpContext, fmt, supportedOpTypes } from './ops';

export interface ValueState {
  shape: number[];
  dtype: DType;
  /** The value, when known at compile time. */
  value?: Tensor;
}

export interface Specialized {
  graph: Graph;
  /** Nodes that run, in execution order. */
  nodes: Node[];
  values: Map<string, ValueState>;
  /** Names of the graph inputs fed at run time, with their concrete shapes. */
  inputs: string[];
  outputs: string[];
}

export interface SpecializeOptions {
  /** Concrete shape per graph input name; symbolic dims of inputs not listed make it an error. */
  inputShapes?: Record<string, number[]>;
  /** Graph inputs bound to constant values (they then fold like initializers). */
  constants?: Map<string, Tensor>;
}

const DEFAULT_DOMAINS = new Set(['', 'ai.onnx']);
/** packptq's own ops, which only packptq inserts (the simulated quantizer). */
const PACKPTQ_DOMAIN = 'packptq';
const PACKPTQ_OPS = new Set(['FakeQuant', 'AdaRound', 'LsqQuant']);

/** Refuses ops the engine does not know, before any work; lists the supported ones. */
export function checkSupported(g: Graph): void {
  for (const n of g.nodes) {
    if (n.domain === PACKPTQ_DOMAIN && PACKPTQ_OPS.has(n.opType)) continue;
    if (!DEFAULT_DOMAINS.has(n.domain))
      throw new UnsupportedOpError(`${describeNode(n)} is in domain "${n.domain}", which packptq does not run (only the default ONNX domain)`);
    if (!OPS[n.opType])
      throw new UnsupportedOpError(`${describeNode(n)}: op ${n.opType} is not supported. Supported ops: ${supportedOpTypes().join(', ')}`);
  }
}

/** Nodes in an order where each runs after the producers of its inputs; refuses cycles and dangling inputs. */
export function topologicalOrder(g: Graph, available: Set<string>): Node[] {
  const producer = new Map<string, Node>();
  for (const n of g.nodes)
    for (const o of n.outputs) {
      if (!o) continue;
      if (producer.has(o) || available.has(o)) throw new BadGraphError(`${describeNode(n)} writes "${o}", which is already produced elsewhere`);
      producer.set(o, n);
    }
  const pending = new Map<Node, number>();
  const users = new Map<Node, Node[]>();
  const ready: Node[] = [];
  for (const n of g.nodes) {
    let deps = 0;
    for (const i of n.inputs) {
      if (!i || available.has(i)) continue;
      const p = producer.get(i);
      if (!p) throw new BadGraphError(`${describeNode(n)} reads "${i}", which no node, graph input or initializer provides`);
      deps++;
      users.set(p, [...(users.get(p) ?? []), n]);
    }
    pending.set(n, deps);
    if (deps === 0) ready.push(n);
  }
  const order: Node[] = [];
  while (ready.length) {
    const n = ready.shift()!;
    order.push(n);
    for (const u of users.get(n) ?? []) {
      const left = pending.get(u)! - 1;
      pending.set(u, left);
      if (left === 0) ready.push(u);
    }
  }
  if (order.length !== g.nodes.length) {
    const stuck = g.nodes.find((n) => !order.includes(n))!;
    throw new BadGraphError(`the graph has a cycle through ${describeNode(stuck)}`);
  }
  return order;
}

/** Nodes that contribute to some graph output. */
function liveNodes(g: Graph, order: Node[]): Set<Node> {
  const needed = new Set(g.outputs.map((o) => o.name));
  const live = new Set<Node>();
  for (let k = order.length - 1; k >= 0; k--) {
    const n = order[k];
    if (n.outputs.some((o) => needed.has(o))) {
      live.add(n);
      for (const i of n.inputs) if (i) needed.add(i);
    }
  }
  return live;
}

export function specialize(g: Graph, opts: SpecializeOptions = {}): Specialized {
  checkSupported(g);
  const values = new Map<string, ValueState>();
  for (const [name, t] of g.initializers) values.set(name, { shape: t.dims, dtype: t.dtype, value: t });

  const inputs: string[] = [];
  for (const vi of g.inputs) {
    if (g.initializers.has(vi.name)) continue; // IR < 4 lists initializers among the inputs
    const bound = opts.constants?.get(vi.name);
    if (bound) {
      values.set(vi.name, { shape: bound.dims, dtype: bound.dtype, value: bound });
      continue;
    }
    const given = opts.inputShapes?.[vi.name];
    const declared = vi.shape;
    let shape: number[];
    if (given) {
      if (declared && (declared.length !== given.length || declared.some((d, i) => typeof d === 'number' && d !== given[i])))
        throw new ShapeMismatchError(`input "${vi.name}" of the model has shape ${fmt(declared)} but was given ${fmt(given)}`);
      shape = given;
    } else if (declared && declared.every((d): d is number => typeof d === 'number')) {
      shape = declared;
    } else {
      throw new ShapeMismatchError(`input "${vi.name}" has the symbolic shape ${fmt(declared)}: give its concrete shape`);
    }
    if (vi.dtype !== 'float32')
      throw new UnsupportedModelError(`input "${vi.name}" is ${vi.dtype}; packptq feeds float32 inputs only (bind others as constants)`);
    values.set(vi.name, { shape, dtype: vi.dtype });
    inputs.push(vi.name);
  }

  const order = topologicalOrder(g, new Set(values.keys()));
  const live = liveNodes(g, order);
  const nodes: Node[] = [];
  for (const n of order) {
    if (!live.has(n)) continue;
    const def = OPS[n.opType];
    const c: OpContext = {
      node: n,
      opset: g.opset,
      inShapes: n.inputs.map((i) => (i ? values.get(i)!.shape : undefined)),
      inTypes: n.inputs.map((i) => (i ? values.get(i)!.dtype : undefined)),
      consts: n.inputs.map((i) => (i ? values.get(i)!.value : undefined)),
    };
    const allConst = n.inputs.every((i, k) => !i || c.consts[k] !== undefined);
    if (def.fold && (allConst || def.foldsOnShapes)) {
      const outs = def.fold(c);
      n.outputs.forEach((o, k) => o && values.set(o, { shape: outs[k].dims, dtype: outs[k].dtype, value: outs[k] }));
      continue;
    }
    if (def.foldOnly) throw new UnsupportedOpError(`${describeNode(n)}: ${n.opType} is supported only where its inputs are known at compile time`);
    const inf = def.infer(c);
    n.outputs.forEach((o, k) => o && values.set(o, { shape: inf.shapes[k], dtype: inf.dtypes[k] }));
    nodes.push(n);
  }
  // The engine computes in float32: anything else may exist only as a compile-time constant.
  for (const n of nodes)
    for (const i of n.inputs) {
      const v = i ? values.get(i)! : undefined;
      if (v && !v.value && v.dtype !== 'float32')
        throw new UnsupportedOpError(`${describeNode(n)} reads "${i}", a ${v.dtype} value computed at run time; only float32 values are computed at run time`);
    }
  for (const o of g.outputs) {
    const v = values.get(o.name);
    if (!v) throw new BadGraphError(`graph output "${o.name}" is not produced by any node`);
    if (!v.value && v.dtype !== 'float32') throw new UnsupportedModelError(`graph output "${o.name}" is ${v.dtype}; only float32 outputs are computed`);
  }
  return { graph: g, nodes, values, inputs, outputs: g.outputs.map((o) => o.name) };
}
