// Quantizers for the GGUF writer: the round-to-nearest reference quantizers of ggml
// (ggml-quants.c quantize_row_q8_0_ref, _q4_0_ref, _q5_0_ref, _q4_K_ref with make_qkx2_quants,
// _q6_K_ref with make_qx_quants), in
// f32 arithmetic step for step, so a file written here holds the blocks llama.cpp's reference path
// writes for the same f32 weights (no importance matrix).
//
// With an importance matrix (`qw`: one weight per input column, the row length; llama.cpp's
// `imatrix` values, src/quant/imatrix.ts) Q4_0, Q5_0, Q4_K and Q6_K take ggml's quant_weights
// branches instead, row by row: quantize_row_q4_0_impl / _q5_0_impl (make_qx_quants with
// qw·sqrt(σ² + x²)), quantize_row_q4_K_impl (make_qkx3_quants, then make_qp_quants for the 6-bit
// scales and mins), quantize_row_q6_K_impl (make_qx_quants weighted by qw itself). Q8_0 ignores it,
// as ggml's quantize_q8_0 does. Transcribed from ggml-quants.c at llama.cpp commit 01243c58.

import { f32ToF16Bits } from '../util/f16.js';
import { halfToF32, scaleMinK4 } from './dequant.js';
import { GGML_TYPE, QK_K, typeBytes } from './types.js';

const fr = Math.fround;
const f32 = new Float32Array(1);
const i32 = new Int32Array(f32.buffer);

/** ggml-quants.c nearest_int: round half to even through the 1.5·2^23 trick, in f32. */
export function nearestInt(v: number): number {
  f32[0] = fr(v) + 12582912;
  return (i32[0] & 0x007fffff) - 0x00400000;
}

/** C roundf: half away from zero. */
const roundf = (v: number): number => (v < 0 ? -Math.floor(-v + 0.5) : Math.floor(v + 0.5));
/** C (int8_t) cast of a float in range: truncation toward zero. */
const trunc = Math.trunc;

function putHalf(y: Uint8Array, o: number, v: number): number {
  const h = f32ToF16Bits(v);
  y[o] = h & 0xff;
  y[o + 1] = h >> 8;
  return halfToF32(h);
}

export function quantizeQ8_0(x: Float32Array): Uint8Array {
  const nb = x.length / 32, y = new Uint8Array(typeBytes(GGML_TYPE.Q8_0, x.length));
  for (let i = 0; i < nb; i++) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[i * 32 + j]));
    const d = fr(amax / 127), id = d ? fr(1 / d) : 0;
    putHalf(y, i * 34, d);
    for (let j = 0; j < 32; j++) y[i * 34 + 2 + j] = roundf(fr(x[i * 32 + j] * id)) & 0xff;
  }
  return y;
}

/** The value of largest magnitude (the first such) of a 32-element block (q4_0 / q5_0 'max'). */
function signedAbsMax(x: Float32Array, o: number): number {
  let amax = 0, max = 0;
  for (let j = 0; j < 32; j++) {
    const v = x[o + j];
    if (amax < Math.abs(v)) { amax = Math.abs(v); max = v; }
  }
  return max;
}

/** The row length an importance matrix gives (its own length), checked against the tensor. */
function qwRows(x: Float32Array, qw: Float32Array, block: number): number {
  const n = qw.length;
  if (n === 0 || n % block !== 0 || x.length % n !== 0) throw new Error(`importance matrix of ${n} columns does not fit a tensor of ${x.length} values in blocks of ${block}`);
  return x.length / n;
}

/**
 * quantize_row_q4_0_impl / _q5_0_impl with quant_weights: per block, make_qx_quants (nmax 8 or 16)
 * weighted by qw[j]·sqrt(σ² + x²) with σ² the row's mean square; `put` packs the levels 0..2·nmax−1.
 */
