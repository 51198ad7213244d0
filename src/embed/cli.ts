// `concord embed` and `concord dedup`: the sentence encoder from the command line. Each returns an
// exit code (0 ok, 1 failure, 2 usage, 3 input errors, 5 no GPU where one was demanded — the
// values of src/cli/main.ts EXIT, spelled out here to keep this module free of an import cycle).
//
//   concord embed [--model minilm|<folder>|<file.onnx>] --text "…" [--text "…"] [--input texts.txt]
//                 [--device auto|webgpu|cpu] [--max-length 256] [--json]
//   concord dedup <in.jsonl|json> -o unique.jsonl [--threshold 0.95] [--on x|y|xy]
//                 [--dupes-out dupes.jsonl] [--model …] [--device …] [--max-length 256]
//                 [--block-size N] [--memory-budget MB]
//
// dedup keeps a record unless the cosine of its embedding with an earlier KEPT record reaches the
// threshold (greedy, input order: the first of a group of near-duplicates survives). Records that
// are not pairs are kept untouched and reported as file:line: reason; lines that are not JSON are
// reported and left out. The comparison is exact and blockwise (src/embed/dedup.ts): all-pairs
// cosine blocks on the device, vectors in memory or, past --memory-budget, in a temporary file.
//
// The device comes from src/models/index.ts sharedRuntime (the reason is printed); the shared
// runtime outlives the command, as other models in the process may hold it.

import * as fs from 'node:fs';
import { parseArgs } from 'node:util';
import { GpuUnavailableError, type DeviceChoice } from '../gpu/device.js';
import type { GpuRuntime } from '../gpu/runtime.js';
import { sharedRuntime } from '../models/index.js';
import { DEDUP_CPU_BLOCK, DEDUP_MEMORY_BUDGET, dedupFile, type DedupOn } from './dedup.js';
import { loadEmbedder, type Embedder } from './index.js';

const CODE = { ok: 0, failure: 1, usage: 2, inputErrors: 3, noGpu: 5 } as const;

class UsageError extends Error {}

const log = (s: string): void => { process.stderr.write(`${s}\n`); };

function deviceFlag(v: string | undefined): DeviceChoice {
  const c = (v ?? 'auto').toLowerCase();
  if (c !== 'auto' && c !== 'webgpu' && c !== 'cpu') throw new UsageError(`--device must be auto, webgpu or cpu (got '${v}')`);
  return c;
}

async function openEmbedder(model: string, device: DeviceChoice, maxLength: number | undefined): Promise<{ enc: Embedder; rt: GpuRuntime | null }> {
  const { rt, reason } = await sharedRuntime(device);
  const enc = await loadEmbedder(model, { device: rt ?? 'cpu', maxLength });
  log(`concord: encoder ${enc.config.name} on ${enc.deviceName} — ${reason}`);
  return { enc, rt };
}

function intFlag(v: string | undefined, name: string, min: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`${name} must be an integer >= ${min} (got '${v}')`);
  return n;
}

