// Checkpoints larger than is comfortable in memory: a synthetic 4-shard bf16 Llama checkpoint of
// 1.08 GB (small vocab, wide layers) is loaded onto the GPU (lavapipe here) in a CHILD process
// (tests/helpers/stream-load-child.ts, bundled with esbuild), whose peak memory is measured, and a
// few uploaded values are read back and compared with the file. The old path (every tensor read as
// f32 into the JS heap, then uploaded) runs on the same checkpoint and must exceed the bound, so the
// bound check can fail. Then the loader's errors: a missing shard, a truncated shard, an unreadable
// dtype, a shape that does not match config.json — each naming the shard file and the tensor.
//
// What is measured, and why: the child resets its peak RSS (/proc/self/clear_refs ← 5) right before
// loading and reads VmHWM after. On lavapipe GPU buffers ARE process memory (a 1 GiB buffer adds
// 1 GiB of RSS), so the host-side overhead of loading is VmHWM − baseline RSS − the GPU's weight
// bytes (GpuTransformer.weightBytes). The bound (README "Models", weight-upload.ts):
//     peak RSS − baseline − GPU weight bytes ≤ largest tensor in its storage type + 96 MiB
// (the streamer holds two chunk buffers of ≤ 8 MiB and ≤ 64 MiB written between waits for the
// queue; nothing proportional to the model). The JS side (process.memoryUsage() arrayBuffers +
// external, sampled at every progress step) must also stay under largest tensor + 32 MiB.

import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, rmSync, statSync, symlinkSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildSync } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModelFileError } from '../src/errors.js';
import { GpuTransformer } from '../src/models/forward-gpu.js';
import { loadHf } from '../src/models/hf.js';
import type { LoadProgress } from '../src/models/weight-upload.js';
import { formatLoadProgress, loadProgressPrinter } from '../src/cli/common.js';
import { bf16BitsIntoF32, bf16BitsToF16Bits, f16BitsIntoF32, f16BitsToF32, f32ToF16Bits, toF16 } from '../src/util/f16.js';
import { gpuRuntime, rng } from './helpers/gpu.js';
import { makeTinyModel } from './helpers/tiny-models.js';
import { GGML_TYPE, TYPE_LAYOUT, type GgmlType } from '../src/quant/types.js';
import { QUANTIZERS } from '../src/quant/quantize.js';
import { dequantize } from '../src/quant/dequant.js';
import { ggufHeader, kv, writeGguf } from '../src/formats/gguf-write.js';
import { ggufExport } from '../src/formats/gguf-export.js';
import { readGguf } from '../src/formats/gguf.js';
import { loadGgufWeights } from '../src/formats/gguf-model.js';
import { loadWeights } from '../src/models/load.js';

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));
const MiB = 1 << 20;

interface Dims { V: number; d: number; ff: number; heads: number; layers: number; shards: number }
interface Written { dir: string; bytes: number; largest: number; names: string[]; rot: Map<string, number> }

// A fixed block of random-ish bf16 values; tensor j holds the block rotated by rot(j), repeated,
// so element i of a tensor is BLOCK[(i + rot) % BLOCK.length] and is checkable without the file.
const BLOCK = (() => {
  const r = rng(11);
  const b = new Uint16Array(1 << 20);
  const f = new Float32Array(1), u = new Uint32Array(f.buffer);
  for (let i = 0; i < b.length; i++) {
    f[0] = (r() - 0.5) * 0.2 * (1 + (i % 7)); // spread of magnitudes, all within f16's range
    b[i] = u[0] >>> 16;
  }
  return b;
})();
const valueBits = (rot: number, i: number) => BLOCK[(i + rot) % BLOCK.length];

