// The one padded-batch type: what the LM backends and the sentence encoder receive once the
// planner (./index.ts planBatches) has chosen which sequences go together.

/** B sequences right-padded to L tokens, row-major: ids [B·L], real lengths [B], mask [B·L] (1 = real token). */
export interface PaddedBatch {
  B: number;
  L: number;
  ids: Uint32Array;
  seqLen: Uint32Array;
  mask: Uint8Array;
}

/** Right-pad token-id sequences into one batch (L is at least 1). */
export function padBatch(seqs: readonly ArrayLike<number>[], padId = 0): PaddedBatch {
  const B = seqs.length;
  let L = 1;
  for (const s of seqs) L = Math.max(L, s.length);
  const ids = new Uint32Array(B * L).fill(padId);
  const seqLen = new Uint32Array(B);
  const mask = new Uint8Array(B * L);
  seqs.forEach((s, b) => {
    ids.set(s, b * L);
    seqLen[b] = s.length;
    mask.fill(1, b * L, b * L + s.length);
  });
  return { B, L, ids, seqLen, mask };
}
