// What every pass-1 kernel of the fused LM head shares (kernels/logprob.ts composes this file after
// the variant's own: logprob/direct, partial, gemm, sgmat): the weight type, the uniforms, the six
// bindings, and the soft-cap and online-softmax merge arithmetic. gemm binds H and W a second time
// as vec4 arrays (bindings 6 and 7, in gemm.wgsl).

// W's element type: f32, or f16 when compiled with f16 weights (GpuRuntime swaps this alias).
alias WeightT = f32;

struct Params {
  T: u32,       // positions (rows of H)
  V: u32,       // vocabulary size
  d: u32,       // hidden size
  S: u32,       // vocabulary splits
  chunk: u32,   // vocabulary entries per split (a multiple of the variant's vocabulary tile)
  softcap: f32, // > 0: logits become softcap * tanh(logit / softcap) (Gemma 2's final_logit_softcapping)
  _pad1: u32,
  _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> H: array<f32>;              // [T, d]
@group(0) @binding(2) var<storage, read> W: array<WeightT>;          // [V, d]
@group(0) @binding(3) var<storage, read> targets: array<u32>;        // [T]
@group(0) @binding(4) var<storage, read_write> partial: array<vec4f>; // [T, S] (m, s, t, 0): see merge
@group(0) @binding(5) var<storage, read_write> tgt: array<f32>;      // [T] target logit

const NEG = -3.0e38;

// Soft-capping: cap * tanh_safe(x / cap) (Gemma 2); tanh_safe and the other shared functions:
//#include common/math

/** The soft-cap of four logits (unchanged when softcap <= 0). */
fn cap4(x: vec4f) -> vec4f {
  if (p.softcap <= 0.0) { return x; }
  let c = p.softcap;
  return c * vec4f(tanh_safe(x.x / c), tanh_safe(x.y / c), tanh_safe(x.z / c), tanh_safe(x.w / c));
}

/**
 * Two online-softmax states over disjoint logits as one. A state is (m, s, t): the running max m,
 * s = Σ e^(z−m) and t = Σ (z−m)·e^(z−m), from which log-sum-exp = m + log s and the entropy
 * H = −Σ p log p = log s − t/s. Moving to M = max(m₁, m₂): e^(z−M) = e^(z−mᵢ)·aᵢ with
 * aᵢ = e^(mᵢ−M), and z − M = (z − mᵢ) + (mᵢ − M), so s = Σ aᵢ sᵢ, t = Σ aᵢ (tᵢ + (mᵢ − M) sᵢ)
 * (kernels/logprob.ts mergeEntropyState is the same in f64). An empty state is (NEG, 0, 0).
 */
fn merge(a: vec3f, b: vec3f) -> vec3f {
  let m = max(a.x, b.x);
  let ea = exp(a.x - m);
  let eb = exp(b.x - m);
  return vec3f(m, a.y * ea + b.y * eb, ea * (a.z + (a.x - m) * a.y) + eb * (b.z + (b.x - m) * b.y));
}
