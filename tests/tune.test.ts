// Kernel autotuning (src/tune/index.ts) and the variant policy it feeds (src/gpu/variants.ts):
// shape-class bucketing, forced > tuned > default, the cache's round trip, atomic writes and
// corrupt files, and — on the GPU adapter — candidates that compute wrong numbers or throw are
// reported and never chosen, even where they would be the default.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { matmulGpu } from '../kernels/matmul.js';
import { attentionGpu } from '../kernels/attention.js';
import {
  adapterIdentity, adapterKey, concordVersion, modelRequests, PROBES, readTuneCache, TUNE_TEST_HOOKS, tuneFor, tuneShape,
  writeTuneCache, type TuneCacheFile, type TuneEntry,
} from '../src/tune/index.js';
import { clearTuned, KERNEL_VARIANTS, kernelVariant, setTuned, shapeClass, tunedConfig } from '../src/gpu/variants.js';
import type { ModelConfig } from '../src/models/types.js';
import { gpuRuntime } from './helpers/gpu.js';
import { scratchDir } from './helpers/scratch.js';

const oldVariant = process.env.CONCORD_KERNEL_VARIANT;
afterEach(() => {
  if (oldVariant === undefined) delete process.env.CONCORD_KERNEL_VARIANT;
  else process.env.CONCORD_KERNEL_VARIANT = oldVariant;
  TUNE_TEST_HOOKS.beforeRename = undefined;
});

// The hardware default is the op's first variant (today 'tiled'); tests hold for any list.
const GPU0 = KERNEL_VARIANTS.matmul[0];
const NOT_GPU0 = KERNEL_VARIANTS.matmul.find((v) => v !== GPU0 && v !== 'direct') ?? 'tiled';
const tmpDir = () => scratchDir('concord-tune-');
const info = (software: boolean, description = 'Test GPU driver 1.2.3') => ({ vendor: 'acme', architecture: 'rocket', device: 'r9', description, software, isFallbackAdapter: false });
const adapter = (software: boolean, description?: string) => ({ handle: { info: info(software, description) } });

describe('shape classes', () => {
  test('rows fall in four classes, other dims in powers of two, f16 apart', () => {
    expect(shapeClass('matmul', { M: 13, N: 70, K: 45 })).toBe('m16.n128.k64.f32');
    expect(shapeClass('matmul', { M: 16, N: 128, K: 64 })).toBe('m16.n128.k64.f32');
    expect(shapeClass('matmul', { M: 17, N: 129, K: 65, f16: true })).toBe('m128.n256.k128.f16');
    expect(shapeClass('matmul', { M: 1000, N: 896, K: 4864 })).toBe('m1024.n1024.k8192.f32');
    expect(shapeClass('matmul', { M: 70000, N: 1, K: 1 })).toBe('m4096.n1.k1.f32');
    expect(shapeClass('matmul', { M: 16, N: 128, K: 64, glu: 'silu' })).toBe('m16.n128.k64.f32.glu');
    expect(shapeClass('logprob', { T: 200, V: 151936, d: 896, f16: true })).toBe('t1024.v262144.d1024.f16');
    expect(shapeClass('rowmax', { N: 3, M: 4096 })).toBe('n16.m4096');
    expect(shapeClass('attention', { L: 100, nHeads: 14, nKvHeads: 2, headDim: 64 })).toBe('l128.h14.kv2.hd64');
    expect(shapeClass('nosuchop', { x: 1 })).toBe('any');
    expect(() => shapeClass('matmul', { M: 4, N: 4 })).toThrow(/'K' must be a non-negative number/);
  });

  test('a model asks for each linear and the LM head at each row class up to its token budget', () => {
    const c = { nHeads: 4, nKvHeads: 2, headDim: 16, dim: 64, hiddenDim: 160, vocabSize: 500, maxSeqLen: 256 } as ModelConfig;
    const reqs = modelRequests(c, { f16: false, maxTokens: 100 });
    const classes = new Set(reqs.filter((r) => r.op === 'matmul').map((r) => shapeClass('matmul', r.shape)));
    // rows 16 and 100 (class 128) × (N, K) of q, k/v, o, gate/up, down: q and o share a class.
    expect([...classes].sort()).toEqual(['m128.n256.k64.f32', 'm128.n32.k64.f32', 'm128.n64.k256.f32', 'm128.n64.k64.f32',
      'm16.n256.k64.f32', 'm16.n32.k64.f32', 'm16.n64.k256.f32', 'm16.n64.k64.f32']);
    expect(reqs.filter((r) => r.op === 'logprob').map((r) => r.shape.T)).toEqual([16, 100]);
  });
});

