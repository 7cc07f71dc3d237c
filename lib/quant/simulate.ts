/**
 * The simulated quantized model: the canonical FP graph with every quantized weight replaced by
 * its dequantized values s·(q − z), and a FakeQuant node in front of every quantized activation
 * read. It runs on the same engine as the FP model, and it is what the QDQ export must reproduce.
 */
import { yieldToEventLoop } from '../engine/yield';
import { Graph, Node, cloneGraph } from '../graph/ir';
import { channelInner, forEachChannelRun } from './channel-runs';
import { QuantParams, QuantizedGraph } from './types';

/** Dequantized weight values (float32) from codes and per-tensor or per-channel parameters. */
export function dequantizeCodes(codes: Int32Array, dims: number[], p: QuantParams): Float32Array {
  const out = new Float32Array(codes.length);
  const channels = p.scale.length;
  const inner = p.axis === undefined ? codes.length : dims.slice(p.axis + 1).reduce((a, b) => a * b, 1);
  for (let i = 0; i < out.length; i++) {
    const ch = channels > 1 ? Math.floor(i / inner) % channels : 0;
    out[i] = p.scale[ch] * (codes[i] - p.zeroPoint[ch]);
  }
  return out;
}

/** {@link dequantizeCodes}, giving the event loop a turn every few tens of thousands of elements. */
export async function dequantizeCodesAsync(codes: Int32Array, dims: number[], p: QuantParams): Promise<Float32Array> {
  const out = new Float32Array(codes.length);
  await forEachChannelRun(codes.length, channelInner(p, dims, codes.length), p.scale.length, (from, to, ch) => {
    const s = p.scale[ch], z = p.zeroPoint[ch];
    for (let i = from; i < to; i++) out[i] = s * (codes[i] - z);
  });
  return out;
}

export function fakeQuantNode(input: string, output: string, p: QuantParams): Node {
  return {
    name: `${input}/FakeQuant`, opType: 'FakeQuant', domain: 'packptq', inputs: [input], outputs: [output],
    attrs: {
      scale: { type: 'float', value: p.scale[0] }, zero_point: { type: 'int', value: p.zeroPoint[0] },
      qmin: { type: 'int', value: p.qmin }, qmax: { type: 'int', value: p.qmax },
    },
  };
}

export function simulatedGraph(canonical: Graph, q: QuantizedGraph): Graph {
  return withQuantizers(cloneGraph(canonical), q, new Map(q.weights.map((w) => [w, dequantizeCodes(w.codes, canonical.initializers.get(w.weight)?.dims ?? [], w.params)])));
}

/**
 * {@link simulatedGraph} for the pipeline: the dequantization (a JavaScript loop over every weight
 * element) gives the event loop a turn between slices.
 */
export async function simulatedGraphAsync(canonical: Graph, q: QuantizedGraph): Promise<Graph> {
  const values = new Map<QuantizedGraph['weights'][number], Float32Array>();
  for (const w of q.weights) {
    values.set(w, await dequantizeCodesAsync(w.codes, canonical.initializers.get(w.weight)?.dims ?? [], w.params));
    await yieldToEventLoop();
  }
  return withQuantizers(cloneGraph(canonical), q, values);
}

/** Puts the dequantized weights (`values`) and the FakeQuant nodes of `q` into `g`. */
function withQuantizers(g: Graph, q: QuantizedGraph, values: Map<QuantizedGraph['weights'][number], Float32Array>): Graph {
  for (const w of q.weights) {
    const t = g.initializers.get(w.weight);
    if (!t) throw new Error(`simulate: weight ${w.weight} of ${w.layer} is not in the graph`);
    // A fresh name: a weight shared with an unquantized reader keeps its FP values there.
    const name = `${w.weight}::quantized::${w.layer}`;
    g.initializers.set(name, { dtype: 'float32', dims: [...t.dims], data: values.get(w)! });
    const layer = g.nodes.find((n) => n.name === w.layer)!;
    layer.inputs = layer.inputs.map((i) => (i === w.weight ? name : i));
  }
  for (const a of q.acts) {
    const out = `${a.tensor}::fq`;
    const fq = fakeQuantNode(a.tensor, out, a.params);
    const consumers = new Set(a.consumers);
    const first = g.nodes.findIndex((n) => consumers.has(n.name));
    for (const n of g.nodes) if (consumers.has(n.name)) n.inputs = n.inputs.map((i) => (i === a.tensor ? out : i));
    g.nodes.splice(first, 0, fq);
  }
  return g;
}
