// Hugging Face model families against an independent reference: tiny random checkpoints in each
// family's real layout (tests/fixtures/hf/<family>: its real config.json fields and tensor names)
// and per-token log-probs from a float64 PyTorch forward written from transformers' modelling
// files (scripts/reference_torch.py hf). CPU twin ≤ 1e-5, WebGPU f32 ≤ 1e-4, f16 weights against
// the f16-rounded twin ≤ 1e-4; each family's distinguishing feature is shown to matter (dropping
// it moves the log-probs far beyond the tolerance), so the fixture really exercises it.

import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadModel } from '../src/models/index.js';
import { logProbsCpu } from '../src/models/forward-cpu.js';
import { loadHf } from '../src/models/hf.js';
import { encodeStandalone } from '../src/pipeline/templates.js';
import type { LoadedWeights } from '../src/models/types.js';
import { validate } from '../src/validate.js';
import { gpuRuntime } from './helpers/gpu.js';

const ROOT = resolve(import.meta.dirname, '..');
const FIX = join(ROOT, 'tests', 'fixtures', 'hf');

interface Reference { family: string; architecture: string; storage_dtype: string; sequences: { ids: number[]; logprobs: number[] }[] }
const ref = (family: string): Reference => JSON.parse(readFileSync(join(FIX, family, 'reference.json'), 'utf8'));

/** The family's distinguishing feature removed from the loaded weights (null: none to remove). */
type Ablate = ((w: LoadedWeights) => LoadedWeights) | null;

const FAMILIES: { family: string; check: (w: LoadedWeights) => void; ablate: Ablate }[] = [
  {
    family: 'llama3',
    check: (w) => expect(w.config.ropeScaling).toEqual({ type: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 }),
    ablate: (w) => ({ ...w, config: { ...w.config, ropeScaling: null } }),
  },
  {
    family: 'smollm2',
    // Plain Llama: no scaling, no windows, tied head, its rope_theta.
    check: (w) => {
      expect(w.config).toMatchObject({ ropeTheta: 100000, tiedEmbeddings: true });
      expect(w.config.ropeScaling ?? null).toBeNull();
      expect(w.config.layerWindows).toBeUndefined();
      expect(w.tensors.get('lm_head')).toBe(w.tensors.get('tok_emb'));
    },
    ablate: null,
  },
  {
    family: 'qwen3',
    check: (w) => {
      // head_dim 32 with hidden 64 and 4 heads: q is [128, 64], not [64, 64].
      expect(w.config).toMatchObject({ headDim: 32, nHeads: 4, dim: 64, qkvBias: false });
      expect(w.tensors.get('layers.0.wq')!.length).toBe(128 * 64);
      expect(w.tensors.get('layers.1.q_norm.weight')!.length).toBe(32);
      expect(w.tensors.has('layers.0.bq')).toBe(false);
    },
    ablate: (w) => ({ ...w, tensors: new Map([...w.tensors].filter(([k]) => !/[qk]_norm/.test(k))) }),
  },
  {
    family: 'mistral',
    // Window 8 with sequences up to 40 tokens: honoured in attention, not a cap on the length.
    check: (w) => {
      expect(w.config.layerWindows).toEqual([8, 8]);
      expect(w.config.maxSeqLen).toBe(32768);
    },
    ablate: (w) => ({ ...w, config: { ...w.config, layerWindows: undefined } }),
  },
  {
    family: 'smollm3',
    check: (w) => {
      expect(w.config.layerRope).toEqual([true, true, false]);
      expect(w.config.tiedEmbeddings).toBe(true);
    },
    ablate: (w) => ({ ...w, config: { ...w.config, layerRope: undefined } }),
  },
];

