/**
 * Pack-level mixed precision. Each pack gets one width for its weights and activations, chosen
 * from the candidates of the target (3 → {2,3,4}, 4 → {3,4,6}, 6 → {4,6,8}); more sensitive packs
 * (mean |Ω| over their blocks) should get more bits. Objective: maximise Σ_p Ω_p·b_p subject to the
 * weight budget Σ_p n_p·b_p + (stem/head bits) ≤ budget·N (N = all quantized weights, the budget
 * stated as average weight bits) and, optionally, the same for activation quantizers. This is a
 * multiple-choice knapsack; with at most 12 packs it is solved exactly by enumeration
 * (3^12 ≈ 5·10^5 combinations), beyond that by dynamic programming over the weight budget.
 * The authors' release rule — every pack at the middle width, then in decreasing sensitivity
 * raise a pack to the high width while the budget holds — is available as 'greedy'.
 */
import { BadOptionError } from '../errors';

export const CANDIDATES: Record<number, [number, number, number]> = { 3: [2, 3, 4], 4: [3, 4, 6], 6: [4, 6, 8] };

export interface PackCost {
  /** Mean Ω of the pack's blocks. */
  sensitivity: number;
  /** Quantized weight elements in the pack. */
  weights: number;
  /** Activation quantizers read inside the pack (each counts once). */
  acts: number;
}

export interface BitsProblem {
  target: number;
  packs: PackCost[];
  /** Weight elements and Σ elements·bits outside the packs (stem and head layers at their planned widths). */
  fixedWeights: number;
  fixedWeightBits: number;
  fixedActs: number;
  fixedActBits: number;
  /** Average weight bits allowed over every quantized weight. */
  budgetWeightBits: number;
  /** Average activation bits allowed over every activation quantizer (optional). */
  budgetActBits?: number;
  rule?: 'exact' | 'greedy';
}

export interface BitsSolution {
  bits: number[];
  avgWeightBits: number;
  avgActBits: number;
  objective: number;
}

function evaluate(p: BitsProblem, bits: number[]): BitsSolution {
  let wb = p.fixedWeightBits, wn = p.fixedWeights, ab = p.fixedActBits, an = p.fixedActs, obj = 0;
  p.packs.forEach((c, k) => {
    wb += c.weights * bits[k];
    wn += c.weights;
    ab += c.acts * bits[k];
    an += c.acts;
    obj += c.sensitivity * bits[k];
  });
  return { bits, avgWeightBits: wn ? wb / wn : 0, avgActBits: an ? ab / an : 0, objective: obj };
}

const fits = (p: BitsProblem, s: BitsSolution) =>
  s.avgWeightBits <= p.budgetWeightBits + 1e-9 && (p.budgetActBits === undefined || s.avgActBits <= p.budgetActBits + 1e-9);

export function allocateBits(p: BitsProblem): BitsSolution {
  const cand = CANDIDATES[p.target];
  if (!cand) throw new BadOptionError(`--mixed-precision needs --w-bits and --a-bits of 3, 4 or 6 (one target width), received ${p.target}`);
  const low = evaluate(p, p.packs.map(() => cand[0]));
  if (!fits(p, low))
    throw new BadOptionError(`--budget-bits ${p.budgetWeightBits}${p.budgetActBits !== undefined ? `/${p.budgetActBits}` : ''} is below what the lowest widths need (weights ${low.avgWeightBits.toFixed(3)}, activations ${low.avgActBits.toFixed(3)})`);
  if (p.rule === 'greedy') {
    const bits = p.packs.map(() => cand[1]);
    if (!fits(p, evaluate(p, bits))) return low;
    const order = p.packs.map((_, k) => k).sort((a, b) => p.packs[b].sensitivity - p.packs[a].sensitivity);
    for (const k of order) {
      bits[k] = cand[2];
      if (!fits(p, evaluate(p, bits))) bits[k] = cand[1];
    }
    return evaluate(p, bits);
  }
  const n = p.packs.length;
  if (n <= 12) {
    // Exhaustive: every combination's weight bits, activation bits and objective, with flat loops.
    const totalW = p.fixedWeights + p.packs.reduce((a, c) => a + c.weights, 0);
    const totalA = p.fixedActs + p.packs.reduce((a, c) => a + c.acts, 0);
    const capW = p.budgetWeightBits * totalW + 1e-9 * totalW;
    const capA = p.budgetActBits === undefined ? Infinity : p.budgetActBits * totalA + 1e-9 * totalA;
    let bestObj = -Infinity, bestW = Infinity, bestCode = -1;
    const total = 3 ** n;
    for (let code = 0; code < total; code++) {
      let c = code, wb = p.fixedWeightBits, ab = p.fixedActBits, obj = 0;
      for (let k = 0; k < n; k++) {
        const b = cand[c % 3];
        c = (c - (c % 3)) / 3;
        const pk = p.packs[k];
        wb += pk.weights * b;
        ab += pk.acts * b;
        obj += pk.sensitivity * b;
      }
      if (wb > capW || ab > capA) continue;
      // Ties prefer fewer bits (cheaper).
      if (obj > bestObj + 1e-12 || (Math.abs(obj - bestObj) <= 1e-12 && wb < bestW)) {
        bestObj = obj;
        bestW = wb;
        bestCode = code;
      }
    }
    const bits: number[] = [];
    for (let k = 0, c = bestCode; k < n; k++, c = Math.floor(c / 3)) bits.push(cand[c % 3]);
    return evaluate(p, bits);
  }
  return knapsackDp(p, cand);
}

/** Exact DP over the weight budget (in units of weight elements), for many packs. */
function knapsackDp(p: BitsProblem, cand: number[]): BitsSolution {
  if (p.budgetActBits !== undefined) throw new BadOptionError('an activation budget with more than 12 packs is not supported; give a weight budget only');
  const totalW = p.fixedWeights + p.packs.reduce((a, c) => a + c.weights, 0);
  const cap = Math.floor(p.budgetWeightBits * totalW - p.fixedWeightBits);
  // Scale costs down so the table stays small; rounding costs up keeps every solution feasible.
  const unit = Math.max(1, Math.ceil(cap / 200000));
  const C = Math.floor(cap / unit);
  let best = new Float64Array(C + 1).fill(-Infinity);
  best[0] = 0;
  const choice: Int8Array[] = [];
  for (const pk of p.packs) {
    const next = new Float64Array(C + 1).fill(-Infinity);
    const ch = new Int8Array(C + 1).fill(-1);
    for (let c = 0; c <= C; c++) {
      if (best[c] === -Infinity) continue;
      cand.forEach((b, j) => {
        const cost = Math.ceil((pk.weights * b) / unit);
        const nc = c + cost;
        if (nc <= C && best[c] + pk.sensitivity * b > next[nc]) {
          next[nc] = best[c] + pk.sensitivity * b;
          ch[nc] = j;
        }
      });
    }
    choice.push(ch);
    best = next;
  }
  let c = 0;
  for (let k = 1; k <= C; k++) if (best[k] > best[c]) c = k;
  const bits = new Array<number>(p.packs.length);
  for (let k = p.packs.length - 1; k >= 0; k--) {
    const j = choice[k][c];
    bits[k] = cand[j];
    c -= Math.ceil((p.packs[k].weights * cand[j]) / unit);
  }
  return evaluate(p, bits);
}