/** A Llama-family HF folder of bf16 tensors in `dims.shards` shards, written with the fixed pattern. */
function writeCheckpoint(dir: string, dims: Dims, tweak: (name: string, e: { dtype: string; shape: number[] }) => void = () => {}): Written {
  mkdirSync(dir, { recursive: true });
  const { V, d, ff, heads, layers, shards } = dims;
  writeFileSync(join(dir, 'config.json'), JSON.stringify({
    architectures: ['LlamaForCausalLM'], vocab_size: V, hidden_size: d, intermediate_size: ff, num_hidden_layers: layers,
    num_attention_heads: heads, num_key_value_heads: heads, max_position_embeddings: 64, rms_norm_eps: 1e-5, rope_theta: 10000,
    tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2,
  }));
  const layer = (i: number): [string, number[]][] => {
    const p = `model.layers.${i}.`;
    return [[`${p}input_layernorm.weight`, [d]], [`${p}self_attn.q_proj.weight`, [d, d]], [`${p}self_attn.k_proj.weight`, [d, d]],
      [`${p}self_attn.v_proj.weight`, [d, d]], [`${p}self_attn.o_proj.weight`, [d, d]], [`${p}post_attention_layernorm.weight`, [d]],
      [`${p}mlp.gate_proj.weight`, [ff, d]], [`${p}mlp.up_proj.weight`, [ff, d]], [`${p}mlp.down_proj.weight`, [d, ff]]];
  };
  const perShard = Math.ceil(layers / shards);
  const groups: [string, number[]][][] = Array.from({ length: shards }, (_, s) => {
    const g: [string, number[]][] = [];
    if (s === 0) g.push(['model.embed_tokens.weight', [V, d]]);
    for (let i = s * perShard; i < Math.min(layers, (s + 1) * perShard); i++) g.push(...layer(i));
    if (s === shards - 1) g.push(['model.norm.weight', [d]], ['lm_head.weight', [V, d]]);
    return g;
  });
  const weightMap: Record<string, string> = {};
  const rot = new Map<string, number>();
  let bytes = 0, largest = 0, j = 0;
  const rotated = new Uint16Array(BLOCK.length);
  groups.forEach((g, s) => {
    const file = `model-${String(s + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
    const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
    let off = 0;
    const entries = g.map(([name, shape]) => {
      const n = shape.reduce((a, b) => a * b, 1);
      const e = { dtype: 'BF16', shape: [...shape] };
      tweak(name, e);
      const el = e.dtype === 'F8_E4M3' ? 1 : 2; // fp8 checkpoints: one byte an element
      header[name] = { ...e, data_offsets: [off, off + el * n] };
      off += el * n;
      largest = Math.max(largest, el * n);
      weightMap[name] = file;
      return { name, n: (el * n) / 2 };
    });
    let json = JSON.stringify(header);
    while ((8 + json.length) % 8) json += ' ';
    const fd = openSync(join(dir, file), 'w');
    try {
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(json.length));
      writeSync(fd, len);
      writeSync(fd, json);
      for (const { name, n } of entries) {
        const r = (j++ * 104729) % BLOCK.length;
        rot.set(name, r);
        rotated.set(BLOCK.subarray(r), 0);
        rotated.set(BLOCK.subarray(0, r), BLOCK.length - r);
        const bytesOf = new Uint8Array(rotated.buffer);
        for (let done = 0; done < n; done += BLOCK.length) writeSync(fd, bytesOf, 0, 2 * Math.min(BLOCK.length, n - done)); // n: 16-bit words
      }
    } finally {
      closeSync(fd);
    }
    bytes += off;
  });
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: bytes }, weight_map: weightMap }));
  return { dir, bytes, largest, names: Object.keys(weightMap), rot };
}

const bf16ToF32Bits = (b: number) => (b << 16) >>> 0;
const bf16ToF16 = (b: number) => { const f = new Float32Array(new Uint32Array([b << 16]).buffer); return f32ToF16Bits(f[0]); };

const tmp = mkdtempSync(join(tmpdir(), 'concord-stream-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('streaming a multi-shard checkpoint to the GPU', async () => {
  const rt = await gpuRuntime();
  // 8 layers of d = 2048, ff = 8192 in 4 shards: 1.08 GB of bf16; largest tensor 32 MiB (64 MiB as
  // f32: under lavapipe's 128 MiB storage-binding limit).
  const dims: Dims = { V: 256, d: 2048, ff: 8192, heads: 16, layers: 8, shards: 4 };
  let ck: Written;
  let child: string;
  // canonical name ← file name, and elements to read back (first, inner, last)
  const checks: [string, string, number][] = [
    ['tok_emb', 'model.embed_tokens.weight', 0], ['layers.0.wq', 'model.layers.0.self_attn.q_proj.weight', 12345],
    ['layers.2.w_up', 'model.layers.2.mlp.up_proj.weight', 7_777_777], ['layers.5.attn_norm.weight', 'model.layers.5.input_layernorm.weight', 2047],
    ['layers.7.w_down', 'model.layers.7.mlp.down_proj.weight', dims.d * dims.ff - 1], ['final_norm.weight', 'model.norm.weight', 3],
    ['lm_head', 'lm_head.weight', dims.V * dims.d - 1],
  ];
  beforeAll(() => {
    const t0 = Date.now();
    ck = writeCheckpoint(join(tmp, 'big'), dims);
    console.log(`[stream-load] wrote ${(ck.bytes / 1e9).toFixed(3)} GB in ${dims.shards} shards in ${Date.now() - t0} ms; largest tensor ${ck.largest / MiB} MiB`);
    // The child is bundled (the package's node_modules resolved through a link) and run with node.
    symlinkSync(join(ROOT, 'node_modules'), join(tmp, 'node_modules'));
    child = join(tmp, 'child.mjs');
    buildSync({ entryPoints: [join(ROOT, 'tests/helpers/stream-load-child.ts')], bundle: true, platform: 'node', format: 'esm', packages: 'external', outfile: child, logLevel: 'warning' });
  }, 120_000);

  interface ChildReport {
    mode: string; f16: boolean; baseRss: number; peakRss: number; gpuBytes: number; loadMs: number;
    jsBuffersBase: number; jsBuffersPeak: number; progress: { calls: number; shards: number[]; last: LoadProgress | null }; values: Record<string, number>;
  }
  const run = (mode: 'stream' | 'eager', f16: boolean): ChildReport => {
    const r = spawnSync(process.execPath, ['--expose-gc', child, ck.dir, mode, f16 ? '1' : '0', JSON.stringify(checks.map(([n, , i]) => [n, i]))],
      { encoding: 'utf8', env: { ...process.env, CONCORD_SHADER_DIR: join(ROOT, 'shaders') }, maxBuffer: 1 << 24 });
    if (r.status !== 0) throw new Error(`child ${mode} f16=${f16} exited ${r.status}:\n${r.stderr}`);
    const rep = JSON.parse(r.stdout.trim().split('\n').pop()!) as ChildReport;
    const over = rep.peakRss - rep.baseRss - rep.gpuBytes;
    console.log(`[stream-load] ${mode} ${f16 ? 'f16' : 'f32'}: load ${rep.loadMs} ms; peak RSS ${(rep.peakRss / MiB).toFixed(0)} MiB = baseline ${(rep.baseRss / MiB).toFixed(0)} + GPU weights ${(rep.gpuBytes / MiB).toFixed(0)} + ${(over / MiB).toFixed(1)} MiB; JS arrayBuffers+external peak +${((rep.jsBuffersPeak - rep.jsBuffersBase) / MiB).toFixed(1)} MiB`);
    return rep;
  };
  const bound = () => ck.largest + 96 * MiB;
  const checkValues = (rep: ChildReport, f16: boolean) => {
    for (const [name, file, i] of checks) {
      const bits = valueBits(ck.rot.get(file)!, i);
      // norms and embeddings stay f32 on the GPU; linear weights and lm_head are f16 when f16
      const asF16 = f16 && !/norm|tok_emb/.test(name);
      expect(rep.values[`${name}@${i}`], `${name}[${i}]`).toBe(asF16 ? bf16ToF16(bits) : bf16ToF32Bits(bits));
    }
  };

  for (const f16 of [true, false]) {
    it.skipIf(!rt || (f16 && !rt.hasF16))(`streams ${f16 ? 'bf16 → f16' : 'bf16 → f32'}: peak host memory within the bound, values read back match the file, progress per shard`, () => {
      const rep = run('stream', f16);
      expect(rep.f16).toBe(f16);
      expect(rep.gpuBytes).toBeGreaterThan((f16 ? 1 : 2) * ck.bytes * 0.99);
      expect(rep.peakRss - rep.baseRss - rep.gpuBytes).toBeLessThanOrEqual(bound());
      expect(rep.jsBuffersPeak - rep.jsBuffersBase).toBeLessThanOrEqual(ck.largest + 32 * MiB);
      checkValues(rep, f16);
      expect(rep.progress.shards).toEqual([1, 2, 3, 4]);
      expect(rep.progress.last!.bytesDone).toBe(ck.bytes);
      expect(rep.progress.last!.bytesTotal).toBe(ck.bytes);
      expect(rep.progress.calls).toBeGreaterThan(ck.bytes / (16 * MiB));
    }, 120_000);
  }

  it.skipIf(!rt || !rt.hasF16)('the old path (all tensors as f32 in the JS heap, then uploaded) exceeds that bound on the same checkpoint', () => {
    const rep = run('eager', true);
    checkValues(rep, true);
    expect(rep.peakRss - rep.baseRss - rep.gpuBytes).toBeGreaterThan(bound());
    expect(rep.jsBuffersPeak - rep.jsBuffersBase).toBeGreaterThan(ck.bytes); // ≈ 2× the bf16 bytes
  }, 120_000);

  afterAll(() => { if (ck) rmSync(ck.dir, { recursive: true, force: true }); });
});

describe('streaming a ~1 GB GGUF file to the GPU (blocks kept, or dequantized chunk by chunk)', async () => {
  const rt = await gpuRuntime();
  // A llama GGUF of 14 layers of d = 2048, ff = 8192 (0.97 GB): every linear Q8_0, kept as blocks on
  // the GPU (WeightUploader.quantBuffer: copied through the staging buffer), layer 1's gate/up/down
  // in Q4_K, kept as blocks too, except layer 0's gate/up/down in Q5_0 and the embedding in Q6_K,
  // dequantized at upload a chunk of whole blocks at a time (GgufTensorRef.chunks; the GPU has no
  // Q5_0 kernel, and the embedding is always dequantized — its tied head is kept as blocks). Each
  // tensor's bytes are a pool of valid blocks (the project's quantizers on random values), rotated
  // by whole blocks and repeated, so any element is checkable from the pool alone.
  const G = { V: 256, d: 2048, ff: 8192, heads: 16, layers: 14 };
  const { Q8_0, Q4_K, Q5_0, Q6_K, F32 } = GGML_TYPE;
  const KEPT: readonly number[] = [Q8_0, Q4_K];
  type T = { name: string; ne: number[]; type: GgmlType; rot: number };
  let file: string, tensors: T[], bytes: number, child: string;
  const pools = new Map<number, { bytes: Uint8Array; f32: Float32Array; blocks: number }>();
  const pool = (type: GgmlType) => {
    let p = pools.get(type);
    if (!p) {
      const r = rng(type + 5), x = new Float32Array(1 << 16);
      for (let i = 0; i < x.length; i++) x[i] = (r() - 0.5) * 0.2 * (1 + (i % 7));
      const b = QUANTIZERS[type]!(x);
      p = { bytes: b, f32: dequantize(type, b, x.length), blocks: b.length / TYPE_LAYOUT[type].blockBytes };
      pools.set(type, p);
    }
    return p;
  };
  /** Byte k of tensor t's blocks, and its element i dequantized. */
  const byteOf = (t: T, k: number) => { const p = pool(t.type); return p.bytes[(k + t.rot * TYPE_LAYOUT[t.type].blockBytes) % p.bytes.length]; };
  const elemOf = (t: T, i: number) => { const p = pool(t.type), be = TYPE_LAYOUT[t.type].blockElems; return p.f32[(i + t.rot * be) % p.f32.length]; };
  const f32Bits = (v: number) => new Uint32Array(new Float32Array([v]).buffer)[0];

  beforeAll(() => {
    const t0 = Date.now();
    const { V, d, ff, heads, layers } = G;
    tensors = [];
    const add = (name: string, ne: number[], type: GgmlType) => tensors.push({ name, ne, type, rot: type === F32 ? 0 : (tensors.length * 7919) % pool(type).blocks });
    add('token_embd.weight', [d, V], Q6_K);
    for (let l = 0; l < layers; l++) {
      const ffn = l === 0 ? Q5_0 : l === 1 ? Q4_K : Q8_0;
      add(`blk.${l}.attn_norm.weight`, [d], F32);
      for (const m of ['attn_q', 'attn_k', 'attn_v', 'attn_output']) add(`blk.${l}.${m}.weight`, [d, d], Q8_0);
      add(`blk.${l}.ffn_norm.weight`, [d], F32);
      add(`blk.${l}.ffn_gate.weight`, [d, ff], ffn);
      add(`blk.${l}.ffn_up.weight`, [d, ff], ffn);
      add(`blk.${l}.ffn_down.weight`, [ff, d], ffn);
    }
    add('output_norm.weight', [d], F32);
    const kvs = [kv.str('general.architecture', 'llama'), kv.u32('llama.block_count', layers), kv.u32('llama.embedding_length', d),
      kv.u32('llama.feed_forward_length', ff), kv.u32('llama.attention.head_count', heads), kv.u32('llama.attention.head_count_kv', heads),
      kv.u32('llama.context_length', 64), kv.f32('llama.attention.layer_norm_rms_epsilon', 1e-5)];
    const h = ggufHeader(kvs, tensors);
    file = join(tmp, 'big.gguf');
    const fd = openSync(file, 'w');
    try {
      writeSync(fd, h.header, 0, h.header.length, 0);
      tensors.forEach((t, j) => {
        const n = h.sizes[j];
        let data: Uint8Array;
        if (t.type === F32) data = new Uint8Array(new Float32Array(n / 4).fill(1 + j / 100).buffer);
        else {
          const p = pool(t.type), rot = t.rot * TYPE_LAYOUT[t.type].blockBytes;
          data = new Uint8Array(p.bytes.length);
          data.set(p.bytes.subarray(rot), 0);
          data.set(p.bytes.subarray(0, rot), p.bytes.length - rot);
        }
        for (let done = 0; done < n; done += data.length) writeSync(fd, data, 0, Math.min(data.length, n - done), h.header.length + h.offsets[j] + done);
      });
    } finally {
      closeSync(fd);
    }
    bytes = statSync(file).size;
    console.log(`[stream-load] wrote a GGUF of ${(bytes / 1e9).toFixed(3)} GB (${tensors.length} tensors) in ${Date.now() - t0} ms`);
    if (!existsSync(join(tmp, 'node_modules'))) symlinkSync(join(ROOT, 'node_modules'), join(tmp, 'node_modules'));
    child = join(tmp, 'child-gguf.mjs');
    buildSync({ entryPoints: [join(ROOT, 'tests/helpers/stream-load-child.ts')], bundle: true, platform: 'node', format: 'esm', packages: 'external', outfile: child, logLevel: 'warning' });
  }, 300_000);
  afterAll(() => { if (file) rmSync(file, { force: true }); });

  // [canonical name, file tensor, index]: an element for dequantized tensors, a byte for blocks kept
  const checks: [string, string, number][] = [
    ['tok_emb', 'token_embd.weight', 0], ['tok_emb', 'token_embd.weight', G.V * G.d - 1],
    ['layers.0.w_gate', 'blk.0.ffn_gate.weight', 1_234_567], ['layers.0.w_up', 'blk.0.ffn_up.weight', G.d * G.ff - 1],
    ['layers.0.w_down', 'blk.0.ffn_down.weight', 9_999_999], ['layers.0.wq', 'blk.0.attn_q.weight', 4_000_000],
    ['layers.1.w_gate', 'blk.1.ffn_gate.weight', 77_777], ['layers.1.w_down', 'blk.1.ffn_down.weight', 9_437_183],
    ['layers.5.w_gate', 'blk.5.ffn_gate.weight', 8], ['layers.5.w_up', 'blk.5.ffn_up.weight', 17_825_788],
    ['layers.13.w_down', 'blk.13.ffn_down.weight', 12_345_676], ['layers.13.ffn_norm.weight', 'blk.13.ffn_norm.weight', 2047],
  ];
  const run = (f16: boolean, chunkElems?: number) => {
    const r = spawnSync(process.execPath, ['--expose-gc', child, file, 'stream', f16 ? '1' : '0', JSON.stringify(checks.map(([n, , i]) => [n, i])), ...(chunkElems ? [String(chunkElems)] : [])],
      { encoding: 'utf8', env: { ...process.env, CONCORD_SHADER_DIR: join(ROOT, 'shaders') }, maxBuffer: 1 << 24 });
    if (r.status !== 0) throw new Error(`child gguf f16=${f16} exited ${r.status}:\n${r.stderr}`);
    const rep = JSON.parse(r.stdout.trim().split('\n').pop()!) as { baseRss: number; peakRss: number; gpuBytes: number; loadMs: number; jsBuffersBase: number; jsBuffersPeak: number; progress: { calls: number; last: LoadProgress | null }; values: Record<string, number> };
    const over = rep.peakRss - rep.baseRss - rep.gpuBytes;
    console.log(`[stream-load] gguf ${f16 ? 'f16' : 'f32'}${chunkElems ? ` chunkElems ${chunkElems}` : ''}: load ${rep.loadMs} ms; peak RSS ${(rep.peakRss / MiB).toFixed(0)} MiB = baseline ${(rep.baseRss / MiB).toFixed(0)} + GPU weights ${(rep.gpuBytes / MiB).toFixed(0)} + ${(over / MiB).toFixed(1)} MiB; JS arrayBuffers+external peak +${((rep.jsBuffersPeak - rep.jsBuffersBase) / MiB).toFixed(1)} MiB`);
    return { ...rep, over };
  };
  // docs/gguf.md "Streaming to the GPU": no term for the largest tensor, as nothing is read whole
  // (chunk buffers ≤ 14 MiB, the 8 MiB staging buffer, what the queue holds of the 64 MiB window;
  // measured +28 MiB f32, +34 MiB f16)
  const BOUND = 64 * MiB;

  for (const f16 of [false, true]) {
    it.skipIf(!rt || (f16 && !rt.hasF16))(`${f16 ? 'f16' : 'f32'}: peak host memory above the GPU's weights within ${BOUND / MiB} MiB; blocks and dequantized values read back match the file`, () => {
      const rep = run(f16);
      expect(rep.over).toBeLessThanOrEqual(BOUND);
      expect(rep.jsBuffersPeak - rep.jsBuffersBase).toBeLessThanOrEqual(64 * MiB);
      for (const [name, fname, i] of checks) {
        const t = tensors.find((x) => x.name === fname)!;
        const got = rep.values[`${name}@${i}`];
        if (KEPT.includes(t.type)) {
          const k = i & ~3;
          expect(got, `${name} byte ${i}`).toBe((byteOf(t, k) | (byteOf(t, k + 1) << 8) | (byteOf(t, k + 2) << 16) | (byteOf(t, k + 3) << 24)) >>> 0);
        } else {
          const v = t.type === F32 ? 1 + tensors.indexOf(t) / 100 : elemOf(t, i);
          const asF16 = f16 && !/norm|tok_emb/.test(name);
          expect(got, `${name}[${i}]`).toBe(asF16 ? f32ToF16Bits(v) : f32Bits(v));
        }
      }
      expect(rep.progress.last!.bytesDone).toBe(rep.progress.last!.bytesTotal);
      expect(rep.progress.last!.bytesTotal).toBeGreaterThan(bytes * 0.99);
      expect(rep.progress.calls).toBeGreaterThan(bytes / (16 * MiB));
    }, 300_000);
  }

  // Only where GPU buffers are process memory (lavapipe): elsewhere peak RSS − GPU bytes says nothing.
  it.skipIf(!rt?.handle.info.software)('the bound can fail: chunks of 32 Mi elements (a whole Q5_0 tensor dequantized at once, as the loader did before) exceed it', () => {
    expect(run(false, 1 << 25).over).toBeGreaterThan(BOUND);
  }, 300_000);
});

