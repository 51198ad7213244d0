// Test entry for generate/rng (composed after it): for pairs (seed, step) = (pairs[2i], pairs[2i+1]),
// out[2i] = fmix32(seed), out[2i+1] = the bits of uniformAt(seed, step).

struct Params { n: u32, _a: u32, _b: u32, _c: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> pairs: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x;
  if (i >= p.n) { return; }
  let seed = pairs[2u * i];
  let step = pairs[2u * i + 1u];
  out[2u * i] = fmix32(seed);
  out[2u * i + 1u] = bitcast<u32>(uniformAt(seed, step));
}