function legacyWeighted(x: Float32Array, qw: Float32Array, nmax: number, bytes: number, put: (y: Uint8Array, o: number, L: Uint8Array) => void): Uint8Array {
  const y = new Uint8Array((x.length / 32) * bytes);
  const n = qw.length, rows = qwRows(x, qw, 32), w = new Float32Array(32), L = new Uint8Array(32), xb = new Float32Array(32);
  for (let r = 0; r < rows; r++) {
    let sumX2 = 0;
    for (let j = 0; j < n; j++) sumX2 = fr(sumX2 + fr(x[r * n + j] * x[r * n + j]));
    const sigma2 = fr(sumX2 / n);
    for (let ib = 0; ib < n / 32; ib++) {
      const xo = r * n + 32 * ib;
      for (let j = 0; j < 32; j++) { xb[j] = x[xo + j]; w[j] = fr(qw[32 * ib + j] * fr(Math.sqrt(fr(sigma2 + fr(xb[j] * xb[j]))))); }
      const d = makeQx(xb, 0, 32, nmax, L, 0, w);
      const o = (xo / 32) * bytes;
      putHalf(y, o, d);
      put(y, o, L);
    }
  }
  return y;
}

export function quantizeQ4_0(x: Float32Array, qw?: Float32Array): Uint8Array {
  if (qw) return legacyWeighted(x, qw, 8, 18, (y, o, L) => { for (let j = 0; j < 16; j++) y[o + 2 + j] = L[j] | (L[j + 16] << 4); });
  const nb = x.length / 32, y = new Uint8Array(typeBytes(GGML_TYPE.Q4_0, x.length));
  for (let i = 0; i < nb; i++) {
    const d = fr(signedAbsMax(x, i * 32) / -8), id = d ? fr(1 / d) : 0;
    putHalf(y, i * 18, d);
    for (let j = 0; j < 16; j++) {
      const xi0 = Math.min(15, trunc(fr(fr(x[i * 32 + j] * id) + 8.5)));
      const xi1 = Math.min(15, trunc(fr(fr(x[i * 32 + 16 + j] * id) + 8.5)));
      y[i * 18 + 2 + j] = xi0 | (xi1 << 4);
    }
  }
  return y;
}

export function quantizeQ5_0(x: Float32Array, qw?: Float32Array): Uint8Array {
  if (qw) {
    return legacyWeighted(x, qw, 16, 22, (y, o, L) => {
      let qh = 0;
      for (let j = 0; j < 16; j++) {
        y[o + 6 + j] = (L[j] & 0xf) | ((L[j + 16] & 0xf) << 4);
        qh |= ((L[j] & 0x10) >> 4) << j;
        qh |= ((L[j + 16] & 0x10) >> 4) << (j + 16);
      }
      y[o + 2] = qh & 0xff; y[o + 3] = (qh >>> 8) & 0xff; y[o + 4] = (qh >>> 16) & 0xff; y[o + 5] = (qh >>> 24) & 0xff;
    });
  }
  const nb = x.length / 32, y = new Uint8Array(typeBytes(GGML_TYPE.Q5_0, x.length));
  for (let i = 0; i < nb; i++) {
    const o = i * 22;
    const d = fr(signedAbsMax(x, i * 32) / -16), id = d ? fr(1 / d) : 0;
    putHalf(y, o, d);
    let qh = 0;
    for (let j = 0; j < 16; j++) {
      const xi0 = Math.min(31, trunc(fr(fr(x[i * 32 + j] * id) + 16.5)));
      const xi1 = Math.min(31, trunc(fr(fr(x[i * 32 + 16 + j] * id) + 16.5)));
      y[o + 6 + j] = (xi0 & 0xf) | ((xi1 & 0xf) << 4);
      qh |= ((xi0 & 0x10) >> 4) << j;
      qh |= ((xi1 & 0x10) >> 4) << (j + 16);
    }
    y[o + 2] = qh & 0xff; y[o + 3] = (qh >>> 8) & 0xff; y[o + 4] = (qh >>> 16) & 0xff; y[o + 5] = (qh >>> 24) & 0xff;
  }
  return y;
}

/**
 * ggml-quants.c make_qkx2_quants for one 32-element group at x[o..]: the scale (returned) and
 * min (`res.min`, as a non-negative offset) minimising the weighted error, levels 0..nmax in L.
 * It is make_qkx3_quants (use_mad false) too: that one clamps a trial level as
 * `v > 0 ? nearest_int(MIN(v, nmax)) : 0`, which equals MAX(0, MIN(nmax, nearest_int(v))) for every
 * v (NaN included: nearest_int gives 0), and takes rmin as a float — fr(rmin), exact for qkx2's −1.
 */
