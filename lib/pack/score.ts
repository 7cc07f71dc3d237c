/**
 * Pack-PTQ's Hessian-guided importance score of every block.
 *
 * For block b, only b is quantized (initial quantizers, nearest rounding), everything else FP:
 *   z_fp, z_q   block b's output in the FP network and in the b-quantized network;
 *   L_b         KL(P_q ‖ P_fp) of the softmaxed logits, averaged over the calibration samples;
 *   g           ∂L/∂z at z_fp, back-propagated through the FP rest of the network with P_q held
 *               fixed (per sample ∂KL/∂logits = P_fp − P_q), on the native differentiable executor;
 *   Δz          z_fp − z_q.
 *   S_b = (L_b − E[gᵀΔz]) / (½ E[ΔzᵀΔz])   the paper's score, as written there and in the notes;
 *   Ω_b = S_b · E|Δz|                        the block's sensitivity (mixed precision uses it).
 * Sign: with these definitions L(z_q) = KL(P_q ‖ P_q) = 0, so the expansion around z_fp reads
 * 0 = L_b − gᵀΔz + ½μ‖Δz‖²: the curvature is μ = (gᵀΔz − L_b)/(½‖Δz‖²) = −S_b.
 * test/pack/score.test.ts checks S_b = −μ against a finite-difference second derivative. packptq
 * keeps the published sign: it decides where packs start (running minima of S) and which packs
 * mixed precision favours, so flipping it would give other packs than the method and its release
 * (whose form below has the same sign). An earlier version used μ itself; on resnet20 W3A3 that
 * put block 0 at the minimum and made one pack of the whole network.
 *
 * The paper's form takes gᵀΔz and ΔzᵀΔz summed over a sample's features ("paper");
 * the authors' release computes (L − mean_e(gΔz)) / (½ mean_e(Δz²)) with per-element means
 * ("release"). Both are reported; `form` picks the one packing and mixed precision use.
 * One FP pass per batch serves every block; each block adds one pass of its b-quantized network
 * and one forward/backward of the network after it.
 */
import { AbortError } from '../errors';
import { Subset, subsetBatch } from '../data/subset';
import { Model } from '../engine/model';
import { NativeProgram } from '../engine/program';
import { yieldToEventLoop } from '../engine/yield';
import { lower } from '../engine/lower';
import { Structure } from '../graph/blocks';
import { Graph, Node } from '../graph/ir';
import { specialize } from '../graph/specialize';
import { native } from '../native';
import { SLICE } from '../quant/channel-runs';
import { simulatedGraphAsync } from '../quant/simulate';
import { QuantizedGraph } from '../quant/types';

export type ScoreForm = 'paper' | 'release';

export interface BlockScore {
  block: string;
  index: number;
  /** L_b: mean KL(P_q ‖ P_fp) per sample. */
  loss: number;
  /** E[gᵀΔz] and E[ΔzᵀΔz] per sample (sums over the block output's features). */
  gDz: number;
  dz2: number;
  /** E|Δz| per element. */
  absDz: number;
  /** Features of the block output per sample. */
  features: number;
  /** S_b and Ω_b in the paper's form and in the release's per-element form. */
  paper: { score: number; omega: number };
  release: { score: number; omega: number };
  /** The form selected for packing and mixed precision. */
  score: number;
  omega: number;
}

/** The quantizers of one block only: its layers' weights and the activations they read. */
export function blockOnly(q: QuantizedGraph, layers: string[]): QuantizedGraph {
  const set = new Set(layers);
  return {
    weights: q.weights.filter((w) => set.has(w.layer)),
    acts: q.acts.map((a) => ({ ...a, consumers: a.consumers.filter((c) => set.has(c)) })).filter((a) => a.consumers.length),
  };
}

/** The network after a cut value: every node needed for the outputs, reading the cut as its input. */
export function restGraph(g: Graph, cut: string): Graph {
  const needed = new Set(g.outputs.map((o) => o.name));
  const nodes: Node[] = [];
  for (let k = g.nodes.length - 1; k >= 0; k--) {
    const n = g.nodes[k];
    if (!n.outputs.some((o) => needed.has(o))) continue;
    nodes.push(n);
    for (const i of n.inputs) if (i && i !== cut) needed.add(i);
  }
  return { ...g, nodes: nodes.reverse(), inputs: [{ name: cut, dtype: 'float32' }] };
}

// The per-element loops below call these through module constants: in a vm context (jest's) each
// lookup of the global Math goes through the context's interceptor, which made a batch's loops hold
// the event loop for 100-300 ms.
const { abs, exp, log, max, min } = Math;