describe('chunked GGUF upload: uneven blocks through a tiny staging buffer', async () => {
  const rt = await gpuRuntime();
  it.skipIf(!rt)('every tensor kept as blocks equals the file bytes, every dequantized one the f32 load, with 8-byte staging and 40-element chunks', async () => {
    // d = 32, ff = 96: Q8_0 rows of 34 bytes (K = 32), [gate; up] back to back; an 8-byte staging
    // buffer flushes mid-block and mid-row, and 40-element chunks split Q8_0 blocks' runs unevenly
    const dir = makeTinyModel('hf-qwen2', join(tmp, 'gguf-chunks'), { seed: 9, dim: 32, hiddenDim: 96, nHeads: 2, nKvHeads: 1 });
    const m = await loadWeights(dir);
    const out = join(tmp, 'chunks.Q8_0.gguf');
    const e = ggufExport(m, 'q8_0');
    writeGguf(out, e.kvs, e.tensors);
    const f = await readGguf(out);
    const eager = loadGgufWeights(f);
    for (const f16 of rt!.hasF16 ? [false, true] : [false]) {
      const g = await GpuTransformer.create(rt!, loadGgufWeights(f, { lazy: true }), { f16, chunkElems: 40, windowBytes: 100, rawStagingBytes: 8 });
      let blocks = 0, values = 0;
      for (const [name, ref] of eager.refs!) {
        const p = g.uploads.placement(name);
        if (!p) continue;
        if (p.ggmlType !== undefined) {
          const want = (ref as unknown as { rawBytes(): Uint8Array }).rawBytes();
          const start = p.byteOffset & ~3, end = Math.ceil((p.byteOffset + want.length) / 4) * 4;
          const got = new Uint8Array(await rt!.read(p.buffer, end - start, start)).subarray(p.byteOffset - start, p.byteOffset - start + want.length);
          expect(Buffer.compare(Buffer.from(got), Buffer.from(want)), `${name} blocks`).toBe(0);
          blocks++;
        } else {
          const t = eager.tensors.get(name)!;
          const n = Math.ceil((t.length * (p.f16 ? 2 : 4)) / 4) * 4;
          const got = new Uint8Array(await rt!.read(p.buffer, n, p.byteOffset));
          const want = p.f16 ? new Uint8Array(toF16(t).buffer, 0, n) : new Uint8Array(t.buffer, t.byteOffset, n);
          expect(Buffer.compare(Buffer.from(got), Buffer.from(want)), `${name} (${p.f16 ? 'f16' : 'f32'})`).toBe(0);
          values++;
        }
      }
      expect(blocks).toBeGreaterThan(10);
      expect(values).toBeGreaterThan(3);
      g.dispose();
    }
  });
});