function makeQkx2(x: Float32Array, o: number, n: number, nmax: number, w: Float32Array, L: Uint8Array,
  rmin: number, rdelta: number, nstep: number): { scale: number; min: number } {
  let min = x[o], max = x[o], sumW = w[0], sumX = fr(sumW * x[o]);
  for (let i = 1; i < n; i++) {
    const v = x[o + i];
    if (v < min) min = v;
    if (v > max) max = v;
    sumW = fr(sumW + w[i]);
    sumX = fr(sumX + fr(w[i] * v));
  }
  if (min > 0) min = 0;
  if (max === min) { L.fill(0, 0, n); return { scale: 0, min: -min }; }
  let iscale = fr(nmax / fr(max - min)), scale = fr(1 / iscale), best = 0;
  for (let i = 0; i < n; i++) {
    const l = Math.max(0, Math.min(nmax, nearestInt(fr(iscale * fr(x[o + i] - min)))));
    L[i] = l;
    const diff = fr(fr(fr(scale * l) + min) - x[o + i]);
    best = fr(best + fr(w[i] * fr(diff * diff)));
  }
  const aux = new Uint8Array(n);
  for (let is = 0; is <= nstep; is++) {
    // (max - min) with the best min so far, as ggml; rdelta is a C float literal (0.1f)
    iscale = fr(fr(fr(fr(rmin) + fr(fr(rdelta) * is)) + nmax) / fr(max - min));
    let sl = 0, sl2 = 0, sxl = 0;
    for (let i = 0; i < n; i++) {
      const l = Math.max(0, Math.min(nmax, nearestInt(fr(iscale * fr(x[o + i] - min)))));
      aux[i] = l;
      const wl = fr(w[i] * l);
      sl = fr(sl + wl); sl2 = fr(sl2 + fr(wl * l)); sxl = fr(sxl + fr(wl * x[o + i]));
    }
    const D = fr(fr(sumW * sl2) - fr(sl * sl));
    if (D > 0) {
      let thisScale = fr(fr(fr(sumW * sxl) - fr(sumX * sl)) / D);
      let thisMin = fr(fr(fr(sl2 * sumX) - fr(sl * sxl)) / D);
      if (thisMin > 0) { thisMin = 0; thisScale = fr(sxl / sl2); }
      let err = 0;
      for (let i = 0; i < n; i++) {
        const diff = fr(fr(fr(thisScale * aux[i]) + thisMin) - x[o + i]);
        err = fr(err + fr(w[i] * fr(diff * diff)));
      }
      if (err < best) { L.set(aux); best = err; scale = thisScale; min = thisMin; }
    }
  }
  return { scale, min: -min };
}

/**
 * ggml-quants.c make_qp_quants: a non-negative scale for the n values x (sub-block scales or mins)
 * with levels 0..nmax in L, weighted by qw, refined over 8 nearby inverse scales then up to 5
 * passes of single-level moves.
 */
