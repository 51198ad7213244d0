// The GPU benchmark bundle, rehearsed end to end: bench/gpu/bundle.ts builds a bundle (xz level 0
// for speed, no network: the loader .debs are copied from .gpu/gl when a full bundle was built
// here, and no ../shared data), then bench/gpu/rehearse.ts runs its run.sh --short under env -i
// (no node_modules, no Node or xz on PATH) on lavapipe (SwiftShader when lavapipe is absent) with
// /usr/bin/python3's torch as the peer. The JSON it writes must have every row validated and every
// fp32 peer within 1e-3 nats/token of concord.

import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { buildBundle } from '../bench/gpu/bundle.js';
import { LAVAPIPE_ICD, rehearse } from '../bench/gpu/rehearse.js';
import { decodeRows, renderGpuMarkdown, type GpuReport } from '../bench/gpu/report.js';
import { pairSequences } from '../bench/gpu/main.js';

const root = join(import.meta.dirname, '..');
const SWIFTSHADER = '/usr/lib/chromium/vk_swiftshader_icd.json';
const icd = existsSync(LAVAPIPE_ICD) ? LAVAPIPE_ICD : existsSync(SWIFTSHADER) ? SWIFTSHADER : null;
const torchOk = existsSync('/usr/bin/python3') && spawnSync('/usr/bin/python3', ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;
const haveModel = existsSync(join(root, 'models', 'stories15M', 'model.bin'));
const required = process.env.CONCORD_REQUIRE_GPU === '1';
const ready = !!icd && torchOk && haveModel;

describe('GPU benchmark bundle', () => {
  it('has what the rehearsal needs', () => {
    // In CI (CONCORD_REQUIRE_GPU=1) a missing piece is a failure, not a skip.
    if (required) {
      expect(icd, 'a software Vulkan ICD (lavapipe or SwiftShader)').not.toBeNull();
      expect(torchOk, '/usr/bin/python3 with torch (apt-get install python3-torch)').toBe(true);
      expect(haveModel, 'models/stories15M (npm run fetch-models)').toBe(true);
    }
  });

  it('the peers get concord\'s token sequences: four-pass and two-pass plans over the same x, y ids', async () => {
    const { llama2cTokenizer } = await import('../src/tokenizer/llama2c.js');
    if (!haveModel) return;
    const tok = llama2cTokenizer(join(root, 'models', 'stories15M', 'tokenizer.bin'));
    const { pairs, errors } = pairSequences(tok, 64, [
      { loc: 'a', record: { instruction: 'Say hello.', input: '', output: 'Hello there, friend.' } },
      { loc: 'b', record: { instruction: 'x'.repeat(400), output: 'y' } },
      { loc: 'c', record: { nothing: 1 } },
    ]);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^c: /);
    expect(pairs).toHaveLength(2);
    for (const p of pairs) {
      expect(p.four).toHaveLength(4);
      expect(p.two).toHaveLength(2);
      for (const s of [...p.four, ...p.two]) expect(s.ids.length).toBeLessThanOrEqual(64);
      const reads = (plan: typeof p.four) => plan.flatMap((s) => s.reads.map((r) => ({ q: r.quantity, ids: s.ids.slice(...r.span) })));
      // every quantity is read once per plan, over the same target ids
      for (const q of ['fwd', 'rev', 'x', 'y']) {
        const a = reads(p.four).filter((r) => r.q === q), b = reads(p.two).filter((r) => r.q === q);
        expect(a).toHaveLength(1);
        expect(b).toHaveLength(1);
        expect(a[0].ids).toEqual(b[0].ids);
        expect(a[0].ids.length).toBe(q === 'x' || q === 'rev' ? p.xTokens : p.yTokens);
      }
    }
    expect(pairs[1].truncated).toBe(true);
  });

  it('gpu:table writes the table between the markers of docs/benchmarks.md and nowhere else', async () => {
    const { replaceBlock, START, END } = await import('../bench/gpu/table.js');
    const readme = `# x\n\n${START}\nold table\n${END}\n\nafter\n`;
    expect(replaceBlock(readme, '| new |')).toBe(`# x\n\n${START}\n| new |\n${END}\n\nafter\n`);
    expect(() => replaceBlock('# no markers', 't')).toThrow(/no <!-- gpu-table:start -->/);
    expect(readFileSync(join(root, 'docs', 'benchmarks.md'), 'utf8')).toContain(START);
  });

  describe.skipIf(!ready)('short rehearsal (run.sh --short under env -i)', () => {
    const tmp = mkdtempSync(join(tmpdir(), 'concord-gpu-bundle-test-'));
    afterAll(() => rmSync(tmp, { recursive: true, force: true }));
    let report: GpuReport | null = null;
    let log = '';

    it('builds the bundle and run.sh passes end to end', async () => {
      const bundle = await buildBundle({ root, out: join(tmp, 'bundle'), xzLevel: 0, fetchDebs: false, debsFrom: join(root, '.gpu', 'gl'), sharedData: false });
      const r = rehearse(bundle, { short: true, extraEnv: { VK_DRIVER_FILES: icd!, VK_ICD_FILENAMES: icd! }, timeoutMs: 420_000 });
      log = r.log;
      report = r.report as GpuReport | null;
      expect(report, `no report written; log:\n${log.slice(-3000)}`).not.toBeNull();
      expect(r.code, `run.sh exited ${r.code}; problems: ${JSON.stringify(report?.problems)}\n${log.slice(-3000)}`).toBe(0);
      rmSync(r.dir, { recursive: true, force: true });
    }, 480_000);

    it('ran the bundled Node, not the system one, with a time budget per step', () => {
      expect(log).toMatch(/setup: node, dawn\.node and \d+ loader packages unpacked/);
      expect(log).toMatch(/== step tune: budget \d+ s/);
      expect(log).toMatch(/== step kernels: budget \d+ s/);
      expect(report!.machine.node).toBe(process.version);
      for (const s of report!.steps) expect(s.status, s.name).toBe('ok');
    });

    it('validated every kernel variant and every row; fp32 peers agree with concord within 1e-3', () => {
      const rep = report!;
      expect(rep.kind).toBe('concord-bench-gpu');
      expect(rep.short).toBe(true);
      expect(rep.kernels!.results.length).toBeGreaterThan(5);
      for (const k of rep.kernels!.results) expect(k.validated, `${k.kernel} ${k.variant}`).toBe(true);
      // the tune step validated every variant of every op: none failed; the subgroup-matrix ones are
      // unavailable on a software adapter (their feature is missing), never "valid"
      const tuned = rep.tune!.entries;
      expect(new Set(tuned.map((e) => e.op))).toEqual(new Set(['matmul', 'qmatmul', 'logprob', 'rowmax', 'attention']));
      // the quantized kernels: every GGUF block type × variant, validated, beside the f16/f32 peer of the same shape
      const q = rep.kernels!.results.filter((k) => k.kernel === 'qmatmul').map((k) => `${k.variant} ${k.shape}`);
      for (const shape of ['1x256x256', '40x256x256']) {
        expect(q).toEqual(expect.arrayContaining([expect.stringMatching(new RegExp(`^f(16|32)-W peer ${shape}$`)), ...['Q8_0', 'Q4_0', 'Q4_K', 'Q6_K'].flatMap((t) => [`${t} gemv ${shape}`, `${t} tiled ${shape}`])]));
      }
      for (const e of tuned) for (const c of e.candidates) expect(c.status, `${e.op} ${e.shapeClass} ${c.variant}`).not.toBe('failed');
      expect(tuned.filter((e) => e.op === 'matmul').flatMap((e) => e.candidates).find((c) => c.variant === 'subgroup-matrix')?.status).toBe('unavailable');
      expect(rep.envToggles?.adapter).toBeTruthy();
      expect(rep.problems).toEqual([]);
      expect(rep.allValid).toBe(true);
      const labels = new Set(rep.rows.map((r) => r.model));
      expect([...labels].sort()).toEqual(['stories15M', 'tiny-llama', 'tiny-qwen2']);
      for (const label of labels) {
        const rows = rep.rows.filter((r) => r.model === label);
        const concord = rows.find((r) => r.contestant.startsWith('concord'))!;
        expect(concord.check).toBe('valid');
        expect(concord.tokenMismatches).toBe(0);
        expect(concord.pairsPerS).toBeGreaterThan(0);
        const peers = rows.filter((r) => !r.contestant.startsWith('concord'));
        expect(peers.map((r) => r.contestant.split(':')[0]).sort()).toEqual(['a', 'b16', 'b32', 'c16', 'c32']);
        for (const p of peers) {
          expect(p.error).toBeUndefined();
          expect(Number.isFinite(p.maxAbsDiff)).toBe(true);
          if (p.dtype === 'fp32') {
            expect(p.check).toBe('valid');
            expect(p.maxAbsDiff!).toBeLessThanOrEqual(1e-3);
          } else {
            expect(p.check).toBe('bf16: reported');
            expect(p.maxAbsDiff!).toBeLessThan(0.5); // bf16 is coarse, but not garbage
          }
        }
        const model = rep.models.find((m) => m.label === label)!;
        // the peer says which implementation ran (the torch fallback is marked as such)
        expect(model.peer!.implementation).toMatch(/transformers \d|torch fallback/);
        if (model.peer!.fallback) for (const p of peers) expect(p.contestant).toMatch(/torch fallback/);
        expect(model.random).toBe(label !== 'stories15M');
        if (label === 'stories15M') expect(model.concord!.verify?.ok).toBe(true);
      }
      // the decode step: concord's WebGPU decoder at batch 1 and batched, its greedy tokens equal
      // to the peer's (f32 weights on a software adapter, fp32 peer: identical for every token)
      const dec = rep.decode!;
      expect(dec.concord!.errors).toEqual([]);
      expect(dec.concord!.runs.map((r) => r.batch)).toEqual([1, 2]);
      expect(dec.peer!.error).toBeUndefined();
      const drows = decodeRows(dec).rows.filter((r) => r.contestant.startsWith('concord'));
      expect(drows).toHaveLength(2);
      for (const r of drows) {
        expect(r.tokS).toBeGreaterThan(0);
        expect(r.identical, `batch ${r.batch}: first differing tokens ${r.firstDiff.join(', ')}`).toBe(r.prompts);
      }
      const md = renderGpuMarkdown(rep);
      expect(md).toMatch(/Decoding \(`decode` step, stories15M, greedy/);
      expect(md).toMatch(/random weights \(seeded\) measure speed only/);
      expect(md).toMatch(/SHORT mode/);
    });

    it('a report whose scores disagree is marked INVALID by the table code', () => {
      const rep = JSON.parse(JSON.stringify(report!)) as GpuReport;
      const m = rep.models.find((x) => x.label === 'tiny-llama')!;
      m.concord!.scores[0]!.fwd += 0.01;
      // tableFromJson recomputes rows from the scores: a tampered 'valid' cannot survive
      return import('../bench/gpu/report.js').then(({ buildReport }) => {
        const again = buildReport(rep);
        expect(again.allValid).toBe(false);
        expect(again.rows.find((r) => r.model === 'tiny-llama' && r.contestant.startsWith('concord'))!.check).toBe('INVALID');
        expect(readFileSync(join(root, 'package.json'), 'utf8')).toMatch(/"gpu:table"/);
      });
    });
  });
});
