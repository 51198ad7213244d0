// `concord quantize`: write a model as a GGUF file, its 2-D weights quantized (src/formats/gguf-export.ts).

import { statSync } from 'node:fs';
import { ggufExport, QUANT_TYPES } from '../formats/gguf-export.js';
import { writeGguf } from '../formats/gguf-write.js';
import { loadWeights, withGgufFile } from '../models/load.js';
import { calibrationSequences, collectImatrix } from '../quant/imatrix.js';
import { ggmlTypeName } from '../quant/types.js';
import { choiceFlag, command, EXIT, log, numFlag, parseFlags, UsageError } from './common.js';

export const QUANTIZE_HELP = `concord quantize MODEL -o model.Q8_0.gguf [--type q8_0|q4_0|q4_k|q4_k_m|f16|f32] [--imatrix-data FILE [--imatrix-limit N]] [--revision R] [--gguf-file F]

Writes MODEL (default, stories15M, a llama2.c .bin, a Hugging Face folder, a Hub id — with --gguf-file F one
GGUF file of its repo —, a .gguf)
as a GGUF v3 file that concord and llama.cpp read: the 2-D weights in --type (default q8_0; llama.cpp's
reference quantizers), norms and biases in F32, the tokenizer and chat template in tokenizer.ggml.*.
  As llama.cpp: under q4_0 / q4_k / q4_k_m the LM head (or tied embedding) is Q6_K; q4_k_m also
  gives attn_v and ffn_down of some layers Q6_K; K-quant rows whose length is not a multiple of
  256 fall back (Q4_K → Q5_0, Q6_K → Q8_0).
  --imatrix-data FILE: an importance matrix as llama.cpp's imatrix tool computes it (E[x²] of each
  block linear's input columns), from the CPU twin run over FILE — a .txt text (512-token chunks)
  or a records file (one sequence per record: prompt, blank line, response); --imatrix-limit N
  uses the first N sequences. Q4_0, Q5_0, Q4_K and Q6_K then take ggml's importance-weighted
  quantizers (Q8_0 ignores it, as in ggml).
Architectures written: llama, qwen2, qwen3, gemma2, gemma3 (from the matching models).`;

export const quantizeCommand = command('quantize', QUANTIZE_HELP, async (argv) => {
  const { values: v, positionals } = parseFlags(argv, { o: { type: 'string', short: 'o' }, output: { type: 'string' }, type: { type: 'string' }, revision: { type: 'string' }, 'gguf-file': { type: 'string' }, 'imatrix-data': { type: 'string' }, 'imatrix-limit': { type: 'string' } }, true);
  if (positionals.length !== 1) throw new UsageError('give one MODEL to quantize');
  const out = v.o ?? v.output;
  if (!out) throw new UsageError('-o FILE.gguf is required');
  const type = choiceFlag(v.type ?? 'q8_0', '--type', QUANT_TYPES);
  const m = await loadWeights(withGgufFile(positionals[0], v['gguf-file'])!, { revision: v.revision });
  let imatrix;
  if (v['imatrix-limit'] !== undefined && !v['imatrix-data']) throw new UsageError('--imatrix-limit needs --imatrix-data');
  if (v['imatrix-data']) {
    const limit = numFlag(v['imatrix-limit'], '--imatrix-limit', { int: true, min: 1 }) ?? Infinity;
    const t = Date.now();
    const im = collectImatrix(m, await calibrationSequences(m, v['imatrix-data'], limit));
    imatrix = im.values;
    log(`concord: importance matrix of ${im.values.size} weights from ${im.sequences} sequences, ${im.tokens} tokens of ${v['imatrix-data']} in ${((Date.now() - t) / 1000).toFixed(1)} s`);
  }
  const { kvs, tensors } = ggufExport(m, type, { imatrix });
  const t0 = Date.now();
  const bytes = writeGguf(out, kvs, tensors);
  const counts = new Map<string, number>();
  for (const t of tensors) counts.set(ggmlTypeName(t.type), (counts.get(ggmlTypeName(t.type)) ?? 0) + 1);
  log(`concord: wrote ${out} (${(statSync(out).size / 1e6).toFixed(2)} MB, ${bytes} bytes) in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${m.config.name} as ${type}; tensors ${[...counts].map(([k, n]) => `${n}×${k}`).join(', ')}`);
  return EXIT.ok;
});