function makeQp(n: number, nmax: number, x: Float32Array, L: Uint8Array, qw: Float32Array): number {
  let max = 0;
  for (let i = 0; i < n; i++) max = Math.max(max, x[i]);
  if (max < GROUP_MAX_EPS) { L.fill(0, 0, n); return 0; }
  let iscale = fr(nmax / max);
  for (let i = 0; i < n; i++) L[i] = nearestInt(fr(iscale * x[i])) & 0xff;
  const scale = fr(1 / iscale);
  let bestMse = 0;
  for (let i = 0; i < n; i++) {
    const diff = fr(x[i] - fr(scale * L[i]));
    bestMse = fr(bestMse + fr(fr(qw[i] * diff) * diff));
  }
  for (let is = -4; is <= 4; is++) {
    if (is === 0) continue;
    const iscaleIs = fr(fr(fr(fr(0.1) * is) + nmax) / max), scaleIs = fr(1 / iscaleIs);
    let mse = 0;
    for (let i = 0; i < n; i++) {
      const l = Math.min(nmax, nearestInt(fr(iscaleIs * x[i])));
      const diff = fr(x[i] - fr(scaleIs * l));
      mse = fr(mse + fr(fr(qw[i] * diff) * diff));
    }
    if (mse < bestMse) { bestMse = mse; iscale = iscaleIs; }
  }
  let sumlx = 0, suml2 = 0;
  for (let i = 0; i < n; i++) {
    const l = Math.min(nmax, nearestInt(fr(iscale * x[i])));
    L[i] = l & 0xff;
    sumlx = fr(sumlx + fr(fr(qw[i] * x[i]) * l));
    suml2 = fr(suml2 + fr(fr(qw[i] * l) * l));
  }
  for (let itry = 0; itry < 5; itry++) {
    let changed = 0;
    for (let i = 0; i < n; i++) {
      const w = qw[i];
      let slx = fr(sumlx - fr(fr(w * x[i]) * L[i]));
      let sl2 = fr(suml2 - fr(fr(w * L[i]) * L[i]));
      if (slx > 0 && sl2 > 0) {
        const newL = Math.min(nmax, nearestInt(fr(fr(x[i] * sl2) / slx)));
        if (newL !== L[i]) {
          slx = fr(slx + fr(fr(w * x[i]) * newL));
          sl2 = fr(sl2 + fr(fr(w * newL) * newL));
          if (fr(fr(slx * slx) * suml2) > fr(fr(sumlx * sumlx) * sl2)) { L[i] = newL & 0xff; sumlx = slx; suml2 = sl2; changed++; }
        }
      }
    }
    if (!changed) break;
  }
  return suml2 > 0 ? fr(sumlx / suml2) : 0;
}

/** quantize_row_q4_K_impl with quant_weights, row by row (row length qw.length). */
function quantizeQ4KWeighted(x: Float32Array, qw: Float32Array): Uint8Array {
  const n = qw.length;
  qwRows(x, qw, QK_K);
  const nb = x.length / QK_K, y = new Uint8Array(typeBytes(GGML_TYPE.Q4_K, x.length));
  const L = new Uint8Array(QK_K), w = new Float32Array(32), sub = new Uint8Array(32), Ls = new Uint8Array(8), Lm = new Uint8Array(8);
  const scales = new Float32Array(8), mins = new Float32Array(8), sw = new Float32Array(8);
  for (let i = 0; i < nb; i++) {
    const xo = i * QK_K, o = i * 144, qo = xo % n;
    let sumX2 = 0;
    for (let l = 0; l < QK_K; l++) sumX2 = fr(sumX2 + fr(x[xo + l] * x[xo + l]));
    const sigma2 = fr(fr(2 * sumX2) / QK_K);
    for (let j = 0; j < 8; j++) {
      let sumw = 0;
      for (let l = 0; l < 32; l++) {
        const v = x[xo + 32 * j + l];
        w[l] = fr(qw[qo + 32 * j + l] * fr(Math.sqrt(fr(sigma2 + fr(v * v)))));
        sumw = fr(sumw + w[l]);
      }
      sw[j] = sumw;
      const r = makeQkx2(x, xo + 32 * j, 32, 15, w, sub, -0.9, 0.05, 36);
      L.set(sub, 32 * j);
      scales[j] = r.scale; mins[j] = r.min;
    }
    const dBlock = makeQp(8, 63, scales, Ls, sw), mBlock = makeQp(8, 63, mins, Lm, sw);
    const sc = y.subarray(o + 4, o + 16);
    for (let j = 0; j < 8; j++) {
      const ls = Ls[j], lm = Lm[j];
      if (j < 4) { sc[j] = ls; sc[j + 4] = lm; } else {
        sc[j + 4] = (ls & 0xf) | ((lm & 0xf) << 4);
        sc[j - 4] |= (ls >> 4) << 6;
        sc[j] |= (lm >> 4) << 6;
      }
    }
    finishQ4K(x, xo, y, o, putHalf(y, o, dBlock), putHalf(y, o + 2, mBlock), L);
  }
  return y;
}

/** The last steps of both Q4_K quantizers: re-quantize with the stored 6-bit scales and mins, pack the nibbles. */
function finishQ4K(x: Float32Array, xo: number, y: Uint8Array, o: number, dH: number, dminH: number, L: Uint8Array): void {
  for (let j = 0; j < 8; j++) {
    const [s, m] = scaleMinK4(j, y, o + 4);
    const d = fr(dH * s);
    if (!d) continue;
    const dm = fr(dminH * m);
    for (let ii = 0; ii < 32; ii++) L[32 * j + ii] = Math.max(0, Math.min(15, nearestInt(fr(fr(x[xo + 32 * j + ii] + dm) / d))));
  }
  for (let j = 0, q = o + 16; j < QK_K; j += 64, q += 32) {
    for (let l = 0; l < 32; l++) y[q + l] = L[j + l] | (L[j + l + 32] << 4);
  }
}

