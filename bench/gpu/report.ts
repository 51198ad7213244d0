// The GPU benchmark's report: every contestant's per-token means checked against concord's, the
// figures, and the markdown table (`npm run gpu:table` re-renders a committed JSON).
//
// Checks, per model: each peer mode's four per-token means of every pair against concord's
// (fp32 modes: max |Δ| ≤ TOL_FP32 nats/token → 'valid'; bf16 modes: the max |Δ| is reported,
// 'bf16: reported', never a pass/fail); equal token counts (the peers score concord's own token
// sequences, so a mismatch means a broken sequence file). concord's row is 'valid' when every fp32
// peer that ran agrees with it and its own first-pair CPU-twin check (when run) passed.

export const TOL_FP32 = 1e-3;

type Q = 'fwd' | 'rev' | 'y' | 'x';
const QS: Q[] = ['fwd', 'rev', 'y', 'x'];
type Means = Record<Q, number>;

export interface PeerMode {
  mode: string; desc: string; dtype: 'fp32' | 'bf16'; plan: 'four' | 'two'; batched: boolean;
  pairs?: number; ms?: number; lmTokens?: number; paddedTokens?: number; scores?: Means[]; error?: string;
}

export interface PeerResult {
  implementation: string; fallback: boolean; torch: string; device: string; loadS: number; budget: number; modes: PeerMode[]; cudaPeakBytes?: number;
  /** transformers vs peer.py's reference forward on one sequence (null when the fallback itself ran). */
  crossCheck?: { maxAbsDiffLogprob?: number; ok: boolean; error?: string } | null;
}

export interface ConcordResult {
  contestant: string; label: string; device: string; f16: boolean; model: string; loadMs: number; firstRunMs: number; ms: number;
  pairs: number; passes: number; lmTokens: number; paddingEfficiency: number | null; batches: number | null; tokenBudget: number;
  gpuPeakBytes: number; verify: { maxAbsDiff: number; ok: boolean; tol: number } | null; errors: string[];
  scores: ((Means & { xTokens: number; yTokens: number }) | null)[];
}

export interface ModelEntry {
  label: string; shape: string; random: boolean; seed: number | null; source: string; params: number | null; maxLen: number;
  seqs: { pairs: { xTokens: number; yTokens: number; truncated: boolean }[]; errors: string[] } | null;
  concord: ConcordResult | null; peer: PeerResult | null; genS?: number | null; skipped?: string | null;
}

export interface GpuReportInput {
  date: string;
  short: boolean;
  machine: { cpu: string; cores: number; memGiB: number; os: string; node: string; loadavg: number[] };
  nvidiaSmi: string | null;
  envPlain: Record<string, unknown> | null;
  envToggles: Record<string, unknown> | null;
  kernels: { size: string; device: string; results: { kernel: string; variant: string; shape: string; validated: boolean; maxAbsErr: number; firstMs: number; ms: number; gflops?: number; gbps?: number; achievedGflops?: number; achievedGbps?: number; peakFraction?: number | null; bound?: string | null; ceiling?: string | null; weightBytes?: number }[] } | null;
  /** The tune step's report (src/tune/index.ts TuneReport, the fields shown here). */
  tune?: { entries: { op: string; shapeClass: string; winner: string | null; candidates: { variant: string; config?: unknown; status: string; maxError?: number; ms?: number; error?: string }[] }[] } | null;
  steps: { name: string; budgetS: number; seconds: number; status: string }[];
  models: ModelEntry[];
  /** The decode step (main.ts decode, peer.py generate); absent when it did not run. */
  decode?: { concord: DecodeConcord | null; peer: DecodePeer | null } | null;
}

export interface DecodeRunResult { batch: number; tokens: number[][]; prefillMs: number; decodeMs: number; decodeSteps: number; tokS: number }
export interface DecodeConcord { label: string; device: string; f16: boolean; model: string; newTokens: number; prompts: number[][]; runs: DecodeRunResult[]; errors: string[] }
export interface DecodePeer { implementation: string; fallback: boolean; device: string; newTokens: number; runs: DecodeRunResult[]; error?: string }

/** Greedy tokens of concord's batch-1 run must equal the fp32 peer's for at least this many tokens (or all, when fewer). */
export const DECODE_MATCH_MIN = 8;

export interface DecodeRow {
  contestant: string; batch: number; tokS: number; prefillMs: number; vsPeer: number | null;
  /** prompts whose tokens equal the peer's (same batch), and the first differing token index per prompt (-1: identical) */
  identical: number; prompts: number; firstDiff: number[];
}

