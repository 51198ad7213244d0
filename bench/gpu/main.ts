// The Node side of the GPU benchmark bundle (.gpu/concord-gpu.mjs, built by bench/gpu/bundle.ts
// with esbuild; run by .gpu/run.sh on the GPU machine, and here by `npm run gpu:rehearse`).
//
//   env [--out F]                         runtime, Vulkan driver, adapter info (subgroup-matrix
//                                         configurations included), all adapter features and limits
//   tune --size small|full --out F        src/tune/index.ts on WebGPU: every variant validated against its
//                                         CPU twin, then timed; winners into the tuning cache
//   kernels --size small|large --out F    bench/kernels.ts on WebGPU: every variant validated against
//                                         its CPU twin before it is timed
//   seqs --tokenizer T --max-len N --pairs P --limit N --out F
//                                         the token sequences every contestant scores: per pair the
//                                         four-pass plan (peers a, b) and concord's two-pass plan (c)
//   score --model DIR --tokenizer T --pairs P --limit N --out F [--verify-cpu]
//                                         concord webgpu end to end (createScorer, cosine off)
//   decode --model DIR --tokenizer T --pairs P --limit N --new-tokens K --out F
//                                         concord webgpu greedy decoding (src/models/decode-gpu.ts):
//                                         prompts from the pairs' instructions, batch 1 (one prompt
//                                         at a time) and batched (all N in one decoder); the peer
//                                         (peer.py generate) decodes the same prompt ids and the
//                                         report compares the tokens
//   report --work DIR --out DIR           validate every contestant against the fp32 peers, write
//                                         gpu-<date>.json and gpu-<date>.md
//
// dawn.node is the carried file (CONCORD_DAWN_NODE, read in src/gpu/device.ts); Dawn toggles are
// concord's defaults (src/gpu/device.ts dawnCreateFlags) plus CONCORD_DAWN_FLAGS.
// Shaders are compiled into the bundle (registerShaders).

import { settings } from '../../src/env.js';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { recordToPair } from '../../src/pipeline/input.js';
import type { Quantity } from '../../src/pipeline/plan.js';
import { sequenceBuilder } from '../../src/pipeline/sequences.js';
import { encodeStandalone } from '../../src/pipeline/templates.js';
import type { TextTokenizer } from '../../src/tokenizer/types.js';
import { buildReport, renderGpuMarkdown, type GpuReportInput } from './report.js';

const now = () => performance.now();