export function quantizeQ4_K(x: Float32Array, qw?: Float32Array): Uint8Array {
  if (qw) return quantizeQ4KWeighted(x, qw);
  const nb = x.length / QK_K, y = new Uint8Array(typeBytes(GGML_TYPE.Q4_K, x.length));
  const L = new Uint8Array(QK_K), w = new Float32Array(32), sub = new Uint8Array(32);
  const scales = new Float32Array(8), mins = new Float32Array(8);
  for (let i = 0; i < nb; i++) {
    const xo = i * QK_K, o = i * 144;
    let maxScale = 0, maxMin = 0;
    for (let j = 0; j < 8; j++) {
      let sumX2 = 0;
      for (let l = 0; l < 32; l++) sumX2 = fr(sumX2 + fr(x[xo + 32 * j + l] * x[xo + 32 * j + l]));
      const avX = fr(Math.sqrt(fr(sumX2 / 32)));
      for (let l = 0; l < 32; l++) w[l] = fr(avX + Math.abs(x[xo + 32 * j + l]));
      const r = makeQkx2(x, xo + 32 * j, 32, 15, w, sub, -1, 0.1, 20);
      L.set(sub, 32 * j);
      scales[j] = r.scale; mins[j] = r.min;
      if (r.scale > maxScale) maxScale = scales[j];
      if (r.min > maxMin) maxMin = mins[j];
    }
    const invScale = maxScale > 0 ? fr(63 / maxScale) : 0, invMin = maxMin > 0 ? fr(63 / maxMin) : 0;
    const sc = y.subarray(o + 4, o + 16);
    for (let j = 0; j < 8; j++) {
      const ls = Math.min(63, nearestInt(fr(invScale * scales[j])) & 0xff), lm = Math.min(63, nearestInt(fr(invMin * mins[j])) & 0xff);
      if (j < 4) { sc[j] = ls; sc[j + 4] = lm; } else {
        sc[j + 4] = (ls & 0xf) | ((lm & 0xf) << 4);
        sc[j - 4] |= (ls >> 4) << 6;
        sc[j] |= (lm >> 4) << 6;
      }
    }
    finishQ4K(x, xo, y, o, putHalf(y, o, fr(maxScale / 63)), putHalf(y, o + 2, fr(maxMin / 63)), L);
  }
  return y;
}

const GROUP_MAX_EPS = fr(1e-15);

/**
 * ggml-quants.c make_qx_quants with rmse_type 1: a signed scale for n values at x[o..], levels
 * l + nmax in L (l in [−nmax, nmax − 1]), refined over 18 nearby inverse scales. The weights are
 * qw[qo..] when given (quant_weights), else x².
 */
function makeQx(x: Float32Array, o: number, n: number, nmax: number, L: Uint8Array, lo: number, qw?: Float32Array, qo = 0): number {
  let max = 0, amax = 0;
  for (let i = 0; i < n; i++) { const ax = Math.abs(x[o + i]); if (ax > amax) { amax = ax; max = x[o + i]; } }
  if (amax < GROUP_MAX_EPS) { L.fill(0, lo, lo + n); return 0; }
  const levels = (iscale: number, write: boolean): [number, number] => {
    let sumlx = 0, suml2 = 0;
    for (let i = 0; i < n; i++) {
      const v = x[o + i];
      const l = Math.max(-nmax, Math.min(nmax - 1, nearestInt(fr(iscale * v))));
      if (write) L[lo + i] = l + nmax;
      const w = qw ? qw[qo + i] : fr(v * v);
      sumlx = fr(sumlx + fr(fr(w * v) * l));
      suml2 = fr(suml2 + fr(fr(w * l) * l));
    }
    return [sumlx, suml2];
  };
  let [sumlx, suml2] = levels(fr(-nmax / max), true);
  let scale = suml2 ? fr(sumlx / suml2) : 0;
  let best = fr(scale * sumlx);
  for (let is = -9; is <= 9; is++) {
    if (is === 0) continue;
    const iscale = fr(-fr(nmax + fr(fr(0.1) * is)) / max);
    [sumlx, suml2] = levels(iscale, false);
    if (suml2 > 0 && fr(sumlx * sumlx) > fr(best * suml2)) {
      levels(iscale, true);
      scale = fr(sumlx / suml2);
      best = fr(scale * sumlx);
    }
  }
  return scale;
}

