/** Adaptive packing and pack-level bit allocation on hand-made inputs. */
import { BadOptionError } from '../../lib/errors';
import { allocateBits, BitsProblem } from '../../lib/pack/bits';
import { packBlocks } from '../../lib/pack/packing';

test('packs start at the left-to-right running minima of the scores', () => {
  expect(packBlocks([5, 3, 4, 1, 2, 6])).toEqual([[0], [1, 2], [3, 4, 5]]);
  expect(packBlocks([2, 2, 1, 1])).toEqual([[0, 1], [2, 3]]); // ties: the lowest index starts the pack
  expect(packBlocks([])).toEqual([]);
});

test('the scan-from-the-right definition gives the same packs (random scores)', () => {
  let seed = 9;
  const rnd = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
  for (let trial = 0; trial < 200; trial++) {
    const s = Array.from({ length: 1 + Math.floor(rnd() * 12) }, () => Math.floor(rnd() * 6));
    const packs: number[][] = [];
    let e = s.length - 1;
    while (e >= 0) {
      let t = 0;
      for (let k = 0; k <= e; k++) if (s[k] < s[t]) t = k;
      packs.unshift(Array.from({ length: e - t + 1 }, (_, j) => t + j));
      e = t - 1;
    }
    expect(packBlocks(s)).toEqual(packs);
  }
});

test('edge cases: strictly decreasing → every block its own pack; minimum at block 0 → one pack', () => {
  expect(packBlocks([9, 7, 5, 3, 1])).toEqual([[0], [1], [2], [3], [4]]);
  expect(packBlocks([0.1, 5, 3, 7, 2])).toEqual([[0, 1, 2, 3, 4]]);
});

function brute(p: BitsProblem, cand: number[]): number {
  let best = -Infinity;
  const n = p.packs.length;
  for (let code = 0; code < 3 ** n; code++) {
    let c = code, wb = p.fixedWeightBits, wn = p.fixedWeights, obj = 0;
    for (const pk of p.packs) {
      const b = cand[c % 3];
      c = Math.floor(c / 3);
      wb += pk.weights * b;
      wn += pk.weights;
      obj += pk.sensitivity * b;
    }
    if (wb / wn <= p.budgetWeightBits + 1e-9) best = Math.max(best, obj);
  }
  return best;
}

test('exact allocation maximises the sensitivity-weighted bits within the budget (vs brute force)', () => {
  let seed = 4;
  const rnd = () => ((seed = (seed * 48271) % 2147483647) / 2147483647);
  for (let trial = 0; trial < 40; trial++) {
    const packs = Array.from({ length: 1 + Math.floor(rnd() * 6) }, () => ({ sensitivity: rnd(), weights: 100 + Math.floor(rnd() * 5000), acts: 1 + Math.floor(rnd() * 4) }));
    const p: BitsProblem = { target: 3, packs, fixedWeights: 300, fixedWeightBits: 300 * 3, fixedActs: 2, fixedActBits: 6, budgetWeightBits: 2.2 + 1.6 * rnd() };
    const sol = allocateBits(p);
    expect(sol.avgWeightBits).toBeLessThanOrEqual(p.budgetWeightBits + 1e-9);
    expect(sol.objective).toBeCloseTo(brute(p, [2, 3, 4]), 9);
    expect(sol.bits.every((b) => [2, 3, 4].includes(b))).toBe(true);
  }
});

test('the DP (many packs) agrees with enumeration on the same problem', () => {
  const packs = Array.from({ length: 12 }, (_, k) => ({ sensitivity: ((k * 37) % 11) / 11, weights: 1000 + k * 300, acts: 1 }));
  const base: BitsProblem = { target: 4, packs, fixedWeights: 0, fixedWeightBits: 0, fixedActs: 0, fixedActBits: 0, budgetWeightBits: 4.6 };
  const enumerated = allocateBits(base);
  const many = allocateBits({ ...base, packs: [...packs, { sensitivity: 0, weights: 1, acts: 0 }] }); // 13 packs → DP
  expect(many.objective).toBeGreaterThanOrEqual(enumerated.objective - 1e-9);
  expect(many.avgWeightBits).toBeLessThanOrEqual(4.6 + 1e-9);
});

test('greedy rule: all at the middle width, then the most sensitive raised while the budget holds', () => {
  const p: BitsProblem = {
    target: 3, packs: [{ sensitivity: 0.1, weights: 100, acts: 1 }, { sensitivity: 0.9, weights: 100, acts: 1 }, { sensitivity: 0.5, weights: 100, acts: 1 }],
    fixedWeights: 0, fixedWeightBits: 0, fixedActs: 0, fixedActBits: 0, budgetWeightBits: 3.5, rule: 'greedy',
  };
  expect(allocateBits(p).bits).toEqual([3, 4, 3]);
});

test('an activation budget constrains too; an impossible budget is refused', () => {
  const p: BitsProblem = {
    target: 4, packs: [{ sensitivity: 1, weights: 100, acts: 10 }, { sensitivity: 1, weights: 100, acts: 1 }],
    fixedWeights: 0, fixedWeightBits: 0, fixedActs: 0, fixedActBits: 0, budgetWeightBits: 5, budgetActBits: 3.5,
  };
  const s = allocateBits(p);
  expect(s.avgActBits).toBeLessThanOrEqual(3.5);
  expect(() => allocateBits({ ...p, budgetWeightBits: 2 })).toThrow(BadOptionError);
});
