// Quantizers for the GGUF writer: the round-to-nearest reference quantizers of ggml
// (ggml-quants.c quantize_row_q8_0_ref, _q4_0_ref, _q5_0_ref, _q4_K_ref with make_qkx2_quants,
// _q6_K_ref with make_qx_quants), in
// f32 arithmetic step for step, so a file written here holds the blocks llama.cpp's reference path
// writes for the same f32 weights (no importance matrix).

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

export function quantizeQ4_0(x: Float32Array): Uint8Array {
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

export function quantizeQ5_0(x: Float32Array): Uint8Array {
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
    iscale = fr(fr(fr(rmin + fr(fr(rdelta) * is)) + nmax) / fr(max - min));
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

export function quantizeQ4_K(x: Float32Array): Uint8Array {
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
    const dH = putHalf(y, o, fr(maxScale / 63)), dminH = putHalf(y, o + 2, fr(maxMin / 63));
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
  return y;
}

const GROUP_MAX_EPS = fr(1e-15);

/**
 * ggml-quants.c make_qx_quants with rmse_type 1 and no importance weights (w = x²): a signed scale
 * for n values at x[o..], levels l + nmax in L (l in [−nmax, nmax − 1]), refined over 18 nearby
 * inverse scales.
 */
function makeQx(x: Float32Array, o: number, n: number, nmax: number, L: Uint8Array, lo: number): number {
  let max = 0, amax = 0;
  for (let i = 0; i < n; i++) { const ax = Math.abs(x[o + i]); if (ax > amax) { amax = ax; max = x[o + i]; } }
  if (amax < GROUP_MAX_EPS) { L.fill(0, lo, lo + n); return 0; }
  const levels = (iscale: number, write: boolean): [number, number] => {
    let sumlx = 0, suml2 = 0;
    for (let i = 0; i < n; i++) {
      const v = x[o + i];
      const l = Math.max(-nmax, Math.min(nmax - 1, nearestInt(fr(iscale * v))));
      if (write) L[lo + i] = l + nmax;
      const w = fr(v * v);
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

export function quantizeQ6_K(x: Float32Array): Uint8Array {
  const nb = x.length / QK_K, y = new Uint8Array(typeBytes(GGML_TYPE.Q6_K, x.length));
  const L = new Uint8Array(QK_K), scales = new Float32Array(16);
  for (let i = 0; i < nb; i++) {
    const xo = i * QK_K, o = i * 210;
    let maxScale = 0, maxAbs = 0;
    for (let ib = 0; ib < 16; ib++) {
      scales[ib] = makeQx(x, xo + 16 * ib, 16, 32, L, 16 * ib);
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

/** The quantizer of each writable type. */
export const QUANTIZERS: Partial<Record<number, (x: Float32Array) => Uint8Array>> = {
  [GGML_TYPE.F32]: quantizeF32,
  [GGML_TYPE.F16]: quantizeF16,
  [GGML_TYPE.Q8_0]: quantizeQ8_0,
  [GGML_TYPE.Q4_0]: quantizeQ4_0,
  [GGML_TYPE.Q5_0]: quantizeQ5_0,
  [GGML_TYPE.Q4_K]: quantizeQ4_K,
  [GGML_TYPE.Q6_K]: quantizeQ6_K,
};