describe('chunked conversion and upload', async () => {
  const rt = await gpuRuntime();

  it('bf16 → f16 (table) and bf16/f16 → f32 give the bits of the f32 round trip for all 65,536 inputs, odd lengths and offsets included', () => {
    const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
    const h = new Uint16Array(65536), f = new Float32Array(65536), g = new Float32Array(65536);
    bf16BitsToF16Bits(all, h);
    bf16BitsIntoF32(all, f);
    f16BitsIntoF32(all, g);
    const f32 = new Float32Array(1), u32 = new Uint32Array(f32.buffer);
    let bad = 0;
    for (let i = 0; i < 65536; i++) {
      u32[0] = i << 16;
      if (h[i] !== f32ToF16Bits(f32[0])) bad++;
      if (new Uint32Array(f.buffer)[i] !== u32[0]) bad++;
      if (!Object.is(g[i], f16BitsToF32(i)) && !(Number.isNaN(g[i]) && Number.isNaN(f16BitsToF32(i)))) bad++;
    }
    expect(bad).toBe(0);
    const odd = all.subarray(3, 10), ho = new Uint16Array(7), fo = new Float32Array(7);
    bf16BitsToF16Bits(odd, ho);
    bf16BitsIntoF32(odd, fo);
    expect([...ho]).toEqual([...h.subarray(3, 10)]);
    expect([...fo]).toEqual([...f.subarray(3, 10)]);
  });

  it('lazy weights (the WebGPU load) read as f32 on demand equal the eager load: GPT-2 transposes and splits, tied head', () => {
    const dir = makeTinyModel('hf-gpt2', join(tmp, 'lazy-gpt2'));
    const eager = loadHf(dir), lazy = loadHf(dir, undefined, { lazy: true });
    expect(lazy.refs!.size).toBe(eager.tensors.size);
    expect([...lazy.tensors.keys()].sort()).toEqual([...eager.tensors.keys()].sort());
    for (const [name, t] of eager.tensors) expect([...lazy.tensors.get(name)!], name).toEqual([...t]);
    expect(lazy.tensors.get('lm_head')).toBe(lazy.tensors.get('tok_emb'));
    expect(lazy.refs!.get('lm_head')).toBe(lazy.refs!.get('tok_emb'));
  });

  it.skipIf(!rt)('every uploaded tensor equals the eager f32 load (f16: its f16 rounding) with tiny, uneven chunks', async () => {
    // d = 18, ff = 42: tensors of odd row counts and lengths not multiples of the chunk.
    const ck = writeCheckpoint(join(tmp, 'chunks'), { V: 30, d: 18, ff: 42, heads: 3, layers: 3, shards: 2 });
    const eager = loadHf(ck.dir);
    for (const f16 of rt!.hasF16 ? [false, true] : [false]) {
      const g = await GpuTransformer.create(rt!, loadHf(ck.dir, undefined, { lazy: true }), { f16, chunkElems: 10, windowBytes: 100 });
      let checked = 0;
      for (const [name, t] of eager.tensors) {
        const p = g.uploads.placement(name);
        if (!p) continue;
        const bytes = Math.ceil((t.length * (p.f16 ? 2 : 4)) / 4) * 4;
        const got = new Uint8Array(await rt!.read(p.buffer, bytes, p.byteOffset));
        const want = p.f16 ? new Uint8Array(toF16(t).buffer, 0, bytes) : new Uint8Array(t.buffer, t.byteOffset, bytes);
        expect(Buffer.compare(Buffer.from(got), Buffer.from(want)), `${name} (${p.f16 ? 'f16' : 'f32'})`).toBe(0);
        checked++;
      }
      expect(checked).toBe(eager.tensors.size);
      g.dispose();
    }
  });
});