describe('policy: forced > tuned > default', () => {
  const shape = { M: 40, N: 64, K: 64 };
  test('a tuned winner beats the default for its shape class only; a forced variant beats both', () => {
    delete process.env.CONCORD_KERNEL_VARIANT;
    const hw = adapter(false), sw = adapter(true);
    expect(kernelVariant(hw, 'matmul', shape)).toBe(GPU0); // default on hardware
    expect(kernelVariant(sw, 'matmul', shape)).toBe('direct'); // default on software
    setTuned(hw, [{ op: 'matmul', shapeClass: shapeClass('matmul', shape), variant: 'direct' }]);
    setTuned(sw, [{ op: 'matmul', shapeClass: shapeClass('matmul', shape), variant: NOT_GPU0 }]);
    expect(kernelVariant(hw, 'matmul', shape)).toBe('direct');
    expect(kernelVariant(hw, 'matmul', { M: 40, N: 64, K: 64 * 4 })).toBe(GPU0); // another class: default
    expect(kernelVariant(hw, 'matmul')).toBe(GPU0); // no shape: default
    expect(kernelVariant(hw, 'logprob', { T: 40, V: 64, d: 64 })).toBe(KERNEL_VARIANTS.logprob[0]); // another op
    expect(kernelVariant(sw, 'matmul', shape)).toBe(NOT_GPU0);
    process.env.CONCORD_KERNEL_VARIANT = `matmul=${GPU0}`;
    expect(kernelVariant(hw, 'matmul', shape)).toBe(GPU0);
    process.env.CONCORD_KERNEL_VARIANT = 'direct';
    expect(kernelVariant(sw, 'matmul', shape)).toBe('direct');
    delete process.env.CONCORD_KERNEL_VARIANT;
    clearTuned(hw);
    expect(kernelVariant(hw, 'matmul', shape)).toBe(GPU0);
  });

  test('a cached name this build does not have is ignored', () => {
    delete process.env.CONCORD_KERNEL_VARIANT;
    const hw = adapter(false);
    setTuned(hw, [{ op: 'matmul', shapeClass: shapeClass('matmul', shape), variant: 'warp-drive' }, { op: 'nosuch', shapeClass: 'any', variant: 'direct' }]);
    expect(kernelVariant(hw, 'matmul', shape)).toBe(GPU0);
  });
});

