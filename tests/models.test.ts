// Model loaders (llama2.c, safetensors, HF folders) and the CPU forward pass.
//   - every tiny model round-trips bit-exactly (Conv1D transposes, bf16/f16 conversions, shards)
//   - errors name the file and the reason
//   - stories15M loads with the right config and prefers a coherent sentence to its shuffle
//   - the CPU forward matches an independent per-token f64 reference (below) on every
//     architecture, and the same weights agree as llama2.c .bin and as HF folder (RoPE layouts)

import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { forwardHiddenCpu, logitsCpu, logProbsBatchCpu, logProbsCpu } from '../src/models/forward-cpu.js';
import { loadHf, readHfConfig, SUPPORTED_ARCHITECTURES } from '../src/models/hf.js';
import { readLlama2cHeader } from '../src/formats/llama2c.js';
import { loadLlama2c, parseLlama2c } from '../src/models/llama2c.js';
import { serializeLlama2c, writeSafetensors } from './helpers/writers.js';
import { modelsDir } from '../src/env.js';
import { defaultModelDir, loadWeights, resolveModel } from '../src/models/load.js';
import { openSafetensors, openSafetensorsFolder } from '../src/formats/safetensors.js';
import { tensor, type LoadedWeights } from '../src/models/types.js';
import { f16BitsToF32 } from '../src/util/f16.js';
import { randInt, randn, rng } from './helpers/gpu.js';
import { buildTinyModel, interleavedToHalf, makeTinyModel, TINY_KINDS, type TinyKind } from './helpers/tiny-models.js';

let dir: string;
beforeAll(() => { dir = mkdtempSync(join(tmpdir(), 'concord-models-')); });
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const sameBits = (a: Float32Array, b: Float32Array): boolean =>
  a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

/**
 * Independent reference: run.c-style per-token forward with a KV cache, plain number arrays and f64
 * throughout. Returns logits [T][V]. Shares no code with src/models/forward-cpu.ts.
 */
