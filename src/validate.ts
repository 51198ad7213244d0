// One validation helper for tests and benchmarks (llm.c's validate_result): an element passes when
// |gpu - cpu| <= atol + rtol * |cpu|; masked entries are skipped; the first mismatches are listed.

export interface ValidateOptions {
  atol?: number;
  rtol?: number;
  /** Entries where mask[i] is 0/false are skipped. */
  mask?: ArrayLike<number | boolean>;
  /** How many mismatches to list (default 10, as llm.c). */
  maxMismatches?: number;
}

export interface Mismatch { index: number; gpu: number; cpu: number; err: number }

export interface ValidateResult {
  ok: boolean;
  checked: number;
  maxAbsErr: number;
  maxAbsErrIndex: number;
  maxRelErr: number;
  mismatches: Mismatch[];
  mismatchCount: number;
  summary: string;
}

export function validate(gpu: ArrayLike<number>, cpu: ArrayLike<number>, opts: ValidateOptions = {}): ValidateResult {
  const atol = opts.atol ?? 1e-4;
  const rtol = opts.rtol ?? 0;
  const limit = opts.maxMismatches ?? 10;
  if (gpu.length !== cpu.length) {
    return {
      ok: false, checked: 0, maxAbsErr: Infinity, maxAbsErrIndex: -1, maxRelErr: Infinity, mismatches: [], mismatchCount: 1,
      summary: `length mismatch: gpu ${gpu.length} vs cpu ${cpu.length}`,
    };
  }
  let maxAbsErr = 0, maxAbsErrIndex = -1, maxRelErr = 0, checked = 0, mismatchCount = 0;
  const mismatches: Mismatch[] = [];
  for (let i = 0; i < gpu.length; i++) {
    if (opts.mask && !opts.mask[i]) continue;
    checked++;
    const g = gpu[i], c = cpu[i];
    const err = Math.abs(g - c);
    // NaN on either side is always a mismatch (err is NaN, so the comparison below fails).
    const bad = !(err <= atol + rtol * Math.abs(c));
    const errForMax = Number.isNaN(err) ? Infinity : err;
    if (errForMax > maxAbsErr || maxAbsErrIndex < 0) { maxAbsErr = errForMax; maxAbsErrIndex = i; }
    if (c !== 0) maxRelErr = Math.max(maxRelErr, errForMax / Math.abs(c));
    if (bad) {
      mismatchCount++;
      if (mismatches.length < limit) mismatches.push({ index: i, gpu: g, cpu: c, err });
    }
  }
  const ok = mismatchCount === 0;
  const head = `${ok ? 'OK' : 'MISMATCH'}: ${checked} checked, max abs err ${maxAbsErr.toExponential(3)} at [${maxAbsErrIndex}] (atol ${atol}, rtol ${rtol})`;
  const tail = mismatches.map((m) => `  [${m.index}] gpu ${m.gpu} cpu ${m.cpu} err ${m.err}`).join('\n');
  return {
    ok, checked, maxAbsErr, maxAbsErrIndex, maxRelErr, mismatches, mismatchCount,
    summary: ok ? head : `${head}; ${mismatchCount} mismatches, first:\n${tail}`,
  };
}
