// The workgroup sum, composed into a shader by `//#include common/reduce` (src/gpu/shaders.ts).
// The shader declares `override WG: u32` (a power of two); each invocation writes its partial sum
// to red[li], then every invocation calls reduce_sum(li) (it holds barriers: uniform control
// flow), after which red[0] holds the sum. Read red[0], then barrier before red is written again.

var<workgroup> red: array<f32, WG>;

fn reduce_sum(li: u32) {
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
    if (li < stride) { red[li] += red[li + stride]; }
    workgroupBarrier();
  }
}