function referenceLogits(w: LoadedWeights, ids: number[]): number[][] {
  const c = w.config;
  const g = (n: string) => tensor(w, n);
  const d = c.dim, hd = c.headDim, nH = c.nHeads, nKv = c.nKvHeads;
  const matvec = (W: Float32Array, x: number[], rows: number, b?: Float32Array): number[] => {
    const cols = x.length, out: number[] = [];
    for (let r = 0; r < rows; r++) {
      let s = b ? b[r] : 0;
      for (let k = 0; k < cols; k++) s += W[r * cols + k] * x[k];
      out.push(s);
    }
    return out;
  };
  const norm = (x: number[], p: string): number[] => {
    const wt = g(`${p}.weight`);
    if (c.norm === 'rms') {
      const s = 1 / Math.sqrt(x.reduce((a, v) => a + v * v, 0) / d + c.normEps);
      return x.map((v, i) => v * s * wt[i]);
    }
    const mean = x.reduce((a, v) => a + v, 0) / d;
    const vr = x.reduce((a, v) => a + (v - mean) ** 2, 0) / d;
    const b = g(`${p}.bias`);
    return x.map((v, i) => ((v - mean) / Math.sqrt(vr + c.normEps)) * wt[i] + b[i]);
  };
  const rope = (v: number[], heads: number, pos: number) => {
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < hd; i += 2) {
        // run.c: freq = 1 / 10000^(head_dim / head_size) for head_dim = 0, 2, 4, ...
        const a = pos / Math.pow(c.ropeTheta, i / hd);
        const [j0, j1] = c.ropeLayout === 'interleaved' ? [h * hd + i, h * hd + i + 1] : [h * hd + i / 2, h * hd + i / 2 + hd / 2];
        const x0 = v[j0], x1 = v[j1];
        v[j0] = x0 * Math.cos(a) - x1 * Math.sin(a);
        v[j1] = x0 * Math.sin(a) + x1 * Math.cos(a);
      }
    }
  };
  const kc: number[][][] = [], vc: number[][][] = [];
  for (let l = 0; l < c.nLayers; l++) { kc.push([]); vc.push([]); }
  const logits: number[][] = [];
  ids.forEach((id, pos) => {
    let x = Array.from(g('tok_emb').subarray(id * d, id * d + d));
    if (c.pos === 'learned') x = x.map((v, i) => v + g('pos_emb')[pos * d + i]);
    for (let l = 0; l < c.nLayers; l++) {
      const p = `layers.${l}`;
      const b = (n: string) => (w.tensors.has(`${p}.${n}`) ? g(`${p}.${n}`) : undefined);
      const xn = norm(x, `${p}.attn_norm`);
      const q = matvec(g(`${p}.wq`), xn, nH * hd, b('bq'));
      const k = matvec(g(`${p}.wk`), xn, nKv * hd, b('bk'));
      const v = matvec(g(`${p}.wv`), xn, nKv * hd, b('bv'));
      if (c.pos === 'rope') { rope(q, nH, pos); rope(k, nKv, pos); }
      kc[l].push(k);
      vc[l].push(v);
      const att = new Array<number>(nH * hd).fill(0);
      for (let h = 0; h < nH; h++) {
        const kh = Math.floor((h * nKv) / nH);
        const sc = kc[l].map((kt) => { let s = 0; for (let i = 0; i < hd; i++) s += q[h * hd + i] * kt[kh * hd + i]; return s / Math.sqrt(hd); });
        const mx = Math.max(...sc);
        const e = sc.map((s) => Math.exp(s - mx));
        const z = e.reduce((a, v2) => a + v2, 0);
        e.forEach((ej, j) => { for (let i = 0; i < hd; i++) att[h * hd + i] += (ej / z) * vc[l][j][kh * hd + i]; });
      }
      const o = matvec(g(`${p}.wo`), att, d, b('bo'));
      x = x.map((v2, i) => v2 + o[i]);
      const hn = norm(x, `${p}.ffn_norm`);
      let hh: number[];
      if (c.act === 'swiglu') {
        const gate = matvec(g(`${p}.w_gate`), hn, c.hiddenDim);
        const up = matvec(g(`${p}.w_up`), hn, c.hiddenDim);
        hh = gate.map((gv, i) => (gv / (1 + Math.exp(-gv))) * up[i]);
      } else {
        hh = matvec(g(`${p}.w_up`), hn, c.hiddenDim, b('b_up')).map((u) => 0.5 * u * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (u + 0.044715 * u ** 3))));
      }
      const dn = matvec(g(`${p}.w_down`), hh, d, b('b_down'));
      x = x.map((v2, i) => v2 + dn[i]);
    }
    logits.push(matvec(g('lm_head'), norm(x, 'final_norm'), c.vocabSize));
  });
  return logits;
}

const refLogProb = (row: number[], target: number): number => {
  const mx = Math.max(...row);
  return row[target] - mx - Math.log(row.reduce((a, v) => a + Math.exp(v - mx), 0));
};

function randomIds(seed: number, n: number, V: number): number[] {
  const r = rng(seed);
  return Array.from({ length: n }, () => randInt(r, 0, V - 1));
}