describe('loader errors name the shard file and the tensor', async () => {
  const rt = await gpuRuntime();
  const small: Dims = { V: 32, d: 16, ff: 48, heads: 2, layers: 4, shards: 2 };
  const shard = (n: number) => `model-0000${n}-of-00002.safetensors`;
  const expectModelError = (f: () => unknown, re: RegExp, file: string, tensor?: string) => {
    let err: unknown;
    try { f(); } catch (e) { err = e; }
    expect(err, 'throws').toBeInstanceOf(ModelFileError);
    expect((err as Error).message).toMatch(re);
    expect((err as ModelFileError).file).toContain(file);
    if (tensor) expect((err as ModelFileError).tensor).toBe(tensor);
  };

  it('a shard listed in model.safetensors.index.json that is missing', () => {
    const ck = writeCheckpoint(join(tmp, 'missing'), small);
    rmSync(join(ck.dir, shard(2)));
    for (const lazy of [false, true]) {
      expectModelError(() => loadHf(ck.dir, undefined, { lazy }),
        /model\.safetensors\.index\.json: shard 'model-00002-of-00002\.safetensors' \(holding 'model\.layers\.2\.input_layernorm\.weight'\) not found at .*: the checkpoint is incomplete/,
        shard(2), 'model.layers.2.input_layernorm.weight');
    }
  });

  it('a truncated shard: at open (the header says more bytes than the file has) and while streaming', async () => {
    const ck = writeCheckpoint(join(tmp, 'trunc'), small);
    const p = join(ck.dir, shard(2));
    const good = writeCheckpoint(join(tmp, 'trunc-ok'), small);
    truncateSync(p, 4000);
    expectModelError(() => loadHf(ck.dir), /model-00002-of-00002\.safetensors: tensor 'model\.layers\.\d\.[a-z_.]+': data_offsets \[\d+, \d+\] run past the end of the data \(\d+ bytes\): truncated shard/, shard(2));
    if (!rt) return;
    // The file shrinks after its header was read (a copy still in progress): the chunk reader says so.
    const w = loadHf(good.dir, undefined, { lazy: true });
    truncateSync(join(good.dir, shard(2)), 4000);
    const err = await GpuTransformer.create(rt, w, { f16: false }).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(ModelFileError);
    expect((err as Error).message).toMatch(/model-00002-of-00002\.safetensors: truncated shard: tensor 'model\.layers\.\d\.[a-z_.]+' ends at byte \d+ but the file ends at byte 4000/);
  });

  it('a dtype the loader cannot read', () => {
    const ck = writeCheckpoint(join(tmp, 'dtype'), small, (name, e) => { if (name === 'model.layers.3.mlp.up_proj.weight') e.dtype = 'F8_E4M3'; });
    for (const lazy of [false, true]) {
      expectModelError(() => loadHf(ck.dir, undefined, { lazy }),
        /model-00002-of-00002\.safetensors: tensor 'model\.layers\.3\.mlp\.up_proj\.weight' has dtype F8_E4M3; supported: F32, F16, BF16/, shard(2), 'model.layers.3.mlp.up_proj.weight');
    }
  });

  it('a shape that does not match config.json', () => {
    // q_proj [8, 32] (as many elements as the [16, 16] that hidden_size 16 and 2 heads of 8 imply).
    const ck = writeCheckpoint(join(tmp, 'shape'), small, (name, e) => { if (name === 'model.layers.1.self_attn.q_proj.weight') e.shape = [8, 32]; });
    for (const lazy of [false, true]) {
      expectModelError(() => loadHf(ck.dir, undefined, { lazy }),
        /model-00001-of-00002\.safetensors: tensor 'model\.layers\.1\.self_attn\.q_proj\.weight' has shape \[8, 32\], expected \[16, 16\] from config\.json \(vocab 32, hidden 16, intermediate 48, 2 heads \/ 2 kv heads of 8\)/,
        shard(1), 'model.layers.1.self_attn.q_proj.weight');
    }
  });
});

