// Hugging Face model families against an independent reference: tiny random checkpoints in each
// family's real layout (tests/fixtures/hf/<family>: its real config.json fields and tensor names)
// and per-token log-probs from a float64 PyTorch forward written from transformers' modelling
// files (scripts/reference_torch.py hf). CPU twin ≤ 1e-5, WebGPU f32 ≤ 1e-4, f16 weights against
// the f16-rounded twin ≤ 1e-4; each family's distinguishing feature is shown to matter (dropping
// it moves the log-probs far beyond the tolerance), so the fixture really exercises it.

import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadModel } from '../src/models/index.js';
import { logProbsCpu } from '../src/models/forward-cpu.js';
import { loadHf } from '../src/models/hf.js';
import { encodeStandalone } from '../src/pipeline/templates.js';
import type { LoadedWeights } from '../src/models/types.js';
import { validate } from '../src/validate.js';
import { gpuRuntime } from './helpers/gpu.js';
import { scratchDir } from './helpers/scratch.js';

const ROOT = resolve(import.meta.dirname, '..');
const FIX = join(ROOT, 'tests', 'fixtures', 'hf');

interface Reference { family: string; architecture: string; storage_dtype: string; sequences: { ids: number[]; logprobs: number[] }[] }
const ref = (family: string): Reference => JSON.parse(readFileSync(join(FIX, family, 'reference.json'), 'utf8'));

/** The family's distinguishing features, each removed from the loaded weights in turn (empty: none). */
type Ablate = [string, (w: LoadedWeights) => LoadedWeights][];
const cfgWith = (patch: Partial<LoadedWeights['config']>) => (w: LoadedWeights): LoadedWeights => ({ ...w, config: { ...w.config, ...patch } });
const withoutTensors = (re: RegExp) => (w: LoadedWeights): LoadedWeights => ({ ...w, tensors: new Map([...w.tensors].filter(([k]) => !re.test(k))) });

