// Parquet values as JSON, and the `scores.*` column convention: pure (no Node APIs), shared by the
// Node readers/writers (parquet.ts) and the browser demo (web/parquet.ts).

export const SCORE_PREFIX = 'scores.';

/**
 * `o[k] = v` as an own data property, whatever `k` is: a field named `__proto__` stays a field
 * (a plain assignment would set the object's prototype instead and lose it).
 */
export function setField(o: Record<string, unknown>, k: string, v: unknown): void {
  if (k === '__proto__') Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
  else o[k] = v;
}

const b64 = (u: Uint8Array): string => {
  let s = '';
  for (let i = 0; i < u.length; i++) s += String.fromCharCode(u[i]);
  return btoa(s);
};

/** A Parquet value as JSON (see the top of the file). */
export function toJsonValue(v: unknown): unknown {
  if (v === undefined || v === null) return null;
  if (typeof v === 'bigint') return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString();
  if (typeof v === 'number') return Number.isFinite(v) ? (Object.is(v, -0) ? 0 : v) : null;
  if (v instanceof Date) return Number.isNaN(v.getTime()) ? null : v.toISOString();
  if (v instanceof Uint8Array) return b64(v);
  if (Array.isArray(v) || ArrayBuffer.isView(v)) return Array.from(v as ArrayLike<unknown>, toJsonValue);
  if (typeof v === 'object') {
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) if (x !== undefined) setField(o, k, toJsonValue(x));
    return o;
  }
  return v;
}

/** `scores.*` columns folded back into a `scores` object (as the JSONL form has it). */
export function unflattenScores(row: Record<string, unknown>): Record<string, unknown> {
  let scores: Record<string, unknown> | null = null;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(row)) {
    if (k.startsWith(SCORE_PREFIX)) {
      if (!scores) { scores = {}; out.scores = scores; }
      setField(scores, k.slice(SCORE_PREFIX.length), v);
    } else setField(out, k, v);
  }
  return out;
}

/** A record's `scores` object spread into `scores.*` fields (a record without one is unchanged). */
export function flattenScores(rec: Record<string, unknown>): Record<string, unknown> {
  const s = rec.scores;
  if (!s || typeof s !== 'object' || Array.isArray(s)) return rec;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(rec)) {
    if (k === 'scores') for (const [sk, sv] of Object.entries(s as Record<string, unknown>)) out[SCORE_PREFIX + sk] = sv;
    else setField(out, k, v);
  }
  return out;
}