describe('Hugging Face families vs the PyTorch float64 reference', async () => {
  const rt = await gpuRuntime();

  for (const { family, check, ablate } of FAMILIES) {
    describe(family, () => {
      const r = ref(family);
      const seqs = r.sequences.map((s) => ({ ids: s.ids }));

      it(`loads ${r.architecture} (${r.storage_dtype}) with its features; CPU twin matches the reference (≤1e-5)`, async () => {
        const w = loadHf(join(FIX, family));
        check(w);
        let worst = 0;
        for (const s of r.sequences) {
          const got = logProbsCpu(w, s.ids).slice(1);
          const v = validate(got, s.logprobs, { atol: 1e-5, rtol: 0 });
          expect(v.ok, `${family} len ${s.ids.length}: ${v.summary}`).toBe(true);
          worst = Math.max(worst, v.maxAbsErr);
        }
        console.log(`[${family}] CPU twin vs PyTorch f64: max |Δ| ${worst.toExponential(2)} nats/token over ${r.sequences.length} sequences`);
        if (ablate) {
          // Without the feature the log-probs move far past the tolerance: the fixture exercises it.
          const a = ablate(w);
          let moved = 0;
          for (const s of r.sequences) {
            const got = logProbsCpu(a, s.ids).slice(1);
            moved = Math.max(moved, validate(got, s.logprobs, { atol: 0, rtol: 0 }).maxAbsErr);
          }
          expect(moved, `${family} without its feature`).toBeGreaterThan(1e-2);
        }
      });

      it.skipIf(!rt)('WebGPU f32 matches the reference (≤1e-4) in one padded batch', async () => {
        const gpu = await loadModel(join(FIX, family), { device: rt!, f16: false });
        const got = await gpu.scoreBatch(seqs);
        let worst = 0;
        r.sequences.forEach((s, i) => {
          const v = validate(got[i].logprobs, s.logprobs, { atol: 1e-4, rtol: 0 });
          expect(v.ok, `${family} len ${s.ids.length}: ${v.summary}`).toBe(true);
          worst = Math.max(worst, v.maxAbsErr);
        });
        console.log(`[${family}] WebGPU f32 vs PyTorch f64: max |Δ| ${worst.toExponential(2)} nats/token`);
        gpu.dispose();
      });

      it.skipIf(!rt || !rt.hasF16)('WebGPU f16 weights match the f16-rounded CPU twin (≤1e-4)', async () => {
        const cpu = await loadModel(join(FIX, family), { device: 'cpu', f16: true });
        const gpu = await loadModel(join(FIX, family), { device: rt!, f16: true });
        expect(gpu.deviceName).toContain('f16');
        const [want, got] = [await cpu.scoreBatch(seqs), await gpu.scoreBatch(seqs)];
        let worst = 0;
        seqs.forEach((s, i) => {
          const v = validate(got[i].logprobs, want[i].logprobs, { atol: 1e-4, rtol: 0 });
          expect(v.ok, `${family} len ${s.ids.length}: ${v.summary}`).toBe(true);
          worst = Math.max(worst, v.maxAbsErr);
        });
        console.log(`[${family}] WebGPU f16 vs f16-rounded CPU twin: max |Δ| ${worst.toExponential(2)} nats/token`);
        gpu.dispose();
      });
    });
  }
});

describe('concord logprob --model <tiny HF folder>', () => {
  const BIN = join(ROOT, 'bin', 'concord.js');
  const built = join(ROOT, 'dist', 'src', 'models', 'hf.js');
  const stale = () => !existsSync(built) || statSync(built).mtimeMs < statSync(join(ROOT, 'src', 'models', 'hf.ts')).mtimeMs
    || statSync(join(ROOT, 'dist', 'src', 'models', 'forward-cpu.js')).mtimeMs < statSync(join(ROOT, 'src', 'models', 'forward-cpu.ts')).mtimeMs;
  const cli = (args: string[]) => spawnSync(process.execPath, [BIN, ...args], { cwd: ROOT, encoding: 'utf8' });

  it('works on cpu and webgpu for each family; both agree (≤1e-4) and match the library CPU path', async () => {
    if (stale()) spawnSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'], { cwd: ROOT, encoding: 'utf8' });
    const rt = await gpuRuntime();
    for (const { family } of FAMILIES) {
      const dir = join(FIX, family);
      const args = ['logprob', '--model', dir, '--context', 'the cat sat on', '--target', ' the mat and ran.', '--json'];
      const c = cli([...args, '--device', 'cpu']);
      expect(c.status, `${family} cpu: ${c.stderr}`).toBe(0);
      const oc = JSON.parse(c.stdout);
      expect(oc.target_tokens).toBeGreaterThan(3);
      // The CLI's numbers are the library's CPU path on the same tokens.
      const lm = await loadModel(dir, { device: 'cpu' });
      const ids = [lm.tokenizer.bosId!, ...encodeStandalone(lm.tokenizer, 'the cat sat on')];
      const ctxLen = ids.length;
      expect(ctxLen - 1).toBe(oc.context_tokens);
      ids.push(...oc.tokens.map((t: { id: number }) => t.id));
      const [lib] = await lm.scoreBatch([{ ids }]);
      const libTarget = Array.from(lib.logprobs.slice(ctxLen - 1));
      const vl = validate(oc.tokens.map((t: { logprob: number }) => t.logprob), libTarget, { atol: 1e-6 });
      expect(vl.ok, `${family} cli vs library: ${vl.summary}`).toBe(true);
      if (!rt) continue;
      const g = cli([...args, '--device', 'webgpu']);
      expect(g.status, `${family} webgpu: ${g.stderr}`).toBe(0);
      const og = JSON.parse(g.stdout);
      expect(og.tokens.map((t: { id: number }) => t.id)).toEqual(oc.tokens.map((t: { id: number }) => t.id));
      const v = validate(og.tokens.map((t: { logprob: number }) => t.logprob), oc.tokens.map((t: { logprob: number }) => t.logprob), { atol: 1e-4 });
      expect(v.ok, `${family} webgpu vs cpu: ${v.summary}`).toBe(true);
    }
  }, 600_000);
});