describe('the cache file', () => {
  const id = adapterIdentity(adapter(false));
  const entry = (winner: string | null): TuneEntry => ({
    op: 'matmul', shapeClass: 'm16.n128.k64.f32', shape: { M: 13, N: 70, K: 45, f16: false }, winner, timing: 'timestamp', tunedAt: '2026-12-01T00:00:00.000Z',
    candidates: [{ variant: 'tiled', status: 'valid', maxError: 1e-6, tolerance: 'atol 6.7e-4', ms: 0.5 }, { variant: 'direct', status: 'failed', maxError: 3, error: 'does not match' }],
  });
  const file = (): TuneCacheFile => ({ format: 1, concord: concordVersion(), adapter: id, entries: { 'matmul|m16.n128.k64.f32': entry('tiled') } });

  test('the key names the adapter and changes with the driver', () => {
    const k = adapterKey(id);
    expect(k).toMatch(/^acme-rocket-r9-[0-9a-f]{12}$/);
    expect(adapterKey({ ...id, description: 'Test GPU driver 1.2.4' })).not.toBe(k);
    expect(adapterKey(id, '9.9.9')).not.toBe(k);
  });

  test('round trip, and the write is atomic: a failure before the rename leaves the old file whole', () => {
    const dir = tmpDir(), f = path.join(dir, 'sub', 'x.json');
    writeTuneCache(f, file());
    expect(readTuneCache(f, id, () => { throw new Error('no message expected'); })).toEqual(file());
    expect(fs.readdirSync(path.dirname(f))).toEqual(['x.json']); // no temporary left
    const before = fs.readFileSync(f, 'utf8');
    const changed = file();
    changed.entries['matmul|m16.n128.k64.f32'] = entry(null);
    let tmpSeen = '';
    TUNE_TEST_HOOKS.beforeRename = (tmp) => { tmpSeen = tmp; expect(fs.existsSync(tmp)).toBe(true); throw new Error('simulated crash'); };
    expect(() => writeTuneCache(f, changed)).toThrow(/writing the tuning cache .*x\.json: simulated crash/);
    expect(tmpSeen).toContain(`${f}.tmp-`);
    expect(fs.readFileSync(f, 'utf8')).toBe(before);
    expect(fs.readdirSync(path.dirname(f))).toEqual(['x.json']);
    TUNE_TEST_HOOKS.beforeRename = undefined;
    writeTuneCache(f, changed);
    expect(readTuneCache(f, id)!.entries['matmul|m16.n128.k64.f32'].winner).toBeNull();
  });

  test('a corrupt, malformed or foreign file is reported and ignored', () => {
    const dir = tmpDir(), f = path.join(dir, 'x.json');
    const cases: [string, RegExp][] = [
      ['{"format": 1, "entr', /corrupt tuning cache .*x\.json: .*JSON/],
      [JSON.stringify({ format: 2, entries: {} }), /not a concord tuning cache/],
      [JSON.stringify({ ...file(), entries: { k: { op: 'matmul' } } }), /entry 'k' is malformed/],
      [JSON.stringify({ ...file(), concord: '0.0.0-other' }), /another adapter or concord version/],
      [JSON.stringify({ ...file(), adapter: { ...id, description: 'other driver' } }), /another adapter or concord version/],
    ];
    for (const [text, msg] of cases) {
      fs.writeFileSync(f, text);
      const lines: string[] = [];
      expect(readTuneCache(f, id, (l) => lines.push(l))).toBeNull();
      expect(lines.join('\n')).toMatch(msg);
    }
    expect(readTuneCache(path.join(dir, 'absent.json'), id, () => { throw new Error('no message for an absent file'); })).toBeNull();
  });
});

