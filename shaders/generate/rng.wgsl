// The counter-based RNG of sampling, bit for bit the u32 maths of src/generate/rng.ts: one
// uniform per (seed, step), no state. Composed in front of shaders that draw (generate/sample).

// murmur3's 32-bit finaliser.
fn fmix32(h0: u32) -> u32 {
  var h = h0;
  h ^= h >> 16u;
  h *= 0x85ebca6bu;
  h ^= h >> 13u;
  h *= 0xc2b2ae35u;
  h ^= h >> 16u;
  return h;
}

// Uniform in [0, 1) with 24 bits (exact in f32), for draw `step` of the sequence seeded `seed`.
fn uniformAt(seed: u32, step: u32) -> f32 {
  let h = fmix32(fmix32(seed ^ 0x9e3779b9u) + step * 0x85ebca77u);
  return f32(h >> 8u) / 16777216.0;
}
