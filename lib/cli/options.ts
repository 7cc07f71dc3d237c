/** Option parsers shared by the subcommands; they reject bad values before any work starts. */
import { InvalidArgumentError } from 'commander';

export function positiveInt(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`Expected a positive integer for ${name} but received "${v}"`);
    return n;
  };
}

export function numberList(name: string) {
  return (v: string): number[] => {
    const parts = v.split(',').map((s) => s.trim());
    const nums = parts.map(Number);
    if (parts.some((s) => s === '') || nums.some((n) => !Number.isFinite(n)))
      throw new InvalidArgumentError(`Expected comma-separated numbers for ${name} but received "${v}"`);
    return nums;
  };
}

export function nonNegative(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || n < 0) throw new InvalidArgumentError(`Expected a non-negative number for ${name} but received "${v}"`);
    return n;
  };
}

export function probability(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (v.trim() === '' || !(n >= 0 && n <= 1)) throw new InvalidArgumentError(`Expected a probability in [0, 1] for ${name} but received "${v}"`);
    return n;
  };
}