describe('load progress line', () => {
  const p = (done: number): LoadProgress => ({ bytesDone: done, bytesTotal: 16.06e9, shard: 2, shards: 4, file: '/m/model-00002-of-00004.safetensors', tensor: 'layers.9.w_up' });
  it('formats bytes done / total and shard i/n; one redrawn line on a terminal, nothing otherwise', () => {
    expect(formatLoadProgress(p(3.21e9))).toBe('loading weights: shard 2/4 (model-00002-of-00004.safetensors)  3.21 / 16.06 GB  19%');
    expect(formatLoadProgress({ ...p(0), bytesDone: 150e3, bytesTotal: 600e3, shard: 1, shards: 1, file: 'C:\\m\\model.safetensors' })).toBe('loading weights: shard 1/1 (model.safetensors)  0.15 / 0.60 MB  25%');
    expect(loadProgressPrinter({ isTTY: false, write: () => { throw new Error('wrote'); } })).toBeUndefined();
    const out: string[] = [];
    const print = loadProgressPrinter({ isTTY: true, write: (s: string) => out.push(s) })!;
    print(p(1e9)); print(p(2e9)); print(p(16.06e9));
    expect(out.length).toBe(2); // the second is within 100 ms of the first; the last always prints
    expect(out[0]).toMatch(/^\r\x1b\[2Kloading weights: shard 2\/4/);
    expect(out[1].endsWith('100%\n')).toBe(true);
  });
});
