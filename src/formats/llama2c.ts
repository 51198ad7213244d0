// The llama2.c checkpoint file format (the "legacy" export that run.c reads): a header of 7 int32
//   dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size (negative = unshared classifier), seq_len
// then f32 tensors in run.c's order (llama2cLayout). src/models/llama2c.ts maps them onto the
// canonical weights.

import { littleEndianHost, nodeFs } from '../tokenizer/node.js';

export interface Llama2cHeader {
  dim: number;
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  vocabSize: number;
  /** vocab_size was positive in the file: the classifier is the token embedding. */
  sharedClassifier: boolean;
  seqLen: number;
}

export const HEADER_BYTES = 28;

/** Bytes a checkpoint with this header must have, and where each section starts (in floats after the header). */
export function llama2cLayout(h: Llama2cHeader): { bytes: number; sections: { name: string; offset: number; count: number }[] } {
  const { dim: d, hiddenDim: ff, nLayers: L, vocabSize: V, seqLen } = h;
  const hs = d / h.nHeads;
  const kvd = h.nKvHeads * hs;
  const parts: [string, number][] = [
    ['token_embedding', V * d], ['rms_att_weight', L * d], ['wq', L * d * d], ['wk', L * kvd * d], ['wv', L * kvd * d], ['wo', L * d * d],
    ['rms_ffn_weight', L * d], ['w1', L * ff * d], ['w2', L * d * ff], ['w3', L * ff * d], ['rms_final_weight', d],
    ['freq_cis', seqLen * hs], // real and imag, seq_len·head_size/2 each
  ];
  if (!h.sharedClassifier) parts.push(['wcls', V * d]);
  const sections: { name: string; offset: number; count: number }[] = [];
  let off = 0;
  for (const [name, count] of parts) {
    sections.push({ name, offset: off, count });
    off += count;
  }
  return { bytes: HEADER_BYTES + 4 * off, sections };
}

export function checkLittleEndian(source: string): void {
  if (!littleEndianHost()) throw new Error(`${source}: model files are little-endian and this machine is not`);
}

/**
 * Validate a checkpoint's header (its first 28 bytes, or more) against the file's total size.
 * Errors name `source` and what is wrong.
 */
export function parseLlama2cHeader(data: Uint8Array | ArrayBuffer, fileBytes: number, source: string): Llama2cHeader {
  const buf = data instanceof Uint8Array ? data : new Uint8Array(data);
  if (fileBytes < HEADER_BYTES || buf.length < HEADER_BYTES) throw new Error(`${source}: truncated llama2.c checkpoint: ${fileBytes} bytes, shorter than the 28-byte header`);
  const dv = new DataView(buf.buffer, buf.byteOffset, HEADER_BYTES);
  if (dv.getUint32(0, true) === 0x616b3432) {
    throw new Error(`${source}: llama2.c "ak42" (version ${dv.getInt32(4, true)}) export; only the legacy run.c format (export.py --version 0) is supported`);
  }
  const v = [0, 1, 2, 3, 4, 5, 6].map((i) => dv.getInt32(4 * i, true));
  const [dim, hiddenDim, nLayers, nHeads, nKvHeads, vocab, seqLen] = v;
  const h: Llama2cHeader = { dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize: Math.abs(vocab), sharedClassifier: vocab > 0, seqLen };
  const bad = (what: string) => new Error(`${source}: not a llama2.c checkpoint: header [${v.join(', ')}] has ${what}`);
  if (!(dim > 0 && hiddenDim > 0 && nLayers > 0 && nHeads > 0 && nKvHeads > 0 && vocab !== 0 && seqLen > 0)) throw bad('a non-positive size');
  if (dim % nHeads !== 0) throw bad(`dim ${dim} not divisible by n_heads ${nHeads}`);
  if (nHeads % nKvHeads !== 0) throw bad(`n_heads ${nHeads} not divisible by n_kv_heads ${nKvHeads}`);
  if ((dim / nHeads) % 2 !== 0) throw bad(`odd head size ${dim / nHeads}`);
  const { bytes } = llama2cLayout(h);
  if (fileBytes !== bytes) {
    const what = fileBytes < bytes ? 'truncated' : 'too long';
    throw new Error(`${source}: ${what} llama2.c checkpoint: the header (dim ${dim}, hidden ${hiddenDim}, ${nLayers} layers, ${nHeads}/${nKvHeads} heads, vocab ${vocab}, seq_len ${seqLen}) needs exactly ${bytes} bytes, the file has ${fileBytes}`);
  }
  return h;
}

export function readExactly(fd: number, dst: Uint8Array, position: number, path: string): void {
  const { readSync } = nodeFs();
  let done = 0;
  while (done < dst.length) {
    const n = readSync(fd, dst, done, Math.min(dst.length - done, 1 << 30), position + done);
    if (n === 0) throw new Error(`${path}: unexpected end of file at byte ${position + done}`);
    done += n;
  }
}

/** Header of a checkpoint file, validated against the file size (Node). */
export function readLlama2cHeader(path: string): Llama2cHeader & { fileBytes: number } {
  checkLittleEndian(path);
  const fs = nodeFs();
  let fd: number;
  try {
    fd = fs.openSync(path, 'r');
  } catch (e) {
    throw new Error(`${path}: cannot open llama2.c checkpoint: ${(e as Error).message}`);
  }
  try {
    const fileBytes = fs.fstatSync(fd).size;
    const hb = new Uint8Array(Math.min(HEADER_BYTES, fileBytes));
    readExactly(fd, hb, 0, path);
    return { ...parseLlama2cHeader(hb, fileBytes, path), fileBytes };
  } finally {
    fs.closeSync(fd);
  }
}