function readPairs(path: string, limit: number): { loc: string; record: unknown }[] {
  const text = readFileSync(path, 'utf8');
  const out: { loc: string; record: unknown }[] = [];
  if (text.trimStart().startsWith('[')) {
    (JSON.parse(text) as unknown[]).slice(0, limit).forEach((r, i) => out.push({ loc: `${path}#${i}`, record: r }));
    return out;
  }
  const lines = text.split('\n');
  for (let i = 0; i < lines.length && out.length < limit; i++) {
    if (lines[i].trim() === '') continue;
    try {
      out.push({ loc: `${path}:${i + 1}`, record: JSON.parse(lines[i]) });
    } catch (e) {
      console.error(`${path}:${i + 1}: not JSON (${(e as Error).message}); skipped`);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// env

async function envCommand(out: string | null): Promise<number> {
  const { requestGpu, autoDecision } = await import('../../src/gpu/device.js');
  const report: Record<string, unknown> = {
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    dawnNode: settings.dawnNode ?? '(webgpu package)',
    dawnFlags: (settings.dawnFlags ?? '').split(/\s+/).filter(Boolean),
    vulkanDriverFiles: process.env.VK_DRIVER_FILES ?? process.env.VK_ICD_FILENAMES ?? null,
  };
  try {
    const gpu = await requestGpu();
    const a = gpu.adapter;
    const info = a.info as GPUAdapterInfo & Record<string, unknown>;
    const infoOut: Record<string, unknown> = {};
    for (const k of ['vendor', 'architecture', 'device', 'description', 'subgroupMinSize', 'subgroupMaxSize', 'isFallbackAdapter', 'subgroupMatrixConfigs']) {
      if (info[k] !== undefined) infoOut[k] = info[k];
    }
    const limits: Record<string, number> = {};
    for (const k in a.limits) limits[k] = (a.limits as unknown as Record<string, number>)[k];
    Object.assign(report, {
      driver: gpu.driverNote,
      toggles: gpu.toggles,
      adapter: infoOut,
      software: gpu.info.software,
      adapterFeatures: [...a.features].sort(),
      deviceFeatures: gpu.features,
      adapterLimits: limits,
      auto: autoDecision(gpu),
    });
    gpu.device.destroy();
  } catch (e) {
    report.adapterError = (e as Error).message;
  }
  const text = JSON.stringify(report, null, 1);
  if (out) writeFileSync(out, text + '\n');
  console.log(text);
  return report.adapterError ? 5 : 0;
}

// ---------------------------------------------------------------------------------------------
// kernels

async function kernelsCommand(size: 'tiny' | 'small' | 'large', out: string): Promise<number> {
  const { chooseBackend } = await import('../../src/gpu/device.js');
  const { GpuRuntime } = await import('../../src/gpu/runtime.js');
  const { runKernelBench } = await import('../kernels.js');
  const d = await chooseBackend('webgpu');
  console.error(`kernels: ${d.reason}`);
  const rt = new GpuRuntime(d.gpu!);
  const results = await runKernelBench({ size, devices: ['webgpu'], rt, log: (l) => console.log(l) });
  writeFileSync(out, JSON.stringify({ size, device: rt.name, results }, null, 1) + '\n');
  rt.destroy();
  const bad = results.filter((r) => !r.validated);
  if (bad.length) console.error(`kernels: ${bad.length} variant(s) FAILED validation: ${bad.map((r) => `${r.kernel} ${r.variant} ${r.shape}`).join('; ')}`);
  return bad.length ? 4 : 0;
}

// ---------------------------------------------------------------------------------------------
// tune: every variant of every tunable op (src/tune/index.ts) validated against its CPU twin on this
// GPU — the never-run subgroup-matrix kernels included: they are only ever chosen after passing
// here — then timed; the winners go to the tuning cache (CONCORD_TUNE_CACHE) that the score steps read.

async function tuneCommand(size: 'small' | 'full', out: string): Promise<number> {
  const { chooseBackend } = await import('../../src/gpu/device.js');
  const { GpuRuntime } = await import('../../src/gpu/runtime.js');
  const { defaultRequests, tuneFor } = await import('../../src/tune/index.js');
  const d = await chooseBackend('webgpu');
  console.error(`tune: ${d.reason}`);
  const rt = new GpuRuntime(d.gpu!);
  const report = await tuneFor(rt, defaultRequests(rt, size), { always: true, log: (l) => console.error(l) });
  rt.destroy();
  writeFileSync(out, JSON.stringify(report, null, 1) + '\n');
  let failed = 0;
  for (const e of report.entries) {
    const cells = e.candidates.map((c) => {
      if (c.status === 'failed') failed++;
      return `${c.variant}${c.config ? JSON.stringify(c.config) : ''}=${c.status === 'valid' ? `${c.ms?.toFixed(3)}ms` : c.status}`;
    });
    console.log(`${e.op.padEnd(9)} ${e.shapeClass.padEnd(24)} winner ${String(e.winner).padEnd(16)} ${cells.join(' ')}`);
  }
  if (failed) console.error(`tune: ${failed} candidate(s) FAILED validation on this GPU and are never chosen`);
  return report.writeError ? 1 : 0;
}

// ---------------------------------------------------------------------------------------------
// seqs: the token sequences, from concord's own tokenizer, templates, truncation and plans

export interface SeqRead { quantity: Quantity; span: [number, number] }
export interface PlanSequence { ids: number[]; reads: SeqRead[] }
export interface PairSequences { loc: string; xTokens: number; yTokens: number; truncated: boolean; four: PlanSequence[]; two: PlanSequence[] }

export function pairSequences(tok: TextTokenizer, maxLen: number, records: { loc: string; record: unknown }[]): { pairs: PairSequences[]; errors: string[]; templates: { forward: string; reverse: string } } {
  // concord's own pair → sequences builder (src/pipeline/sequences.ts): the ids `concord score`
  // scores with --passes 4 and with its default (two passes under the default templates).
  const four = sequenceBuilder({ tokenizer: tok, maxLen, sameModel: true, passes: 4 });
  const two = sequenceBuilder({ tokenizer: tok, maxLen, sameModel: true });
  if (four.plan.mode !== 4 || two.plan.mode !== 2) throw new Error(`seqs: expected 4- and 2-pass plans, got ${four.plan.mode} and ${two.plan.mode}`);
  if (tok.bosId === null) throw new Error('seqs: the tokenizer has no BOS');
  const build = (b: typeof four, pair: { x: string; y: string }) => {
    const p = b.build(pair);
    const seqs: PlanSequence[] = p.sequences.map((s) => ({ ids: s.ids, reads: [] }));
    for (const r of b.reads(p)) seqs[r.pass].reads.push({ quantity: r.quantity, span: r.span });
    return { p, seqs };
  };
  const pairs: PairSequences[] = [];
  const errors: string[] = [];
  for (const { loc, record } of records) {
    try {
      const pair = recordToPair(record);
      const f = build(four, pair), t = build(two, pair);
      pairs.push({ loc, xTokens: f.p.xIds.length, yTokens: f.p.yIds.length, truncated: f.p.truncated, four: f.seqs, two: t.seqs });
    } catch (e) {
      errors.push(`${loc}: ${(e as Error).message}`);
    }
  }
  return { pairs, errors, templates: four.templates };
}

async function loadTokenizer(path: string): Promise<TextTokenizer> {
  if (path.endsWith('.bin')) return (await import('../../src/tokenizer/llama2c.js')).llama2cTokenizer(path);
  return (await import('../../src/tokenizer/hf.js')).loadHfTokenizer(path);
}

async function seqsCommand(o: { tokenizer: string; maxLen: number; pairs: string[]; limit: number; out: string }): Promise<number> {
  const tok = await loadTokenizer(o.tokenizer);
  const records = o.pairs.flatMap((p) => readPairs(p, o.limit));
  const r = pairSequences(tok, o.maxLen, records);
  for (const e of r.errors) console.error(`seqs: ${e}; skipped`);
  writeFileSync(o.out, JSON.stringify({ maxLen: o.maxLen, tokenizer: o.tokenizer, templates: r.templates, pairs: r.pairs, errors: r.errors }) + '\n');
  const toks = r.pairs.reduce((n, p) => n + p.xTokens + p.yTokens, 0);
  console.error(`seqs: ${r.pairs.length} pairs (${r.errors.length} skipped), ${toks} x+y tokens, max-len ${o.maxLen}`);
  return r.pairs.length ? 0 : 3;
}

// ---------------------------------------------------------------------------------------------
// score: concord webgpu end to end

export interface ConcordPair { fwd: number; rev: number; y: number; x: number; xTokens: number; yTokens: number }

async function scoreCommand(o: { model: string; tokenizer: string; pairs: string[]; limit: number; out: string; verifyCpu: boolean; maxLen: number | null; label: string }): Promise<number> {
  const { loadModel, modelFromWeights } = await import('../../src/models/index.js');
  const { createScorer } = await import('../../src/pipeline/create.js');
  let t = now();
  const model = await loadModel(o.model, { device: 'webgpu', tokenizer: o.tokenizer });
  const loadMs = now() - t;
  if (model.backend !== 'webgpu') throw new Error(`score: asked for webgpu, got ${model.backend}`);
  const records = o.pairs.flatMap((p) => readPairs(p, o.limit)).map((r) => r.record);
  const maxLen = o.maxLen ?? undefined;
  // Validate before timing: the first pair on the CPU twin (same f16-rounded weights), when asked
  // (small models only: the TypeScript CPU twin is far too slow for billions of parameters).
  let verify: { maxAbsDiff: number; ok: boolean; tol: number } | null = null;
  const warm = records.slice(0, 1);
  t = now();
  if (o.verifyCpu) {
    const twin = await modelFromWeights(model.weights, model.tokenizer, { device: 'cpu', f16: model.f16, threads: 1 });
    const s = await createScorer({ model, cosine: 'off', maxLen, verify: { model: twin, batches: 1, tol: 1e-3 } });
    for await (const r of s.score(warm)) if (!r.scores) throw new Error(`score: warm-up ${r.loc}: ${r.error}`);
    const v = s.stats.verify!;
    verify = { maxAbsDiff: v.maxAbsDiff, ok: v.ok, tol: v.tol };
    twin.dispose();
    console.error(`score: first pair GPU vs CPU twin: max |Δ| ${v.maxAbsDiff.toExponential(2)} (${v.ok ? 'ok' : 'FAILED'})`);
  } else {
    const s = await createScorer({ model, cosine: 'off', maxLen });
    for await (const r of s.score(warm)) if (!r.scores) throw new Error(`score: warm-up ${r.loc}: ${r.error}`);
  }
  const firstRunMs = now() - t;
  const scorer = await createScorer({ model, cosine: 'off', maxLen });
  const scores: (ConcordPair | null)[] = [];
  const errors: string[] = [];
  t = now();
  for await (const r of scorer.score(records)) {
    if (!r.scores) { errors.push(`${r.loc}: ${r.error}`); scores.push(null); continue; }
    const s = r.scores;
    scores.push({ fwd: s.fwd_logp, rev: s.rev_logp, y: s.y_logp, x: s.x_logp, xTokens: s.x_tokens, yTokens: s.y_tokens });
  }
  const ms = now() - t;
  const sch = scorer.stats.scheduler;
  const rt = model.runtime!;
  const result = {
    contestant: 'concord webgpu', label: o.label, device: model.deviceName, f16: model.f16, model: model.config.name,
    config: model.config, loadMs, firstRunMs, ms, pairs: scores.length, passes: scorer.passes,
    lmTokens: scorer.stats.lmTokens, paddingEfficiency: sch?.paddingEfficiency ?? null, batches: sch?.batches ?? null,
    tokenBudget: model.tokenBudget, gpuPeakBytes: rt.stats.peakBytesAllocated, verify, errors, scores,
  };
  writeFileSync(o.out, JSON.stringify(result) + '\n');
  console.error(`score: ${o.label}: ${scores.length} pairs in ${(ms / 1000).toFixed(2)} s = ${(scores.length / (ms / 1000)).toFixed(2)} pairs/s ` +
    `(load ${(loadMs / 1000).toFixed(1)} s, first run ${(firstRunMs / 1000).toFixed(1)} s, ${model.deviceName})`);
  model.dispose();
  return errors.length || (verify && !verify.ok) ? 4 : 0;
}

// ---------------------------------------------------------------------------------------------
// decode: concord webgpu greedy decoding, batch 1 and batched, the prompt ids for the peer

export interface DecodeRun { batch: number; tokens: number[][]; prefillMs: number; decodeMs: number; decodeSteps: number; tokS: number }

/** Prompt ids: BOS + the instruction of each record, at most maxPrompt tokens. */
export function decodePrompts(tok: TextTokenizer, records: { loc: string; record: unknown }[], maxPrompt: number): number[][] {
  const bos = tok.bosId;
  if (bos === null) throw new Error('decode: the tokenizer has no BOS');
  const out: number[][] = [];
  for (const { loc, record } of records) {
    try {
      out.push([bos, ...encodeStandalone(tok, recordToPair(record).x)].slice(0, maxPrompt));
    } catch (e) {
      console.error(`decode: ${loc}: ${(e as Error).message}; skipped`);
    }
  }
  return out;
}

async function decodeCommand(o: { model: string; tokenizer: string; pairs: string[]; limit: number; newTokens: number; maxPrompt: number; out: string; label: string }): Promise<number> {
  const { loadModel } = await import('../../src/models/index.js');
  const { GREEDY } = await import('../../src/generate/types.js');
  const tok = await loadTokenizer(o.tokenizer);
  const prompts = decodePrompts(tok, o.pairs.flatMap((p) => readPairs(p, o.limit)), o.maxPrompt).slice(0, o.limit);
  if (!prompts.length) throw new Error('decode: no prompts');
  const model = await loadModel(o.model, { device: 'webgpu', tokenizer: o.tokenizer });
  if (model.backend !== 'webgpu' || !model.createDecoder) throw new Error(`decode: asked for webgpu, got ${model.backend}`);
  const dec = await model.createDecoder({ slots: prompts.length, maxLen: o.maxPrompt + o.newTokens });
  // Greedy decoding of `group` (prompt indices) together: one step with every prompt, then K-1 single-token steps.
  const run = async (group: number[]): Promise<{ tokens: number[][]; prefillMs: number; decodeMs: number }> => {
    group.forEach((_, s) => dec.reset(s));
    const tokens = group.map(() => [] as number[]);
    let t = now();
    let ids = await dec.step(group.map((p, s) => ({ slot: s, ids: prompts[p], sampling: GREEDY, step: 0 })));
    const prefillMs = now() - t;
    ids.forEach((id, s) => tokens[s].push(id));
    t = now();
    for (let k = 1; k < o.newTokens; k++) {
      ids = await dec.step(group.map((_, s) => ({ slot: s, ids: [ids[s]], sampling: GREEDY, step: k })));
      ids.forEach((id, s) => tokens[s].push(id));
    }
    return { tokens, prefillMs, decodeMs: now() - t };
  };
  const all = prompts.map((_, i) => i);
  // Warm-up (pipelines compiled, buffers pooled), not timed; the timed runs must give the same tokens.
  const warm = await run(all);
  const runs: DecodeRun[] = [];
  const b1 = { batch: 1, tokens: [] as number[][], prefillMs: 0, decodeMs: 0, decodeSteps: 0, tokS: 0 };
  for (const p of all) {
    const r = await run([p]);
    b1.tokens.push(r.tokens[0]);
    b1.prefillMs += r.prefillMs;
    b1.decodeMs += r.decodeMs;
    b1.decodeSteps += o.newTokens - 1;
  }
  b1.tokS = b1.decodeSteps / (b1.decodeMs / 1000);
  runs.push(b1);
  const rb = await run(all);
  runs.push({ batch: all.length, tokens: rb.tokens, prefillMs: rb.prefillMs, decodeMs: rb.decodeMs, decodeSteps: o.newTokens - 1, tokS: (all.length * (o.newTokens - 1)) / (rb.decodeMs / 1000) });
  const errors: string[] = [];
  for (const r of runs) r.tokens.forEach((t, i) => {
    if (JSON.stringify(t) !== JSON.stringify(warm.tokens[i])) errors.push(`batch ${r.batch}, prompt ${i}: tokens differ from the warm-up batch's (batch invariance)`);
  });
  const result = { contestant: 'concord webgpu', label: o.label, device: model.deviceName, f16: model.f16, model: model.config.name, newTokens: o.newTokens, prompts, runs, errors };
  writeFileSync(o.out, JSON.stringify(result) + '\n');
  for (const r of runs) console.error(`decode: ${o.label} batch ${r.batch}: ${r.tokS.toFixed(1)} new tokens/s (decode steps after the prefill; prefill ${r.prefillMs.toFixed(0)} ms), ${model.deviceName}`);
  for (const e of errors) console.error(`decode: ${e}`);
  dec.dispose();
  model.dispose();
  return errors.length ? 4 : 0;
}

// ---------------------------------------------------------------------------------------------
// report

function reportCommand(work: string, outDir: string, date: string): number {
  const read = (f: string) => (existsSync(join(work, f)) ? JSON.parse(readFileSync(join(work, f), 'utf8')) : null);
  const input: GpuReportInput = {
    date,
    short: settings.gpuShort,
    machine: { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, memGiB: Math.round(totalmem() / 2 ** 30), os: `Linux ${release()}`, node: process.version, loadavg: loadavg() },
    nvidiaSmi: existsSync(join(work, 'nvidia-smi.txt')) ? readFileSync(join(work, 'nvidia-smi.txt'), 'utf8').trim() : null,
    envPlain: read('env-plain.json'),
    envToggles: read('env-toggles.json'),
    kernels: read('kernels.json'),
    tune: read('tune.json'),
    steps: existsSync(join(work, 'steps.tsv')) ? readFileSync(join(work, 'steps.tsv'), 'utf8').trim().split('\n').filter(Boolean).map((l) => {
      const [name, budgetS, seconds, status] = l.split('\t');
      return { name, budgetS: Number(budgetS), seconds: Number(seconds), status };
    }) : [],
    models: [],
    decode: existsSync(join(work, 'decode-concord-stories15M.json')) || existsSync(join(work, 'decode-peer-stories15M.json'))
      ? { concord: read('decode-concord-stories15M.json'), peer: read('decode-peer-stories15M.json') } : null,
  };
  for (const f of readdirSync(work).filter((n) => /^model-.+\.json$/.test(n)).sort()) {
    const m = read(f);
    const label = m.label as string;
    input.models.push({ ...m, seqs: read(`seqs-${label}.json`), concord: read(`concord-${label}.json`), peer: read(`peer-${label}.json`) });
  }
  const rep = buildReport(input);
  const stem = join(outDir, `gpu-${date.slice(0, 10)}`);
  writeFileSync(`${stem}.json`, JSON.stringify(rep, null, 1) + '\n');
  const md = renderGpuMarkdown(rep);
  writeFileSync(`${stem}.md`, md + '\n');
  console.log(md);
  console.error(`report: wrote ${stem}.json and .md`);
  return rep.allValid ? 0 : 4;
}

// ---------------------------------------------------------------------------------------------

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  const { values } = parseArgs({
    args: rest,
    options: {
      out: { type: 'string' }, size: { type: 'string', default: 'small' }, tokenizer: { type: 'string' },
      'max-len': { type: 'string' }, pairs: { type: 'string', multiple: true }, limit: { type: 'string', default: '64' },
      model: { type: 'string' }, 'verify-cpu': { type: 'boolean', default: false }, work: { type: 'string' }, label: { type: 'string' },
      date: { type: 'string' }, 'new-tokens': { type: 'string', default: '32' }, 'max-prompt': { type: 'string', default: '32' },
    },
  });
  const need = (k: keyof typeof values): string => {
    const v = values[k];
    if (typeof v !== 'string' || v === '') throw new Error(`${cmd}: --${k} is required`);
    return v;
  };
  const limit = Number(values.limit);
  switch (cmd) {
    case 'env': return envCommand(values.out ?? null);
    case 'kernels': {
      if (values.size !== 'tiny' && values.size !== 'small' && values.size !== 'large') throw new Error('kernels: --size tiny|small|large');
      return kernelsCommand(values.size, need('out'));
    }
    case 'tune': {
      if (values.size !== 'small' && values.size !== 'full') throw new Error('tune: --size small|full');
      return tuneCommand(values.size, need('out'));
    }
    case 'seqs': return seqsCommand({ tokenizer: need('tokenizer'), maxLen: Number(need('max-len')), pairs: values.pairs ?? [], limit, out: need('out') });
    case 'score': return scoreCommand({
      model: need('model'), tokenizer: need('tokenizer'), pairs: values.pairs ?? [], limit, out: need('out'), verifyCpu: values['verify-cpu'],
      maxLen: values['max-len'] ? Number(values['max-len']) : null, label: values.label ?? need('model'),
    });
    case 'decode': return decodeCommand({
      model: need('model'), tokenizer: need('tokenizer'), pairs: values.pairs ?? [], limit, out: need('out'), label: values.label ?? need('model'),
      newTokens: Number(values['new-tokens']), maxPrompt: Number(values['max-prompt']),
    });
    case 'report': return reportCommand(need('work'), need('out'), values.date ?? new Date().toISOString());
    default:
      console.error('usage: concord-gpu.mjs env|tune|kernels|seqs|score|decode|report …  (see bench/gpu/main.ts)');
      return 2;
  }
}

// In the bundle, shaders are registered by the entry (bench/gpu/entry.ts) before main runs.
export async function run(argv: string[]): Promise<void> {
  let code: number;
  try {
    code = await main(argv);
  } catch (e) {
    console.error(`concord-gpu ${argv[0] ?? ''}: ${(e as Error).stack ?? (e as Error).message}`);
    code = 1;
  }
  // dawn.node can keep the event loop alive; results are on disk
  process.exit(code);
}