const FAMILIES: { family: string; check: (w: LoadedWeights) => void; ablate: Ablate }[] = [
  {
    family: 'llama3',
    check: (w) => expect(w.config.ropeScaling).toEqual({ type: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 }),
    ablate: [['llama3 rope scaling', cfgWith({ ropeScaling: null })]],
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
    ablate: [],
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
    ablate: [['q/k norms', withoutTensors(/[qk]_norm/)]],
  },
  {
    family: 'mistral',
    // Window 8 with sequences up to 40 tokens: honoured in attention, not a cap on the length.
    check: (w) => {
      expect(w.config.layerWindows).toEqual([8, 8]);
      expect(w.config.maxSeqLen).toBe(32768);
    },
    ablate: [['sliding window', cfgWith({ layerWindows: undefined })]],
  },
  {
    family: 'ministral',
    // layer_types: sliding, then full attention.
    check: (w) => expect(w.config.layerWindows).toEqual([8, 0]),
    ablate: [['sliding window', cfgWith({ layerWindows: undefined })], ['full layer', cfgWith({ layerWindows: [8, 8] })]],
  },
  {
    family: 'smollm3',
    check: (w) => {
      expect(w.config.layerRope).toEqual([true, true, false]);
      expect(w.config.tiedEmbeddings).toBe(true);
    },
    ablate: [['NoPE layers', cfgWith({ layerRope: undefined })]],
  },
  {
    family: 'phi3',
    check: (w) => {
      const af = Math.sqrt(1 + Math.log(131072 / 4096) / Math.log(4096));
      expect(w.config).toMatchObject({ rotaryDim: 12, headDim: 16, maxSeqLen: 4096, layerWindows: [16, 16], tiedEmbeddings: false });
      expect(w.config.ropeScaling).toEqual({ type: 'longrope', factors: [1.0, 1.08, 1.3, 1.7, 2.6, 4.1], attentionFactor: af });
      // Fused projections split at load: q | k | v and gate | up.
      expect(w.tensors.get('layers.0.wq')!.length).toBe(64 * 64);
      expect(w.tensors.get('layers.0.wk')!.length).toBe(32 * 64);
      expect(w.tensors.get('layers.0.w_gate')!.length).toBe(64 * 64);
    },
    ablate: [
      ['longrope short factors', (w) => cfgWith({ ropeScaling: { type: 'longrope', factors: new Array(6).fill(1), attentionFactor: (w.config.ropeScaling as { attentionFactor: number }).attentionFactor } })(w)],
      ['longrope attention factor', (w) => cfgWith({ ropeScaling: { ...(w.config.ropeScaling as { type: 'longrope'; factors: number[] }), attentionFactor: 1 } })(w)],
      ['partial rotary', (w) => {
        const lr = w.config.ropeScaling as { type: 'longrope'; factors: number[]; attentionFactor: number };
        return cfgWith({ rotaryDim: undefined, ropeScaling: { ...lr, factors: [...lr.factors, 4.1, 4.1] } })(w);
      }],
      ['sliding window', cfgWith({ layerWindows: undefined })],
      ['q/k/v split order', (w) => {
        const t = new Map(w.tensors);
        for (let i = 0; i < w.config.nLayers; i++) { const q = t.get(`layers.${i}.wq`)!; t.set(`layers.${i}.wq`, t.get(`layers.${i}.wo`)!); t.set(`layers.${i}.wo`, q); }
        return { ...w, tensors: t };
      }],
      ['gate/up split order', (w) => {
        const t = new Map(w.tensors);
        for (let i = 0; i < w.config.nLayers; i++) { const g = t.get(`layers.${i}.w_gate`)!; t.set(`layers.${i}.w_gate`, t.get(`layers.${i}.w_up`)!); t.set(`layers.${i}.w_up`, g); }
        return { ...w, tensors: t };
      }],
    ],
  },
  {
    family: 'gemma2',
    check: (w) => {
      expect(w.config).toMatchObject({
        act: 'geglu', normWeightOffset: 1, embedScale: 8, attnScale: 24 ** -0.5, attnSoftcap: 1.5, finalSoftcap: 3,
        layerWindows: [8, 0], headDim: 32, tiedEmbeddings: true,
      });
      expect(w.tensors.has('layers.1.post_attn_norm.weight') && w.tensors.has('layers.1.post_ffn_norm.weight')).toBe(true);
    },
    ablate: [
      ['final-logit soft-cap', cfgWith({ finalSoftcap: undefined })],
      ['attention soft-cap', cfgWith({ attnSoftcap: undefined })],
      ['sliding window', cfgWith({ layerWindows: undefined })],
      ['query_pre_attn_scalar', cfgWith({ attnScale: undefined })],
      ['embedding scale', cfgWith({ embedScale: undefined })],
      ['(1 + w) norms', cfgWith({ normWeightOffset: 0 })],
      ['post norms', withoutTensors(/post_(attn|ffn)_norm/)],
      ['GeGLU', cfgWith({ act: 'swiglu' })],
    ],
  },
  {
    family: 'gemma3',
    check: (w) => {
      expect(w.config).toMatchObject({
        act: 'geglu', normWeightOffset: 1, embedScale: 8, attnScale: 32 ** -0.5, layerWindows: [8, 0, 8], ropeTheta: 1e6,
        ropeLocalTheta: 10000, ropeScaling: { type: 'linear', factor: 8 },
      });
      expect(w.config.attnSoftcap).toBeUndefined();
      expect(w.config.finalSoftcap).toBeUndefined();
      expect(w.tensors.get('layers.2.k_norm.weight')!.length).toBe(32);
    },
    ablate: [
      ['q/k norms', withoutTensors(/[qk]_norm/)],
      ['local RoPE base', cfgWith({ ropeLocalTheta: undefined })],
      ['linear rope scaling', cfgWith({ ropeScaling: null })],
      ['sliding window', cfgWith({ layerWindows: undefined })],
    ],
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
        for (const [what, fn] of ablate) {
          // Without the feature the log-probs move far past the tolerance: the fixture exercises it.
          const a = fn(w);
          let moved = 0;
          for (const s of r.sequences) {
            const got = logProbsCpu(a, s.ids).slice(1);
            moved = Math.max(moved, validate(got, s.logprobs, { atol: 0, rtol: 0 }).maxAbsErr);
          }
          expect(moved, `${family} without its ${what}`).toBeGreaterThan(1e-2);
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
        const cpu = await loadModel(join(FIX, family), { device: 'cpu-twin', f16: true });
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
  const newest = (dir: string): number => Math.max(0, ...readdirSync(dir, { withFileTypes: true }).map((e) =>
    e.isDirectory() ? newest(join(dir, e.name)) : statSync(join(dir, e.name)).mtimeMs));
  // dist/ is rebuilt when older than any source under src/ or kernels/.
  const stale = () => !existsSync(built) || statSync(built).mtimeMs < Math.max(newest(join(ROOT, 'src')), newest(join(ROOT, 'kernels')));
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
      const [lib] = await lm.scoreBatch([{ ids }], { entropy: true });
      const libTarget = Array.from(lib.logprobs.slice(ctxLen - 1));
      const vl = validate(oc.tokens.map((t: { logprob: number }) => t.logprob), libTarget, { atol: 1e-6 });
      expect(vl.ok, `${family} cli vs library: ${vl.summary}`).toBe(true);
      // Each token's entropy beside its log-prob (--json), the library's as well.
      const ve = validate(oc.tokens.map((t: { entropy: number }) => t.entropy), Array.from(lib.entropy!.slice(ctxLen - 1)), { atol: 1e-6 });
      expect(ve.ok, `${family} cli entropy vs library: ${ve.summary}`).toBe(true);
      if (!rt) continue;
      const g = cli([...args, '--device', 'webgpu']);
      expect(g.status, `${family} webgpu: ${g.stderr}`).toBe(0);
      const og = JSON.parse(g.stdout);
      expect(og.tokens.map((t: { id: number }) => t.id)).toEqual(oc.tokens.map((t: { id: number }) => t.id));
      const v = validate(og.tokens.map((t: { logprob: number }) => t.logprob), oc.tokens.map((t: { logprob: number }) => t.logprob), { atol: 1e-4 });
      expect(v.ok, `${family} webgpu vs cpu: ${v.summary}`).toBe(true);
      const vge = validate(og.tokens.map((t: { entropy: number }) => t.entropy), oc.tokens.map((t: { entropy: number }) => t.entropy), { atol: 1e-4 });
      expect(vge.ok, `${family} webgpu vs cpu entropy: ${vge.summary}`).toBe(true);
    }
  }, 600_000);
});