describe('tiny models round-trip through the loaders', () => {
  it.each(TINY_KINDS)('%s', async (kind) => {
    const tiny = buildTinyModel(kind, join(dir, `rt-${kind}`));
    const m = await loadWeights(tiny.path);
    expect({ ...m.config, name: '' }).toEqual({ ...tiny.config, name: '', padId: m.config.padId });
    expect(m.format).toBe(kind.startsWith('llama2c') ? 'llama2c' : 'hf');
    expect([...m.tensors.keys()].sort()).toEqual([...tiny.tensors.keys()].sort());
    for (const [name, want] of tiny.tensors) {
      const got = m.tensors.get(name)!;
      expect(sameBits(got, want), `${kind}: ${name}`).toBe(true);
    }
    expect(m.tensors.get('lm_head') === m.tensors.get('tok_emb')).toBe(m.config.tiedEmbeddings);
  });

  it('llama2.c from bytes (browser path) equals the file loader, and serializes back', () => {
    const tiny = buildTinyModel('llama2c-unshared', join(dir, 'bytes-l2c'));
    const bytes = readFileSync(tiny.path);
    const a = loadLlama2c(tiny.path), b = parseLlama2c(new Uint8Array(bytes), 'mem');
    expect(b.config).toEqual({ ...a.config, name: 'mem (llama2.c)' });
    for (const [n, t] of a.tensors) expect(sameBits(b.tensors.get(n)!, t), n).toBe(true);
    expect(Buffer.from(serializeLlama2c(a)).equals(bytes)).toBe(true);
    expect(() => parseLlama2c(bytes.subarray(0, bytes.length - 8), 'mem')).toThrow(/mem: truncated llama2\.c checkpoint/);
  });

  it('special ids come from config.json, generation_config.json and the tokenizer', async () => {
    const q = await loadWeights(makeTinyModel('hf-qwen2', join(dir, 'ids-qwen2')));
    const eot = q.tokenizer.encode('<|endoftext|>', { addSpecial: false });
    expect(eot).toHaveLength(1);
    expect([q.config.bosId, q.config.eosId, q.config.padId]).toEqual([eot[0], eot[0], eot[0]]); // pad from tokenizer_config.json
    expect(q.config.vocabSize).toBeGreaterThan(q.tokenizer.vocabSize); // padded embedding, as Qwen2
    const g = await loadWeights(makeTinyModel('hf-gpt2', join(dir, 'ids-gpt2')));
    expect([g.config.bosId, g.config.eosId, g.config.padId]).toEqual([g.tokenizer.vocabSize - 1, g.tokenizer.vocabSize - 1, null]);
  });

  it('GPT-2 Conv1D weights are transposed and c_attn split into q | k | v', () => {
    const p = makeTinyModel('hf-gpt2', join(dir, 'conv1d'));
    const src = openSafetensorsFolder(p);
    const w = loadHf(p); // the sync loader underneath loadWeights
    const d = w.config.dim, ff = w.config.hiddenDim;
    const cAttn = src.get('h.1.attn.c_attn.weight'); // [d, 3d]
    const wk = tensor(w, 'layers.1.wk'); // [d, d], rows = outputs
    for (const [o, i] of [[0, 0], [3, 5], [d - 1, d - 2]]) expect(wk[o * d + i]).toBe(cAttn[i * 3 * d + d + o]);
    const fc = src.get('h.0.mlp.c_fc.weight'); // [d, ff]
    const up = tensor(w, 'layers.0.w_up'); // [ff, d]
    expect(up[7 * d + 2]).toBe(fc[2 * ff + 7]);
    expect(tensor(w, 'layers.1.bv')[1]).toBe(src.get('h.1.attn.c_attn.bias')[2 * d + 1]);
  });
});

describe('safetensors dtypes', () => {
  it('F16 and BF16 decode exactly, specials included', () => {
    const f16Bits = [0x0000, 0x8000, 0x0001, 0x03ff, 0x0400, 0x3c00, 0xc000, 0x7bff, 0x7c00, 0xfc00, 0x3555];
    const bf16Bits = [0x0000, 0x8000, 0x0001, 0x3f80, 0xc040, 0x7f7f, 0x7f80, 0xff80, 0x4049, 0x3eaa];
    const f16 = Float32Array.from(f16Bits, f16BitsToF32);
    const bf16 = Float32Array.from(bf16Bits, (b) => new Float32Array(new Uint32Array([b << 16]).buffer)[0]);
    const p = join(dir, 'dtypes.safetensors');
    writeSafetensors(p, [
      { name: 'h', data: f16, shape: [f16.length], dtype: 'F16' },
      { name: 'b', data: bf16, shape: [bf16.length], dtype: 'BF16' },
      { name: 'f', data: Float32Array.of(1.5, -2.25e-30, 3e38), shape: [1, 3], dtype: 'F32' },
    ]);
    const raw = readFileSync(p);
    expect(Number(raw.readBigUInt64LE(0)) % 8).toBe(0);
    const s = openSafetensors(p);
    expect(sameBits(s.get('h'), f16)).toBe(true);
    expect(sameBits(s.get('b'), bf16)).toBe(true);
    expect(s.get('f')).toEqual(Float32Array.of(1.5, -2.25e-30, 3e38));
    expect(s.info('f').shape).toEqual([1, 3]);
    expect(f16[2]).toBe(2 ** -24);
    expect(bf16[2]).toBe(2 ** -133);
  });
});

