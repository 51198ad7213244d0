// The counter-based RNG of sampling: one uniform per (seed, step), no state, the same u32 maths in
// WGSL (shaders/generate/rng.wgsl must match it bit for bit), so a sequence's draws do not depend on
// the batch it ran in, the slot it got or the backend.

/** murmur3's 32-bit finaliser. */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Uniform in [0, 1) with 24 bits, for draw `step` of the sequence seeded `seed`. */
export function uniformAt(seed: number, step: number): number {
  const h = fmix32((fmix32((seed >>> 0) ^ 0x9e3779b9) + Math.imul(step >>> 0, 0x85ebca77)) >>> 0);
  return (h >>> 8) / 16777216;
}