describe('clear errors for what these families do not support', () => {
  const tmp = scratchDir('concord-hf-err-');
  /** A copy of a fixture folder with config.json patched. */
  const variant = (family: string, patch: Record<string, unknown>): string => {
    const dir = join(tmp, `${family}-${Math.random().toString(36).slice(2)}`);
    cpSync(join(FIX, family), dir, { recursive: true });
    const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...cfg, ...patch }));
    return dir;
  };

  it('names the architecture and lists the supported ones; names the bad field', () => {
    expect(() => loadHf(variant('gemma3', { architectures: ['Gemma3ForConditionalGeneration'] })))
      .toThrow(/config\.json: unsupported architecture Gemma3ForConditionalGeneration; supported: .*Qwen3ForCausalLM.*Gemma2ForCausalLM, Gemma3ForCausalLM, Phi3ForCausalLM/);
    expect(() => loadHf(variant('phi3', { rope_scaling: { type: 'longrope', short_factor: [1, 2], long_factor: [1, 2] } })))
      .toThrow(/config\.json: rope_scaling longrope needs short_factor: 6 positive numbers \(rotary dim 12 \/ 2; got 2 entries\)/);
    expect(() => loadHf(variant('phi3', { partial_rotary_factor: 0.7 }))).toThrow(/config\.json: partial_rotary_factor 0\.7 gives rotary dim 11/);
    expect(() => loadHf(variant('qwen3', { rope_scaling: { rope_type: 'yarn', factor: 4 } })))
      .toThrow(/config\.json: Qwen3ForCausalLM with rope_scaling .*yarn.* is not supported \(supported rope types: default, linear, llama3, longrope\)/);
    expect(() => loadHf(variant('gemma2', { hidden_activation: 'gelu' }))).toThrow(/config\.json: Gemma2ForCausalLM with hidden_activation "gelu" is not supported/);
    expect(() => loadHf(variant('smollm3', { no_rope_layers: [1, 0] }))).toThrow(/config\.json: no_rope_layers must list 0\/1 for each of the 3 layers/);
    expect(() => loadHf(variant('mistral', { layer_types: ['full_attention', 'chunked_attention'] })))
      .toThrow(/config\.json: layer_types\[1\] "chunked_attention" is not supported/);
  });

  it('longrope: sequences beyond original_max_position_embeddings are refused (the long factors are not implemented)', () => {
    const w = loadHf(join(FIX, 'phi3'));
    expect(() => logProbsCpu(w, new Array(4097).fill(3))).toThrow(/4097 tokens exceed the model's maxSeqLen 4096/);
  });
});