/** Write a safetensors file with a hand-made header. */
function rawSafetensors(path: string, header: unknown, dataBytes: number): void {
  const h = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  writeFileSync(path, Buffer.concat([len, h, Buffer.alloc(dataBytes)]));
}

describe('loader errors name the file and the reason', () => {
  it('llama2.c checkpoints', () => {
    const src = makeTinyModel('llama2c', join(dir, 'err-l2c'));
    const cut = join(dir, 'err-l2c', 'cut.bin');
    copyFileSync(src, cut);
    truncateSync(cut, statSync(src).size - 4);
    expect(() => loadLlama2c(cut)).toThrow(/cut\.bin: truncated llama2\.c checkpoint: .* needs exactly \d+ bytes, the file has \d+/);
    const long = join(dir, 'err-l2c', 'long.bin');
    writeFileSync(long, Buffer.concat([readFileSync(src), Buffer.alloc(8)]));
    expect(() => loadLlama2c(long)).toThrow(/long\.bin: too long llama2\.c checkpoint/);
    const junk = join(dir, 'err-l2c', 'junk.bin');
    writeFileSync(junk, Buffer.from(new Int32Array([64, 0, 2, 4, 4, 100, 16]).buffer));
    expect(() => loadLlama2c(junk)).toThrow(/junk\.bin: not a llama2\.c checkpoint: header \[64, 0, 2, 4, 4, 100, 16\] has a non-positive size/);
    const tiny = join(dir, 'err-l2c', 'tiny.bin');
    writeFileSync(tiny, Buffer.alloc(10));
    expect(() => loadLlama2c(tiny)).toThrow(/tiny\.bin: truncated llama2\.c checkpoint: 10 bytes/);
    expect(() => loadLlama2c(join(dir, 'none.bin'))).toThrow(/none\.bin: cannot open llama2\.c checkpoint/);
    const v1 = join(dir, 'err-l2c', 'v1.bin');
    writeFileSync(v1, Buffer.from(new Uint32Array([0x616b3432, 1, 0, 0, 0, 0, 0, 0]).buffer));
    expect(() => loadLlama2c(v1)).toThrow(/v1\.bin: llama2\.c "ak42" \(version 1\) export/);
  });

  it('safetensors files', () => {
    const p = join(dir, 'bad.safetensors');
    rawSafetensors(p, { a: { dtype: 'I8', shape: [4], data_offsets: [0, 4] } }, 4);
    expect(() => openSafetensors(p).get('a')).toThrow(/bad\.safetensors: tensor 'a' has dtype I8; supported: F32, F16, BF16/);
    rawSafetensors(p, { a: { dtype: 'F32', shape: [2, 3], data_offsets: [0, 20] } }, 20);
    expect(() => openSafetensors(p)).toThrow(/bad\.safetensors: tensor 'a': shape \[2, 3\] of F32 needs 24 bytes but data_offsets \[0, 20\] hold 20/);
    rawSafetensors(p, { a: { dtype: 'F16', shape: [8], data_offsets: [0, 16] } }, 10);
    expect(() => openSafetensors(p)).toThrow(/bad\.safetensors: tensor 'a': data_offsets \[0, 16\] run past the end of the data \(10 bytes\)/);
    writeFileSync(p, Buffer.from([255, 255, 0, 0, 0, 0, 0, 0, 123]));
    expect(() => openSafetensors(p)).toThrow(/bad\.safetensors: not a safetensors file \(or truncated\)/);
    expect(() => openSafetensors(join(dir, 'missing.safetensors'))).toThrow(/missing\.safetensors: safetensors file not found/);
    expect(() => openSafetensors(p).get('zzz')).toThrow();
  });

  it('HF folders', async () => {
    const q = makeTinyModel('hf-qwen2', join(dir, 'err-qwen2'));
    rmSync(join(q, 'model-00002-of-00002.safetensors'));
    expect(() => loadHf(q)).toThrow(/model\.safetensors\.index\.json: shard 'model-00002-of-00002\.safetensors' \(holding '.*'\) not found/);

    const l = makeTinyModel('hf-llama', join(dir, 'err-llama'));
    const cfgPath = join(l, 'config.json');
    const cfg = JSON.parse(readFileSync(cfgPath, 'utf8'));
    writeFileSync(cfgPath, JSON.stringify({ ...cfg, architectures: ['FalconForCausalLM'] }));
    expect(() => loadHf(l)).toThrow(new RegExp(`config\\.json: unsupported architecture FalconForCausalLM; supported: ${SUPPORTED_ARCHITECTURES.join(', ')}`));
    // llama3 rope scaling is supported (tests/hf-families.test.ts); an incomplete block names the field,
    // and other rope types stay unsupported.
    writeFileSync(cfgPath, JSON.stringify({ ...cfg, rope_scaling: { rope_type: 'llama3', factor: 8 } }));
    expect(() => loadHf(l)).toThrow(/config\.json: rope_scaling llama3 needs a numeric "low_freq_factor"/);
    writeFileSync(cfgPath, JSON.stringify({ ...cfg, rope_scaling: { rope_type: 'yarn', factor: 4 } }));
    expect(() => loadHf(l)).toThrow(/config\.json: LlamaForCausalLM with rope_scaling .*yarn.* is not supported \(supported rope types: default, linear, llama3, longrope\)/);
    writeFileSync(cfgPath, JSON.stringify({ ...cfg, intermediate_size: cfg.intermediate_size + 1 }));
    expect(() => loadHf(l)).toThrow(/model\.safetensors: tensor 'model\.layers\.0\.mlp\.gate_proj\.weight' has shape \[176, 64\], expected \[177, 64\]/);
    writeFileSync(cfgPath, JSON.stringify({ ...cfg, tie_word_embeddings: false, num_hidden_layers: 3 }));
    expect(() => loadHf(l)).toThrow(/model\.safetensors: missing tensor 'model\.layers\.2\.input_layernorm\.weight'/);
    rmSync(join(l, 'model.safetensors'));
    expect(() => loadHf(l)).toThrow(/err-llama: no model\.safetensors or model\.safetensors\.index\.json/);
    rmSync(cfgPath);
    await expect(loadWeights(l)).rejects.toThrow(/err-llama: folder has neither config\.json \(Hugging Face\) nor model\.bin \(llama2\.c\)/);
    expect(() => readHfConfig(l)).toThrow(/no config\.json/);
    await expect(loadWeights(join(dir, 'nothing-here'))).rejects.toThrow(/no such file or folder/);
  });

  it('named models resolve under CONCORD_MODELS_DIR', () => {
    expect(resolveModel('default')).toEqual({ format: 'llama2c', path: join(defaultModelDir(), 'model.bin') });
    const old = process.env.CONCORD_MODELS_DIR;
    process.env.CONCORD_MODELS_DIR = join(dir, 'no-models');
    try {
      expect(modelsDir()).toBe(join(dir, 'no-models'));
      expect(() => resolveModel('stories15M')).toThrow(/no-models\/stories15M\/model\.bin not found \(run `npm run fetch-models`/);
    } finally {
      if (old === undefined) delete process.env.CONCORD_MODELS_DIR;
      else process.env.CONCORD_MODELS_DIR = old;
    }
  });
});

describe('CPU forward', () => {
  it.each(TINY_KINDS)('%s matches the independent per-token reference', async (kind: TinyKind) => {
    const m = await loadWeights(makeTinyModel(kind, join(dir, `fw-${kind}`)));
    const ids = randomIds(11, 21, m.config.vocabSize);
    const ref = referenceLogits(m, ids);
    const hidden = forwardHiddenCpu(m, ids);
    expect(hidden.length).toBe(ids.length * m.config.dim);
    const logits = logitsCpu(m, hidden);
    const V = m.config.vocabSize;
    let maxErr = 0;
    ref.forEach((row, t) => row.forEach((v, j) => { maxErr = Math.max(maxErr, Math.abs(v - logits[t * V + j])); }));
    expect(maxErr).toBeLessThan(2e-4);
    const lp = logProbsCpu(m, ids);
    expect(Number.isNaN(lp[0])).toBe(true);
    for (let t = 1; t < ids.length; t++) expect(lp[t]).toBeCloseTo(refLogProb(ref[t - 1], ids[t]), 4);
  });

  it('the same weights as llama2.c .bin (interleaved RoPE) and HF folder (rotate_half) agree', async () => {
    const a = await loadWeights(makeTinyModel('llama2c-unshared', join(dir, 'pair-l2c')));
    const b = await loadWeights(makeTinyModel('hf-llama', join(dir, 'pair-hf')));
    expect(a.config.ropeLayout).toBe('interleaved');
    expect(b.config.ropeLayout).toBe('half');
    const text = 'Once upon a time, Lily saw a big cat. "Hello!" said the cat.';
    const ids = a.tokenizer.encode(text);
    expect(b.tokenizer.encode(text)).toEqual(ids);
    const la = logProbsCpu(a, ids), lb = logProbsCpu(b, ids);
    for (let t = 1; t < ids.length; t++) expect(Math.abs(la[t] - lb[t])).toBeLessThan(1e-5);
  });

  it('GQA equals full attention with the KV heads repeated', async () => {
    const m = await loadWeights(makeTinyModel('hf-mistral', join(dir, 'gqa')));
    const { nHeads, nKvHeads, headDim: hd, dim: d } = m.config;
    expect(nKvHeads).toBeLessThan(nHeads);
    const tensors = new Map(m.tensors);
    const rep = (w: Float32Array) => {
      const out = new Float32Array(nHeads * hd * d);
      for (let h = 0; h < nHeads; h++) out.set(w.subarray(Math.floor(h / (nHeads / nKvHeads)) * hd * d, (Math.floor(h / (nHeads / nKvHeads)) + 1) * hd * d), h * hd * d);
      return out;
    };
    for (let l = 0; l < m.config.nLayers; l++) for (const n of ['wk', 'wv']) tensors.set(`layers.${l}.${n}`, rep(tensor(m, `layers.${l}.${n}`)));
    const full: LoadedWeights = { config: { ...m.config, nKvHeads: nHeads }, tensors };
    const ids = randomIds(5, 17, m.config.vocabSize);
    const a = logProbsCpu(m, ids), b = logProbsCpu(full, ids);
    for (let t = 1; t < ids.length; t++) expect(a[t]).toBeCloseTo(b[t], 6);
  });

  it('masks and batches: scored positions equal the full pass, sequences are independent', async () => {
    const m = await loadWeights(makeTinyModel('hf-qwen2', join(dir, 'mask')));
    const s1 = randomIds(1, 15, m.config.vocabSize), s2 = randomIds(2, 6, m.config.vocabSize);
    const full = logProbsCpu(m, s1);
    const mask = s1.map((_, t) => (t >= 9 && t !== 12 ? 1 : 0));
    const [masked, other] = logProbsBatchCpu(m, [s1, s2], [mask, undefined]);
    for (let t = 0; t < s1.length; t++) {
      if (mask[t]) expect(masked[t]).toBe(full[t]);
      else expect(Number.isNaN(masked[t])).toBe(true);
    }
    expect(Array.from(other)).toEqual(Array.from(logProbsCpu(m, s2)));
    expect(() => logProbsCpu(m, [0, m.config.vocabSize])).toThrow(/token id \d+ at position 1 is outside the vocabulary/);
    expect(() => logProbsCpu(m, new Array(m.config.maxSeqLen + 1).fill(0))).toThrow(/exceed the model's maxSeqLen/);
  });
});

describe('stories15M', () => {
  let m: Awaited<ReturnType<typeof loadWeights>>;
  beforeAll(async () => { m = await loadWeights('default'); });

  it('loads with the right config', () => {
    const h = readLlama2cHeader(join(defaultModelDir(), 'model.bin'));
    expect(h).toMatchObject({ dim: 288, hiddenDim: 768, nLayers: 6, nHeads: 6, nKvHeads: 6, vocabSize: 32000, sharedClassifier: true, seqLen: 256 });
    expect(m.config).toMatchObject({ arch: 'llama', dim: 288, hiddenDim: 768, nLayers: 6, nHeads: 6, nKvHeads: 6, headDim: 48, vocabSize: 32000, maxSeqLen: 256, ropeLayout: 'interleaved', ropeTheta: 10000, normEps: 1e-5, tiedEmbeddings: true, bosId: 1, eosId: 2 });
    expect(m.tensors.size).toBe(2 + 6 * 9 + 1);
    // First floats of the embedding straight from the file (after the 28-byte header).
    const raw = readFileSync(join(defaultModelDir(), 'model.bin'));
    expect(tensor(m, 'tok_emb')[5]).toBe(raw.readFloatLE(28 + 5 * 4));
    expect(tensor(m, 'tok_emb').length).toBe(32000 * 288);
    expect(m.tokenizer.bosId).toBe(1);
  });

  it('matches the independent reference on a short prefix', () => {
    const ids = m.tokenizer.encode('Once upon a time, there was');
    const ref = referenceLogits(m, ids);
    const lp = logProbsCpu(m, ids);
    for (let t = 1; t < ids.length; t++) expect(lp[t]).toBeCloseTo(refLogProb(ref[t - 1], ids[t]), 4);
  });

  // tests/fixtures/stories15m-reference.json: PyTorch float64 forward + Python port of run.c encode()
  // (scripts/reference_torch.py), sharing no code with the engine.
  const fixturePath = join(import.meta.dirname, 'fixtures', 'stories15m-reference.json');
  const fixture = existsSync(fixturePath)
    ? (JSON.parse(readFileSync(fixturePath, 'utf8')) as { sentences: { text: string; ids: number[]; logprobs: number[]; sum: number }[]; f32_vs_f64_max_abs_diff: number })
    : null;

  it.skipIf(!fixture)('tokenizes every PyTorch-fixture sentence as its run.c port does', () => {
    for (const s of fixture!.sentences) expect(m.tokenizer.encode(s.text), s.text).toEqual(s.ids);
  });

  it.skipIf(!fixture)('matches the PyTorch float64 log-probs (8 fixture sentences)', () => {
    let maxErr = 0, maxSumErr = 0;
    for (const s of fixture!.sentences.slice(0, 8)) {
      const lp = logProbsCpu(m, s.ids);
      let sum = 0;
      s.logprobs.forEach((want, t) => {
        maxErr = Math.max(maxErr, Math.abs(lp[t + 1] - want));
        sum += lp[t + 1];
      });
      maxSumErr = Math.max(maxSumErr, Math.abs(sum - s.sum));
    }
    console.log(`[stories15M] vs PyTorch f64: max |Δ logprob| ${maxErr.toExponential(2)}, max |Δ sum| ${maxSumErr.toExponential(2)} (torch f32 vs f64: ${fixture!.f32_vs_f64_max_abs_diff})`);
    expect(maxErr).toBeLessThan(1e-4);
    expect(maxSumErr).toBeLessThan(5e-4);
  });

  it('prefers a coherent TinyStories sentence to the same words shuffled', () => {
    const text = 'Once upon a time, there was a little girl named Lily. She loved to play outside in the park.';
    const words = text.split(' ');
    const r = rng(42);
    const shuffled = [...words];
    for (let i = shuffled.length - 1; i > 0; i--) {
      const j = Math.floor(r() * (i + 1));
      [shuffled[i], shuffled[j]] = [shuffled[j], shuffled[i]];
    }
    const mean = (s: string) => {
      const lp = logProbsCpu(m, m.tokenizer.encode(s));
      let sum = 0;
      for (let t = 1; t < lp.length; t++) sum += lp[t];
      return sum / (lp.length - 1);
    };
    const good = mean(text), bad = mean(shuffled.join(' '));
    console.log(`[stories15M] mean log-prob: coherent ${good.toFixed(3)}, shuffled ${bad.toFixed(3)}`);
    expect(good).toBeGreaterThan(-2.5);
    expect(good - bad).toBeGreaterThan(2);
  });

  // Speed lives in bench/ (README "Benchmarks"), not in a timed test: this only reports it.
  it('a 100-token prefill scores every position (time reported, not asserted)', () => {
    const ids = randomIds(9, 99, 32000);
    ids.unshift(1);
    const t0 = performance.now();
    const lp = logProbsCpu(m, ids);
    const ms = performance.now() - t0;
    console.log(`[stories15M] CPU prefill + log-probs of 100 tokens: ${ms.toFixed(0)} ms (${((100 / ms) * 1000).toFixed(0)} tokens/s)`);
    expect(Number.isNaN(lp[0])).toBe(true);
    for (let t = 1; t < ids.length; t++) expect(lp[t]).toBeLessThan(0);
  });
});