/** The decode step's rows and its problems. */
export function decodeRows(d: NonNullable<GpuReportInput['decode']>): { rows: DecodeRow[]; problems: string[] } {
  const rows: DecodeRow[] = [], problems: string[] = [];
  const c = d.concord, p = d.peer;
  if (!c) problems.push('decode: concord did not run');
  if (!p) problems.push('decode: the peer did not run');
  else if (p.error) problems.push(`decode: peer: ${p.error}`);
  for (const e of c?.errors ?? []) problems.push(`decode: concord: ${e}`);
  const firstDiff = (a: number[], b: number[] | undefined) => {
    if (!b) return 0;
    for (let i = 0; i < Math.max(a.length, b.length); i++) if (a[i] !== b[i]) return i;
    return -1;
  };
  for (const r of c?.runs ?? []) {
    const pr = p?.runs.find((x) => x.batch === r.batch);
    const diffs = r.tokens.map((t, i) => firstDiff(t, pr?.tokens[i]));
    rows.push({ contestant: `concord webgpu (${c!.f16 ? 'f16' : 'f32'} weights)`, batch: r.batch, tokS: r.tokS, prefillMs: r.prefillMs, vsPeer: pr ? r.tokS / pr.tokS : null,
      identical: pr ? diffs.filter((x) => x === -1).length : 0, prompts: r.tokens.length, firstDiff: pr ? diffs : [] });
    if (r.batch === 1 && pr) {
      const need = Math.min(DECODE_MATCH_MIN, c!.newTokens);
      diffs.forEach((x, i) => { if (x !== -1 && x < need) problems.push(`decode: prompt ${i}: concord's greedy token ${x} differs from the peer's (${r.tokens[i][x]} vs ${pr.tokens[i]?.[x]})`); });
    }
  }
  for (const r of p?.runs ?? []) rows.push({ contestant: p!.implementation, batch: r.batch, tokS: r.tokS, prefillMs: r.prefillMs, vsPeer: 1, identical: r.tokens.length, prompts: r.tokens.length, firstDiff: [] });
  return { rows, problems };
}

export interface Row {
  model: string; contestant: string; dtype: string; pairs: number; seconds: number; pairsPerS: number; pairTokS: number; lmTokS: number;
  vsA: number | null; vsB16: number | null; maxAbsDiff: number | null; tokenMismatches: number; check: string; error?: string;
}

export interface GpuReport extends GpuReportInput {
  kind: 'concord-bench-gpu';
  tolFp32: number;
  rows: Row[];
  allValid: boolean;
  problems: string[];
}

function diff(a: (Means | null)[], b: Means[]): { max: number; where: string } {
  let max = 0, where = '';
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const s = a[i];
    if (!s) continue;
    for (const q of QS) {
      const d = Math.abs(s[q] - b[i][q]);
      if (!(d <= max)) { max = Number.isNaN(d) ? Infinity : d; where = `pair ${i} ${q}: ${s[q]} vs ${b[i][q]}`; }
    }
  }
  return { max, where };
}

