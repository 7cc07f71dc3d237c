/**
 * IEEE binary16 ("half") storage for the reconstruction cache (`cacheDtype: 'float16'`): halves the
 * memory of the cached unit inputs and targets. Node 20 has no Float16Array, so values are kept as
 * their 16-bit patterns in a Uint16Array; the native loop decodes them exactly when it draws a batch.
 */
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The half bit pattern nearest to x (round to nearest, ties to even; overflow → ±inf; NaN kept). */
export function toHalfBits(x: number): number {
  f32[0] = x;
  const b = u32[0];
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  const man = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (man ? 0x200 : 0);
  const e = exp - 112; // the half exponent field (bias 15) of a normal result
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal half: m·2^-24 with m = (1.man)·2^(exp−126), rounded; a carry to 1024 is the smallest normal.
    const shift = 14 - e;
    if (shift > 24) return sign;
    const M = man | 0x800000;
    let m = M >>> shift;
    const rem = M & ((1 << shift) - 1), half = 1 << (shift - 1);
    if (rem > half || (rem === half && (m & 1))) m++;
    return sign | m;
  }
  let h = (e << 10) | (man >>> 13);
  const rem = man & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1))) h++; // a carry may round up into the exponent (or to inf): still right
  return sign | h;
}

/** Writes the half patterns of src into dst from dstOffset. */
export function writeHalf(src: Float32Array, dst: Uint16Array, dstOffset: number): void {
  for (let i = 0; i < src.length; i++) dst[dstOffset + i] = toHalfBits(src[i]);
}

/** The value of a half bit pattern (used by tests and the cache-size report). */
export function halfBitsToNumber(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f, m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}