describe('tuning on the GPU adapter', async () => {
  const rt = await gpuRuntime();
  const shape = { M: 13, N: 70, K: 45, f16: false };
  const cls = shapeClass('matmul', shape);

  test.skipIf(!rt)('an experimental variant (rounds activations to f16) is validated and timed but wins only with CONCORD_TUNE_EXPERIMENTAL=1', async () => {
    delete process.env.CONCORD_KERNEL_VARIANT;
    // 'subgroup-matrix' cannot run here; its launcher runs 'direct' so that it is valid (and, as the
    // fastest kernel on software adapters, would win if it were allowed to).
    const launchers = { matmul: { 'subgroup-matrix': (r: typeof rt, args: Parameters<typeof matmulGpu>[1]) => matmulGpu(r!, { ...args, variant: 'direct' }) } };
    const run = () => tuneFor(rt!, [{ op: 'matmul', shape }], { always: true, write: false, launchers, log: () => {}, budgetMs: 5, variants: { matmul: ['tiled', 'subgroup-matrix'] } });
    try {
      delete process.env.CONCORD_TUNE_EXPERIMENTAL;
      let e = (await run()).entries[0];
      expect(e.candidates.map((c) => [c.variant, c.status])).toEqual([['tiled', 'valid'], ['subgroup-matrix', 'valid']]);
      expect(e.winner).toBe('tiled');
      process.env.CONCORD_TUNE_EXPERIMENTAL = '1';
      e = (await run()).entries[0];
      const fastest = [...e.candidates].sort((a, b) => a.ms! - b.ms!)[0].variant;
      expect(e.winner).toBe(fastest);
    } finally {
      delete process.env.CONCORD_TUNE_EXPERIMENTAL;
      clearTuned(rt!);
    }
  });

  test.skipIf(!rt)('a candidate with wrong numbers is reported and excluded, even where it is the default', async () => {
    delete process.env.CONCORD_KERNEL_VARIANT;
    const lines: string[] = [];
    // 'direct' (the software default) is replaced by a launcher that drops the last k: wrong numbers.
    const launchers = { matmul: { direct: (r: typeof rt, args: Parameters<typeof matmulGpu>[1]) => matmulGpu(r!, { ...args, K: args.K - 1, variant: 'direct' }) } };
    const dir = tmpDir(), cacheFile = path.join(dir, 'c.json');
    const rep = await tuneFor(rt!, [{ op: 'matmul', shape }], { mode: 'refresh', cacheFile, launchers, log: (l) => lines.push(l), budgetMs: 5, variants: { matmul: ['tiled', 'direct'] } });
    const e = rep.entries[0];
    expect(e.source).toBe('tuned');
    expect(e.candidates.map((c) => [c.variant, c.status])).toEqual([['tiled', 'valid'], ['direct', 'failed']]);
    const bad = e.candidates[1];
    expect(bad.maxError!).toBeGreaterThan(0.05);
    expect(bad.ms).toBeUndefined(); // never timed
    expect(e.winner).toBe('tiled');
    expect(lines.join('\n')).toMatch(new RegExp(`matmul ${cls.replace(/\./g, '\\.')} \\(M=13 N=70 K=45\\): variant 'direct' failed validation \\(never used\\)`));
    // The winner is in force for that class (on software adapters the default would be direct) and cached with the failure.
    expect(kernelVariant(rt!, 'matmul', shape)).toBe('tiled');
    expect(kernelVariant(rt!, 'matmul', { M: 1000, N: 70, K: 45 })).toBe(rt!.handle.info.software ? 'direct' : GPU0);
    const cached = readTuneCache(cacheFile, adapterIdentity(rt!))!;
    expect(cached.entries[`matmul|${cls}`].candidates[1]).toMatchObject({ variant: 'direct', status: 'failed' });
    expect(rep.written).toBe(true);
    clearTuned(rt!);
  });

  test.skipIf(!rt)('a variant that throws: a plain Error is unavailable, a programming error failed; neither wins', async () => {
    const lines: string[] = [];
    const launchers = {
      matmul: {
        tiled: () => { throw new Error('matmul: tiled needs the warp-drive feature'); },
        direct: () => { (undefined as unknown as { x: number }).x = 1; },
      },
    };
    const e = await tuneShape(rt!, 'matmul', shape, { launchers, log: (l) => lines.push(l), budgetMs: 5, variants: { matmul: ['tiled', 'direct'] } });
    expect(e.candidates.map((c) => c.status)).toEqual(['unavailable', 'failed']);
    expect(e.candidates[0].error).toMatch(/warp-drive/);
    expect(e.winner).toBeNull();
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatch(/variant 'direct' failed: Cannot set properties of undefined/);
  });

  test.skipIf(!rt)('every variant of every op validates on this adapter (or lacks a feature), and the timing method is reported', async () => {
    const lines: string[] = [];
    const rep = await tuneFor(rt!, [
      { op: 'matmul', shape: { M: 13, N: 70, K: 48 } }, { op: 'logprob', shape: { T: 9, V: 200, d: 32 } }, { op: 'rowmax', shape: { N: 7, M: 150 } },
    ], { always: true, write: false, budgetMs: 5, log: (l) => lines.push(l) });
    for (const e of rep.entries) {
      expect(e.candidates.map((c) => c.variant)).toEqual(expect.arrayContaining([...(KERNEL_VARIANTS as Record<string, readonly string[]>)[e.op]]));
      for (const c of e.candidates) {
        if (c.status === 'unavailable') expect(c.error).toMatch(/feature|shader-f16/);
        else expect([c.status, c.ms! > 0], JSON.stringify(c)).toEqual(['valid', true]);
      }
      expect(e.timing).toBe(rt!.hasTimestamps ? 'timestamp' : 'wall-clock');
    }
    expect(lines.every((l) => / unavailable: /.test(l)), lines.join('\n')).toBe(true);
    expect(rep.written).toBe(false);
    clearTuned(rt!);
  });

  test.skipIf(!rt)('modes: off reads nothing; auto on a software adapter loads the cache but tunes nothing; a corrupt cache is reported', async () => {
    const dir = tmpDir(), cacheFile = path.join(dir, 'c.json');
    const lines: string[] = [];
    const log = (l: string) => lines.push(l);
    const reqs = [{ op: 'rowmax', shape: { N: 7, M: 150 } }, { op: 'nosuchop', shape: { L: 8 } }];
    fs.writeFileSync(cacheFile, 'not json');
    const off = await tuneFor(rt!, reqs, { mode: 'off', cacheFile, log });
    expect(off.entries).toEqual([]);
    expect(off.skipped.map((s) => s.reason)).toEqual(['no variants in this build', 'CONCORD_TUNE=off']);
    expect(lines).toEqual([]);
    if (rt!.handle.info.software) {
      const auto = await tuneFor(rt!, reqs, { mode: 'auto', cacheFile, log });
      expect(lines.join('\n')).toMatch(/ignoring the corrupt tuning cache .*c\.json/);
      expect(auto.entries).toEqual([]);
      expect(auto.skipped.map((s) => s.reason)).toContain('software adapter: not tuned automatically (concord tune)');
      expect(fs.readFileSync(cacheFile, 'utf8')).toBe('not json');
    }
    const tuned = await tuneFor(rt!, reqs, { mode: 'refresh', cacheFile, log, budgetMs: 5 });
    expect(tuned.written).toBe(true);
    const again = await tuneFor(rt!, reqs, { mode: 'auto', cacheFile, log: (l) => { throw new Error(`unexpected: ${l}`); } });
    expect(again.entries.map((e) => [e.op, e.source, e.winner])).toEqual([['rowmax', 'cache', tuned.entries[0].winner]]);
    // A cache that cannot be written is reported; the winners still hold for this process.
    const blocked = path.join(dir, 'file-not-dir');
    fs.writeFileSync(blocked, '');
    lines.length = 0;
    const ro = await tuneFor(rt!, reqs, { mode: 'refresh', cacheFile: path.join(blocked, 'c.json'), log, budgetMs: 5 });
    expect(ro.written).toBe(false);
    expect(ro.writeError).toMatch(/writing the tuning cache .*file-not-dir.*c\.json: .*(ENOTDIR|EEXIST)/);
    expect(lines.join('\n')).toMatch(/hold for this run only/);
    expect(ro.entries[0].source).toBe('tuned');
    clearTuned(rt!);
  });

  test.skipIf(!rt)('a cached winner with a tile configuration the device cannot run, or an unknown variant, is reported naming the file and not used', async () => {
    const dir = tmpDir(), cacheFile = path.join(dir, 'c.json');
    const shape = { M: 64, N: 128, K: 64, f16: false };
    const tuned = await tuneFor(rt!, [{ op: 'matmul', shape }], { mode: 'refresh', cacheFile, log: () => {}, budgetMs: 5 });
    expect(tuned.written).toBe(true);
    clearTuned(rt!);
    const c = JSON.parse(fs.readFileSync(cacheFile, 'utf8')) as TuneCacheFile;
    const key = Object.keys(c.entries)[0];
    for (const [winner, winnerConfig, why] of [
      ['blocked', { TM: 7, TN: 3, BM: 1000000 }, /tile configuration .* of 'blocked' is not one this device can run/],
      ['warp-speed', undefined, /winner 'warp-speed' is not a matmul variant/],
    ] as const) {
      c.entries[key] = { ...c.entries[key], winner, winnerConfig: winnerConfig as TuneEntry['winnerConfig'] };
      fs.writeFileSync(cacheFile, JSON.stringify(c));
      const lines: string[] = [];
      const rep = await tuneFor(rt!, [{ op: 'matmul', shape }], { mode: 'auto', cacheFile, log: (l) => lines.push(l) });
      expect(lines.join('\n')).toMatch(new RegExp(`ignoring 'matmul\\|.*' in the tuning cache .*c\\.json: ${why.source}`));
      expect(rep.entries.every((e) => e.winner !== winner)).toBe(true);
      clearTuned(rt!);
    }
  });

  test.skipIf(!rt)('tile configurations (the configs hook) are candidates of their own; the winning one is recorded', async () => {
    delete process.env.CONCORD_KERNEL_VARIANT;
    const saved = PROBES.matmul.configs;
    PROBES.matmul.configs = (_r, variant) => (variant === 'direct' ? [{ variant, tile: 1 }, { variant, tile: 2 }] : [undefined]);
    try {
      // tile 2 is broken: it drops a row of A.
      const launchers = { matmul: { direct: (r: typeof rt, args: Parameters<typeof matmulGpu>[1] & { config?: { tile: number } }, v: string, c?: { tile?: number }) => matmulGpu(r!, { ...args, M: c?.tile === 2 ? args.M - 1 : args.M, variant: 'direct' }) } };
      const lines: string[] = [];
      const rep = await tuneFor(rt!, [{ op: 'matmul', shape }], { always: true, write: false, configs: 'all', launchers, log: (l) => lines.push(l), budgetMs: 5, variants: { matmul: ['direct'] } });
      const e = rep.entries[0];
      expect(e.candidates.map((c) => [c.config, c.status])).toEqual([[{ variant: 'direct', tile: 1 }, 'valid'], [{ variant: 'direct', tile: 2 }, 'failed']]);
      expect(e.winnerConfig).toEqual({ variant: 'direct', tile: 1 });
      expect(lines.join('\n')).toMatch(/variant 'direct\{"variant":"direct","tile":2\}' failed validation/);
      expect(tunedConfig(rt!, 'matmul', shape, 'direct')).toEqual({ variant: 'direct', tile: 1 });
      expect(tunedConfig(rt!, 'matmul', shape, 'tiled')).toBeUndefined();
      // 'first' keeps each variant's first (default) config only.
      const first = await tuneShape(rt!, 'matmul', shape, { configs: 'first', launchers, log: () => {}, budgetMs: 5, variants: { matmul: ['direct'] } });
      expect(first.candidates.map((c) => c.config)).toEqual([{ variant: 'direct', tile: 1 }]);
    } finally {
      PROBES.matmul.configs = saved;
      clearTuned(rt!);
    }
  });

  test.skipIf(!rt)("attention's probe (ready for its variants) validates today's kernel and catches a wrong one", async () => {
    const s = { B: 2, L: 20, nHeads: 4, nKvHeads: 2, headDim: 16, causal: true };
    const launchers = { attention: { wrong: (r: typeof rt, args: Parameters<typeof attentionGpu>[1]) => attentionGpu(r!, { ...args, causal: false }) } };
    // Today attentionGpu has no variants and ignores the name; once it has, its last one ('direct').
    const name = (KERNEL_VARIANTS as Record<string, readonly string[]>).attention?.at(-1) ?? 'current';
    const e = await tuneShape(rt!, 'attention', s, { variants: { attention: [name, 'wrong'] }, launchers, log: () => {}, budgetMs: 5 });
    expect(e.candidates.map((c) => c.status)).toEqual(['valid', 'failed']);
    expect(e.winner).toBe(name);
  });
});