export function buildReport(input: GpuReportInput): GpuReport {
  const rows: Row[] = [];
  const problems: string[] = [];
  for (const m of input.models) {
    if (m.skipped) { problems.push(`${m.label}: skipped — ${m.skipped}`); continue; }
    const c = m.concord;
    const seqPairs = m.seqs?.pairs ?? [];
    const pairTokens = seqPairs.reduce((n, p) => n + p.xTokens + p.yTokens, 0);
    const modes = m.peer?.modes ?? [];
    const rate = (pairs: number, ms: number) => pairs / (ms / 1000);
    const modeA = modes.find((x) => x.mode === 'a' && !x.error);
    const modeB16 = modes.find((x) => x.mode === 'b16' && !x.error);
    const rA = modeA ? rate(modeA.pairs!, modeA.ms!) : null;
    const rB16 = modeB16 ? rate(modeB16.pairs!, modeB16.ms!) : null;
    if (!c) problems.push(`${m.label}: concord did not run`);
    if (!m.peer) problems.push(`${m.label}: the peers did not run`);
    const cc = m.peer?.crossCheck;
    if (cc && !cc.ok) problems.push(`${m.label}: transformers disagrees with peer.py's reference forward (${cc.error ?? `max |Δ log p| ${cc.maxAbsDiffLogprob}`})`);
    if (c && c.scores.length !== seqPairs.length) problems.push(`${m.label}: concord scored ${c.scores.length} pairs, the sequence file has ${seqPairs.length}`);
    let tokenMismatches = 0;
    if (c) c.scores.forEach((s, i) => { if (!s || s.xTokens !== seqPairs[i]?.xTokens || s.yTokens !== seqPairs[i]?.yTokens) tokenMismatches++; });
    const peerRows: Row[] = [];
    let concordOk = !!c && c.errors.length === 0 && tokenMismatches === 0 && (!c.verify || c.verify.ok);
    let fp32Checked = 0;
    for (const pm of modes) {
      const base = { model: m.label, contestant: `${pm.mode}: ${pm.desc}`, dtype: pm.dtype, tokenMismatches: 0 };
      if (pm.error || !pm.scores) {
        peerRows.push({ ...base, pairs: 0, seconds: NaN, pairsPerS: NaN, pairTokS: NaN, lmTokS: NaN, vsA: null, vsB16: null, maxAbsDiff: null, check: 'not run', error: pm.error });
        problems.push(`${m.label} peer ${pm.mode}: ${pm.error}`);
        continue;
      }
      const r = rate(pm.pairs!, pm.ms!);
      const d = c ? diff(c.scores, pm.scores) : null;
      let check: string;
      if (!d) check = 'no concord to compare';
      else if (pm.dtype === 'fp32') {
        fp32Checked++;
        const ok = d.max <= TOL_FP32;
        if (!ok) { concordOk = false; problems.push(`${m.label}: concord vs peer ${pm.mode} (fp32): max |Δ| ${d.max.toExponential(2)} > ${TOL_FP32} at ${d.where}`); }
        check = ok ? 'valid' : 'INVALID';
      } else check = 'bf16: reported';
      peerRows.push({
        ...base, pairs: pm.pairs!, seconds: pm.ms! / 1000, pairsPerS: r, pairTokS: pairTokens / (pm.ms! / 1000), lmTokS: pm.lmTokens! / (pm.ms! / 1000),
        vsA: rA === null ? null : r / rA, vsB16: rB16 === null ? null : r / rB16, maxAbsDiff: d ? d.max : null, check,
      });
    }
    if (c && fp32Checked === 0) { concordOk = false; problems.push(`${m.label}: no fp32 peer ran, so concord's scores are unchecked`); }
    if (c) {
      const r = rate(c.pairs, c.ms);
      rows.push({
        model: m.label, contestant: `concord webgpu (${c.passes} passes, ${c.f16 ? 'f16' : 'f32'} weights)`, dtype: c.f16 ? 'f16 W / f32 act' : 'f32',
        pairs: c.pairs, seconds: c.ms / 1000, pairsPerS: r, pairTokS: pairTokens / (c.ms / 1000), lmTokS: c.lmTokens / (c.ms / 1000),
        vsA: rA === null ? null : r / rA, vsB16: rB16 === null ? null : r / rB16, maxAbsDiff: null, tokenMismatches,
        check: concordOk ? 'valid' : 'INVALID',
      });
      if (c.verify && !c.verify.ok) problems.push(`${m.label}: concord's first pair disagrees with its CPU twin (max |Δ| ${c.verify.maxAbsDiff})`);
      for (const e of c.errors) problems.push(`${m.label}: concord: ${e}`);
    }
    rows.push(...peerRows);
  }
  const badKernels = (input.kernels?.results ?? []).filter((k) => !k.validated);
  for (const k of badKernels) problems.push(`kernel ${k.kernel} ${k.variant} ${k.shape} FAILED validation (max err ${k.maxAbsErr})`);
  if (!input.kernels) problems.push('the kernel benchmark did not run');
  if (input.decode) problems.push(...decodeRows(input.decode).problems);
  for (const s of input.steps) if (s.status !== 'ok') problems.push(`step ${s.name}: ${s.status} after ${s.seconds} s (budget ${s.budgetS} s)`);
  const allValid = problems.length === 0 && rows.length > 0 && rows.every((r) => r.check !== 'INVALID');
  return { ...input, kind: 'concord-bench-gpu', tolFp32: TOL_FP32, rows, allValid, problems };
}

const g = (x: number | null) => (x === null || !Number.isFinite(x) ? '—' : x >= 100 ? x.toFixed(0) : x >= 1 ? x.toFixed(2) : x.toPrecision(2));
const e1 = (x: number | null) => (x === null ? '—' : x.toExponential(1));