async function guard(run: () => Promise<number>, cmd: string): Promise<number> {
  try {
    return await run();
  } catch (e) {
    if (e instanceof UsageError || (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      log(`concord ${cmd}: ${(e as Error).message} (concord ${cmd} --help)`);
      return CODE.usage;
    }
    if (e instanceof GpuUnavailableError) {
      log(`concord ${cmd}: ${e.message}`);
      return CODE.noGpu;
    }
    log(`concord ${cmd}: ${(e as Error).message}`);
    return CODE.failure;
  }
}

const EMBED_HELP = `concord embed — sentence embeddings (mean-pooled, L2-normalised)

  --model <minilm|folder|file.onnx>  encoder (default minilm = all-MiniLM-L6-v2, fetched by npm ci)
  --text "…"                         a text (repeatable)
  --input <file>                     more texts, one per line (blank lines skipped)
  --device auto|webgpu|cpu           as everywhere in concord (default auto)
  --max-length N                     tokens per text with [CLS]/[SEP] (default 256; longer are cut)
  --json                             {model, device, dim, truncated, embeddings: [{text, vector}]}
Without --json: a preview of each vector and, for several texts, their cosine matrix.`;

export async function embedCommand(argv: string[]): Promise<number> {
  return guard(async () => {
    const { values } = parseArgs({
      args: argv,
      options: {
        model: { type: 'string', default: 'minilm' },
        text: { type: 'string', multiple: true },
        input: { type: 'string' },
        device: { type: 'string', default: 'auto' },
        'max-length': { type: 'string' },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
    if (values.help) { console.log(EMBED_HELP); return CODE.ok; }
    const texts = [...(values.text ?? [])];
    if (values.input) texts.push(...fs.readFileSync(values.input, 'utf8').split(/\r?\n/).filter((l) => l.trim() !== ''));
    if (!texts.length) throw new UsageError('no texts: give --text "…" or --input <file>');
    const { enc } = await openEmbedder(values.model!, deviceFlag(values.device), intFlag(values['max-length'], '--max-length', 2));
    try {
      const vecs = await enc.embed(texts);
      if (values.json) {
        console.log(JSON.stringify({
          model: enc.config.name, device: enc.deviceName, dim: enc.dim, truncated: enc.stats.truncated,
          embeddings: texts.map((text, i) => ({ text, vector: Array.from(vecs[i]) })),
        }));
        return CODE.ok;
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
      return CODE.ok;
    } finally {
      enc.dispose();
    }
  }, 'embed');
}

function dot(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

const DEDUP_HELP = `concord dedup — drop near-duplicate records by sentence-embedding cosine

  concord dedup <in.jsonl|json> -o unique.jsonl [options]
  --threshold T          a record whose cosine with an earlier kept record is >= T is dropped (default 0.95)
  --on x|y|xy            what is embedded: the prompt x, the response y, or x + "\\n\\n" + y (default xy)
  --dupes-out <file>     dropped records, each with concord_dup_of (the kept record's location) and concord_cosine
  --model, --device, --max-length   as for concord embed
  --block-size N         records per comparison block (default: GPU the largest up to 4096 that one
                         storage binding holds; CPU ${DEDUP_CPU_BLOCK})
  --memory-budget MB     embeddings held in memory (default ${DEDUP_MEMORY_BUDGET / 1048576}); beyond it they go to a temporary file
Exit codes: 0 ok, 1 failure, 2 usage, 3 some records could not be read (reported as file:line: reason), 5 no GPU for --device webgpu.`;

export async function dedupCommand(argv: string[]): Promise<number> {
  return guard(async () => {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        output: { type: 'string', short: 'o' },
        threshold: { type: 'string', default: '0.95' },
        on: { type: 'string', default: 'xy' },
        'dupes-out': { type: 'string' },
        model: { type: 'string', default: 'minilm' },
        device: { type: 'string', default: 'auto' },
        'max-length': { type: 'string' },
        'block-size': { type: 'string' },
        'memory-budget': { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
    if (values.help) { console.log(DEDUP_HELP); return CODE.ok; }
    if (positionals.length !== 1) throw new UsageError('expected one input file');
    if (!values.output) throw new UsageError('-o <unique.jsonl> is required');
    const threshold = Number(values.threshold);
    if (!(threshold >= -1 && threshold <= 1)) throw new UsageError(`--threshold must be a number in [-1, 1] (got '${values.threshold}')`);
    const on = values.on!;
    if (on !== 'x' && on !== 'y' && on !== 'xy') throw new UsageError(`--on must be x, y or xy (got '${on}')`);
    const budgetMb = values['memory-budget'] === undefined ? DEDUP_MEMORY_BUDGET / 1048576 : Number(values['memory-budget']);
    if (!(budgetMb >= 0)) throw new UsageError(`--memory-budget must be a number of MB >= 0 (got '${values['memory-budget']}')`);
    const blockSize = intFlag(values['block-size'], '--block-size', 1);
    const maxLength = intFlag(values['max-length'], '--max-length', 2);
    const device = deviceFlag(values.device);
    const file = positionals[0];
    if (!fs.existsSync(file)) throw new UsageError(`${file}: no such file`);

    const { enc, rt } = await openEmbedder(values.model!, device, maxLength);
    try {
      const s = await dedupFile({
        input: file, output: values.output!, dupesOut: values['dupes-out'], threshold, on: on as DedupOn,
        embedder: enc, device: rt ?? 'cpu', blockSize, memoryBudget: Math.floor(budgetMb * 1048576), log,
      });
      const rate = (n: number, ms: number): string => `${ms.toFixed(0)} ms, ${(n / Math.max(ms, 1e-3) * 1000).toFixed(1)} records/s`;
      log(`concord dedup: ${s.records} records, ${s.kept} kept, ${s.dropped} near-duplicates dropped (cosine >= ${threshold} on ${on}), ${s.errors} unreadable${s.truncated ? `, ${s.truncated} texts truncated to ${enc.tokenizer.maxLength} tokens` : ''}`);
      log(`concord dedup: embedding ${rate(s.embedded, s.embedMs)} on ${enc.deviceName}; comparison ${rate(s.embedded, s.compareMs)} on ${rt ? rt.name : 'CPU'} (${s.blocks} blocks of ${s.blockSize}, ${s.blockPairs} score blocks, vectors ${s.spilled ? 'in a temporary file' : 'in memory'}); writing ${s.writeMs.toFixed(0)} ms`);
      return s.errors ? CODE.inputErrors : CODE.ok;
    } finally {
      enc.dispose();
    }
  }, 'dedup');
}
