// ggml tensor types as GGUF stores them: the type id (ggml.h enum ggml_type), how many elements a
// block holds and how many bytes it takes (ggml-common.h block_* structs). Only the types concord
// reads are listed; the rest are named for error messages.

export const GGML_TYPE = {
  F32: 0, F16: 1, Q4_0: 2, Q4_1: 3, Q5_0: 6, Q5_1: 7, Q8_0: 8, Q4_K: 12, Q5_K: 13, Q6_K: 14, BF16: 30,
} as const;
export type GgmlTypeName = keyof typeof GGML_TYPE;
export type GgmlType = (typeof GGML_TYPE)[GgmlTypeName];

/** Super-block size of the K-quants (ggml-common.h QK_K). */
export const QK_K = 256;

/** Elements per block and bytes per block of each readable type. */
export const TYPE_LAYOUT: Record<GgmlType, { blockElems: number; blockBytes: number }> = {
  0: { blockElems: 1, blockBytes: 4 },
  1: { blockElems: 1, blockBytes: 2 },
  30: { blockElems: 1, blockBytes: 2 },
  // block_q4_0: f16 d; u8 qs[16]
  2: { blockElems: 32, blockBytes: 18 },
  // block_q4_1: f16 d, f16 m; u8 qs[16]
  3: { blockElems: 32, blockBytes: 20 },
  // block_q5_0: f16 d; u8 qh[4]; u8 qs[16]
  6: { blockElems: 32, blockBytes: 22 },
  // block_q5_1: f16 d, f16 m; u8 qh[4]; u8 qs[16]
  7: { blockElems: 32, blockBytes: 24 },
  // block_q8_0: f16 d; i8 qs[32]
  8: { blockElems: 32, blockBytes: 34 },
  // block_q4_K: f16 d, f16 dmin; u8 scales[12]; u8 qs[128]
  12: { blockElems: QK_K, blockBytes: 144 },
  // block_q5_K: f16 d, f16 dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]
  13: { blockElems: QK_K, blockBytes: 176 },
  // block_q6_K: u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d
  14: { blockElems: QK_K, blockBytes: 210 },
};

/** ggml's names for every type id (ggml.c type_traits), for messages about types concord cannot read. */
const ALL_NAMES = [
  'F32', 'F16', 'Q4_0', 'Q4_1', 'Q4_2', 'Q4_3', 'Q5_0', 'Q5_1', 'Q8_0', 'Q8_1', 'Q2_K', 'Q3_K', 'Q4_K', 'Q5_K', 'Q6_K', 'Q8_K',
  'IQ2_XXS', 'IQ2_XS', 'IQ3_XXS', 'IQ1_S', 'IQ4_NL', 'IQ3_S', 'IQ2_S', 'IQ4_XS', 'I8', 'I16', 'I32', 'I64', 'F64', 'IQ1_M', 'BF16',
  'Q4_0_4_4', 'Q4_0_4_8', 'Q4_0_8_8', 'TQ1_0', 'TQ2_0', 'IQ4_NL_4_4', 'IQ4_NL_4_8', 'IQ4_NL_8_8', 'MXFP4',
];

export function ggmlTypeName(t: number): string {
  return ALL_NAMES[t] ?? `type ${t}`;
}

export function isReadableType(t: number): t is GgmlType {
  return Object.prototype.hasOwnProperty.call(TYPE_LAYOUT, t);
}

export const READABLE_TYPES: string[] = Object.keys(TYPE_LAYOUT).map((k) => ggmlTypeName(Number(k)));

/** Bytes that n elements of type t take (n a multiple of the block size). */
export function typeBytes(t: GgmlType, n: number): number {
  const { blockElems, blockBytes } = TYPE_LAYOUT[t];
  if (n % blockElems !== 0) throw new Error(`${ggmlTypeName(t)}: ${n} elements is not a multiple of the block size ${blockElems}`);
  return (n / blockElems) * blockBytes;
}