export function quantizeQ6_K(x: Float32Array, qw?: Float32Array): Uint8Array {
  const nb = x.length / QK_K, y = new Uint8Array(typeBytes(GGML_TYPE.Q6_K, x.length));
  const n = qw ? qw.length : 0;
  if (qw) qwRows(x, qw, QK_K);
  const L = new Uint8Array(QK_K), scales = new Float32Array(16);
  for (let i = 0; i < nb; i++) {
    const xo = i * QK_K, o = i * 210;
    let maxScale = 0, maxAbs = 0;
    for (let ib = 0; ib < 16; ib++) {
      // quantize_row_q6_K_impl: the importance weights themselves (not qw·sqrt(σ² + x²))
      scales[ib] = qw ? makeQx(x, xo + 16 * ib, 16, 32, L, 16 * ib, qw, (xo % n) + 16 * ib) : makeQx(x, xo + 16 * ib, 16, 32, L, 16 * ib);
      if (Math.abs(scales[ib]) > maxAbs) { maxAbs = Math.abs(scales[ib]); maxScale = scales[ib]; }
    }
    if (maxAbs < GROUP_MAX_EPS) continue; // an all-zero block (d = 0)
    const iscale = fr(-128 / maxScale);
    const dH = putHalf(y, o + 208, fr(1 / iscale));
    for (let ib = 0; ib < 16; ib++) y[o + 192 + ib] = Math.min(127, nearestInt(fr(iscale * scales[ib]))) & 0xff;
    for (let j = 0; j < 16; j++) {
      const d = fr(dH * ((y[o + 192 + j] << 24) >> 24));
      if (!d) continue;
      for (let ii = 0; ii < 16; ii++) L[16 * j + ii] = Math.max(-32, Math.min(31, nearestInt(fr(x[xo + 16 * j + ii] / d)))) + 32;
    }
    for (let j = 0, ql = o, qh = o + 128; j < QK_K; j += 128, ql += 64, qh += 32) {
      for (let l = 0; l < 32; l++) {
        const a = L[j + l], b = L[j + l + 32], c = L[j + l + 64], e = L[j + l + 96];
        y[ql + l] = (a & 0xf) | ((c & 0xf) << 4);
        y[ql + l + 32] = (b & 0xf) | ((e & 0xf) << 4);
        y[qh + l] = (a >> 4) | ((b >> 4) << 2) | ((c >> 4) << 4) | ((e >> 4) << 6);
      }
    }
  }
  return y;
}

export function quantizeF16(x: Float32Array): Uint8Array {
  const y = new Uint8Array(2 * x.length);
  for (let i = 0; i < x.length; i++) { const h = f32ToF16Bits(x[i]); y[2 * i] = h & 0xff; y[2 * i + 1] = h >> 8; }
  return y;
}

export function quantizeF32(x: Float32Array): Uint8Array {
  return new Uint8Array(x.slice().buffer);
}

/**
 * The quantizer of each writable type. `qw`, when given, is an importance matrix (one weight per
 * column; x holds whole rows of that length): ggml's quant_weights path where the type has one.
 */
export const QUANTIZERS: Partial<Record<number, (x: Float32Array, qw?: Float32Array) => Uint8Array>> = {
  [GGML_TYPE.F32]: quantizeF32,
  [GGML_TYPE.F16]: quantizeF16,
  [GGML_TYPE.Q8_0]: quantizeQ8_0,
  [GGML_TYPE.Q4_0]: quantizeQ4_0,
  [GGML_TYPE.Q5_0]: quantizeQ5_0,
  [GGML_TYPE.Q4_K]: quantizeQ4_K,
  [GGML_TYPE.Q6_K]: quantizeQ6_K,
};