function adapterLine(env: Record<string, unknown> | null): string {
  if (!env) return 'not measured';
  if (env.adapterError) return `no adapter: ${env.adapterError}`;
  const a = env.adapter as Record<string, unknown>;
  const feats = (env.adapterFeatures as string[]) ?? [];
  const sm = a.subgroupMatrixConfigs as unknown[] | undefined;
  return `${a.description || a.device} (${a.vendor}/${a.architecture}); shader-f16 ${feats.includes('shader-f16') ? 'yes' : 'no'}, subgroups ${feats.includes('subgroups') ? 'yes' : 'no'}, ` +
    `subgroup-matrix ${feats.some((f) => f.includes('subgroup-matrix')) ? `yes (${sm?.length ?? 0} configs)` : 'no'}, workgroup storage ${(env.adapterLimits as Record<string, number>)?.maxComputeWorkgroupStorageSize ?? '?'} B`;
}

export function renderGpuMarkdown(rep: GpuReport): string {
  const L: string[] = [];
  const dev = rep.nvidiaSmi?.split('\n')[0] ?? adapterLine(rep.envToggles);
  L.push(`### GPU benchmark${rep.short ? ' (SHORT mode: tiny shapes, few pairs — a rehearsal, not a measurement)' : ''}: ${dev}`);
  L.push('');
  L.push(`Date ${rep.date}. Host: ${rep.machine.cpu}, ${rep.machine.cores} cores, ${rep.machine.memGiB} GiB, ${rep.machine.os}, Node ${rep.machine.node}. Command: \`bash .gpu/run.sh${rep.short ? ' --short' : ''}\`.`);
  L.push('');
  L.push(`- WebGPU adapter, no Dawn toggles: ${adapterLine(rep.envPlain)}`);
  L.push(`- with toggles (${((rep.envToggles?.dawnFlags as string[]) ?? []).join(' ') || 'none'}): ${adapterLine(rep.envToggles)}`);
  L.push(`- Vulkan driver: ${(rep.envToggles?.driver as string) ?? '—'}`);
  const peer = rep.models.find((m) => m.peer)?.peer;
  if (peer) L.push(`- Peers: ${peer.implementation}, torch ${peer.torch}, ${peer.device}; batched modes pack ≤ ${peer.budget} padded tokens per batch.`);
  L.push(`- **Model shapes with random weights (seeded) measure speed only**, not scoring quality; stories15M is the trained checkpoint, stored as f16. Token ids: the stories15M (Llama 2) tokenizer for every model.`);
  L.push('');
  L.push('| model | contestant | pairs | pairs/s | × peer a | × peer b bf16 | pair tok/s | LM tok/s | max \\|Δ\\| vs concord (nats/tok) | check |');
  L.push('|---|---|--:|--:|--:|--:|--:|--:|--:|---|');
  for (const r of rep.rows) {
    L.push(`| ${r.model} | ${r.contestant} | ${r.pairs || '—'} | ${g(r.pairsPerS)} | ${r.vsA === null ? '—' : `${g(r.vsA)}×`} | ${r.vsB16 === null ? '—' : `${g(r.vsB16)}×`} | ${g(r.pairTokS)} | ${g(r.lmTokS)} | ${e1(r.maxAbsDiff)} | ${r.check}${r.error ? ` (${r.error.slice(0, 80)})` : ''} |`);
  }
  L.push('');
  L.push(`pairs/s: all four likelihoods of every pair, wall-clock after a separate warm-up, model load excluded. pair tok/s: x + y tokens per second (same numerator for all). LM tok/s: real tokens through the model (concord 2 passes per pair; peers a, b 4; c 2). check: fp32 peers must agree with concord within ${rep.tolFp32} nats/token on every pair's four per-token means; bf16 differences are reported only.`);
  const models = rep.models.filter((m) => !m.skipped);
  if (models.length) {
    L.push('');
    L.push('| model | weights | params | pairs | max len | concord load (s) | concord first run (s) | padding eff. | GPU peak |');
    L.push('|---|---|--:|--:|--:|--:|--:|--:|--:|');
    for (const m of models) {
      const c = m.concord;
      L.push(`| ${m.label} | ${m.random ? `random, seed ${m.seed}` : m.source} | ${m.params ? `${(m.params / 1e9).toFixed(2)} B` : '—'} | ${m.seqs?.pairs.length ?? '—'} | ${m.maxLen} | ${c ? (c.loadMs / 1000).toFixed(1) : '—'} | ${c ? (c.firstRunMs / 1000).toFixed(1) : '—'} | ${c?.paddingEfficiency?.toFixed(3) ?? '—'} | ${c ? `${(c.gpuPeakBytes / 2 ** 30).toFixed(2)} GiB` : '—'} |`);
    }
  }
  if (rep.decode) {
    const d = decodeRows(rep.decode);
    L.push('');
    L.push(`Decoding (\`decode\` step, stories15M, greedy, ${rep.decode.concord?.newTokens ?? '?'} new tokens per prompt, ${rep.decode.concord?.prompts.length ?? '?'} prompts of ≤ 32 tokens): new tokens/s over the decode steps after the prefill (batched: aggregate over the batch); tokens compared with the peer's at the same batch size:`);
    L.push('');
    L.push('| contestant | batch | new tok/s | × peer | prefill (ms) | prompts identical to the peer | first differing token |');
    L.push('|---|--:|--:|--:|--:|--:|---|');
    for (const r of d.rows) L.push(`| ${r.contestant} | ${r.batch} | ${g(r.tokS)} | ${r.vsPeer === null ? '—' : `${g(r.vsPeer)}×`} | ${g(r.prefillMs)} | ${r.identical}/${r.prompts} | ${r.firstDiff.length ? r.firstDiff.map((x) => (x < 0 ? '—' : x)).join(', ') : '—'} |`);
  }
  if (rep.tune) {
    L.push('');
    L.push('Autotuning (`tune`): every variant of every op validated against its CPU twin on this GPU, then timed; a failed or unavailable one is never chosen:');
    L.push('');
    L.push('| op | shape class | winner | candidates (ms, or status) |');
    L.push('|---|---|---|---|');
    for (const e of rep.tune.entries) {
      const cells = e.candidates.map((c) => `${c.variant}${c.config ? ` ${JSON.stringify(c.config)}` : ''}: ${c.status === 'valid' ? `${c.ms?.toFixed(3)} ms` : `**${c.status}**${c.error ? ` (${c.error.slice(0, 80)})` : ''}`}`);
      L.push(`| ${e.op} | ${e.shapeClass} | ${e.winner ?? '—'} | ${cells.join('; ')} |`);
    }
  }
  if (rep.kernels) {
    L.push('');
    L.push(`Kernels (\`bench kernels --size ${rep.kernels.size}\`, each variant validated against its CPU twin before timing):`);
    L.push('');
    L.push('| kernel | variant | shape | valid | max err | ms | GFLOP/s | GB/s | % of peak (cost model, bench/cost.ts) |');
    L.push('|---|---|---|---|--:|--:|--:|--:|--:|');
    const pct = (k: { peakFraction?: number | null; bound?: string | null; ceiling?: string | null }) =>
      k.peakFraction == null ? 'peak unknown' : `${(100 * k.peakFraction).toFixed(1)}% of ${k.ceiling} (${k.bound}-bound)`;
    for (const k of rep.kernels.results) L.push(`| ${k.kernel} | ${k.variant} | ${k.shape} | ${k.validated ? 'yes' : 'NO'} | ${k.maxAbsErr.toExponential(1)} | ${k.ms.toFixed(3)} | ${(k.achievedGflops ?? k.gflops)?.toFixed(1) ?? '—'} | ${(k.achievedGbps ?? k.gbps)?.toFixed(1) ?? '—'} | ${pct(k)} |`);
    // Quantized weights: GPU bytes and time against the peer row (f16 weights) of the same shape.
    const q = rep.kernels.results.filter((k) => k.kernel === 'qmatmul');
    const peers = new Map(q.filter((k) => / peer$/.test(k.variant)).map((k) => [k.shape, k]));
    if (q.length > peers.size) {
      L.push('');
      L.push('GGUF-block weights (kernels/matmul-quant.ts) against the peer of the same shape:');
      L.push('');
      L.push('| variant | shape | weight bytes | × peer bytes | ms | × peer ms |');
      L.push('|---|---|--:|--:|--:|--:|');
      for (const k of q) {
        const p = peers.get(k.shape);
        if (!p || k === p) continue;
        L.push(`| ${k.variant} | ${k.shape} | ${k.weightBytes ?? '—'} | ${p.weightBytes && k.weightBytes ? (k.weightBytes / p.weightBytes).toFixed(3) : '—'} | ${k.ms.toFixed(3)} | ${(k.ms / p.ms).toFixed(2)} |`);
      }
    }
  }
  if (rep.steps.length) {
    L.push('');
    L.push('Steps: ' + rep.steps.map((s) => `${s.name} ${s.seconds} s of ${s.budgetS} s (${s.status})`).join('; ') + '.');
  }
  if (rep.problems.length) {
    L.push('');
    L.push('Problems:');
    for (const p of rep.problems) L.push(`- ${p}`);
  }
  return L.join('\n');
}