function softmaxRow(x: Float32Array, off: number, n: number, out: Float64Array): void {
  let m = -Infinity;
  for (let c = 0; c < n; c++) m = max(m, x[off + c]);
  let s = 0;
  for (let c = 0; c < n; c++) s += (out[c] = exp(x[off + c] - m));
  for (let c = 0; c < n; c++) out[c] /= s;
}

export interface ScoreOptions {
  batch: number;
  threads: number;
  form?: ScoreForm;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
}

export async function blockScores(model: Model, s: Structure, init: QuantizedGraph, calib: Subset, o: ScoreOptions): Promise<BlockScore[]> {
  const g = model.graph;
  const B = o.batch;
  const logitsName = g.outputs[0].name;
  const blocks = s.blocks;
  const fp = await model.captureProgramAsync(B, [...blocks.map((b) => b.output), logitsName], { threads: o.threads });
  const shapes = fp.info.outputShapes;
  // Per block a compiled b-quantized network and a tape of the rest, both built on worker threads
  // (a tape allocates every value and gradient of the rest of the network); the JavaScript that
  // describes them gets the event loop back between blocks, and an abort is seen.
  const sims: NativeProgram[] = [];
  const tapes: any[] = [];
  for (const [k, b] of blocks.entries()) {
    await yieldToEventLoop();
    if (o.signal?.aborted) throw new AbortError();
    sims.push(await Model.fromGraph(await simulatedGraphAsync(g, blockOnly(init, b.layers)), model.file).captureProgramAsync(B, [b.output, logitsName], { threads: o.threads }));
    await yieldToEventLoop();
    const spec = specialize(restGraph(g, b.output), { inputShapes: { [b.output]: shapes[k] } });
    tapes.push(await native().GradProgram.create(lower(spec, { fuseActivations: false }), { dtype: 'float32', trainable: [], threads: o.threads, inputGrads: true }));
  }
  const classes = shapes[shapes.length - 1].slice(1).reduce((a, b) => a * b, 1);
  const acc = blocks.map(() => ({ loss: 0, gDz: 0, dz2: 0, absDz: 0 }));
  const n = calib.indices.length;
  const pq = new Float64Array(classes), pf = new Float64Array(classes);
  for (let start = 0; start < n; start += B) {
    if (o.signal?.aborted) throw new AbortError();
    const count = Math.min(B, n - start);
    const x = subsetBatch(calib, start, count, B);
    const fpOut = await fp.run([x]);
    const logitsFp = fpOut[fpOut.length - 1];
    for (let k = 0; k < blocks.length; k++) {
      const [zq, logitsQ] = await sims[k].run([x]);
      const zf = fpOut[k];
      const feat = zf.length / B;
      // dL/dlogits per sample = P_fp − P_q (P_q fixed); the tape carries it back to block k's output.
      const dlogits = new Float32Array(logitsFp.length);
      const a = acc[k];
      for (let i = 0; i < count; i++) {
        softmaxRow(logitsQ, i * classes, classes, pq);
        softmaxRow(logitsFp, i * classes, classes, pf);
        for (let c = 0; c < classes; c++) {
          if (pq[c] > 0) a.loss += pq[c] * log(pq[c] / pf[c]);
          dlogits[i * classes + c] = pf[c] - pq[c];
        }
      }
      const gz: Float32Array = await tapes[k].inputGradAsync([zf], [dlogits]);
      // In slices (same order of summation), the event loop getting a turn between them.
      for (let from = 0; from < count * feat; from += SLICE) {
        for (let i = from, to = min(count * feat, from + SLICE); i < to; i++) {
          const d = zf[i] - zq[i];
          a.gDz += gz[i] * d;
          a.dz2 += d * d;
          a.absDz += abs(d);
        }
        await yieldToEventLoop();
      }
    }
    o.onProgress?.(start + count, n);
  }
  const form = o.form ?? 'paper';
  return blocks.map((b, k) => {
    const feat = shapes[k].slice(1).reduce((x, y) => x * y, 1);
    const a = acc[k];
    const loss = a.loss / n, gDz = a.gDz / n, dz2 = a.dz2 / n, absDz = a.absDz / (n * feat);
    const paperScore = (loss - gDz) / (0.5 * dz2);
    const releaseScore = (loss - gDz / feat) / (0.5 * (dz2 / feat));
    const paper = { score: paperScore, omega: paperScore * absDz };
    const release = { score: releaseScore, omega: releaseScore * absDz };
    const chosen = form === 'paper' ? paper : release;
    return { block: b.name, index: k, loss, gDz, dz2, absDz, features: feat, paper, release, score: chosen.score, omega: chosen.omega };
  });
}
