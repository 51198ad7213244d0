// The scoring worker: loads the model and runs the engine (scoring, and proposing instructions) off the page's thread, so the page stays
// responsive. WebGPU is available in dedicated workers (Chromium); the CPU path runs here too.

import { registerShaders } from '../src/gpu/shaders.js';
import type { LanguageModel } from '../src/models/lm.js';
import { ENCODER_FILES, encoderExternalFiles, openEncoder, openModel, proposeInstructions, scoreRecords, type Device } from './engine.js';
import type { Embedder } from '../src/encoder/index.js';
import { hubModel } from './hub.js';
import { hfModelFromFiles, llama2cModelFromBytes, type ModelBytes } from './model-source.js';
import type { EncoderSpec, FromWorker, GpuProbe, ModelSpec, ToWorker } from './protocol.js';

// Every WGSL file, registered by name ('matmul/tiled') before any kernel runs.
const wgsl = import.meta.glob('../shaders/**/*.wgsl', { query: '?raw', import: 'default', eager: true }) as Record<string, string>;
registerShaders(Object.fromEntries(Object.entries(wgsl).map(([path, text]) => [path.replace(/^.*?shaders\//, '').replace(/\.wgsl$/, ''), text])));

const post = (m: FromWorker) => (self as unknown as Worker).postMessage(m);

async function probe(): Promise<GpuProbe> {
  const gpu = (navigator as Navigator & { gpu?: GPU }).gpu;
  if (!gpu) return { ok: false, error: 'this browser has no WebGPU (navigator.gpu is missing in workers)' };
  try {
    const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
    if (!adapter) return { ok: false, error: 'navigator.gpu gave no adapter (WebGPU disabled or no usable GPU driver)' };
    const i = adapter.info;
    const text = `${i.vendor} ${i.architecture} ${i.device} ${i.description}`.toLowerCase();
    const software = /swiftshader|llvmpipe|lavapipe|software/.test(text);
    return { ok: true, adapter: `${i.description || i.architecture || i.device} (${i.vendor})`, software, features: [...adapter.features].sort() };
  } catch (e) {
    return { ok: false, error: (e as Error).message };
  }
}

/** Fetch with a status line as the bytes arrive (the default model is 58 MB). */
async function fetchBytes(url: string, what: string, run: number): Promise<ArrayBuffer> {
  const res = await fetch(url);
  if (!res.ok || !res.body) throw new Error(`${what}: ${url} answered ${res.status} ${res.statusText}`);
  const total = Number(res.headers.get('content-length') ?? 0);
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let got = 0, lastPost = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    got += value.length;
    if (performance.now() - lastPost > 150) {
      lastPost = performance.now();
      post({ type: 'status', run, text: `downloading ${what}: ${(got / 1e6).toFixed(1)}${total ? ` / ${(total / 1e6).toFixed(1)}` : ''} MB` });
    }
  }
  const out = new Uint8Array(got);
  let o = 0;
  for (const c of chunks) { out.set(c, o); o += c.length; }
  return out.buffer;
}

const mb = (n: number) => (n / 1e6).toFixed(1);

/** A model by Hub id: from the browser's cache or downloaded (web/hub.ts), with a status line as bytes arrive. */
async function hubBytes(spec: Extract<ModelSpec, { kind: 'hub' }>, run: number, lazy: boolean): Promise<ModelBytes> {
  post({ type: 'status', run, text: `asking ${spec.endpoint} for ${spec.spec}` });
  let lastPost = 0;
  const m = await hubModel(spec.spec, spec.endpoint, (p) => {
    if (p.bytesDone < p.bytesTotal && performance.now() - lastPost < 150) return;
    lastPost = performance.now();
    post({ type: 'status', run, text: `downloading ${p.file}: ${mb(p.bytesDone)} / ${mb(p.bytesTotal)} MB` });
  });
  const total = [...m.files.values()].reduce((a, b) => a + b.byteLength, 0);
  post({ type: 'status', run, text: `${m.label}: ${m.files.size} files, ${mb(total)} MB (${m.downloaded.length ? `${m.downloaded.length} downloaded` : 'all from the browser cache'})` });
  return hfModelFromFiles(m.files, m.label, { lazy });
}

async function modelBytes(spec: ModelSpec, run: number, device: Device): Promise<ModelBytes> {
  if (spec.kind === 'hub') return hubBytes(spec, run, device === 'webgpu');
  if (spec.kind === 'url') {
    const [m, t] = [await fetchBytes(spec.model, 'model', run), await fetchBytes(spec.tokenizer, 'tokenizer', run)];
    return llama2cModelFromBytes(m, t, spec.name);
  }
  if (spec.kind === 'llama2c-files') {
    post({ type: 'status', run, text: `reading ${spec.model.name}` });
    return llama2cModelFromBytes(await spec.model.arrayBuffer(), await spec.tokenizer.arrayBuffer(), spec.name);
  }
  const files = new Map<string, ArrayBuffer>();
  for (const [path, f] of spec.files) files.set(path, await f.arrayBuffer());
  return hfModelFromFiles(files, spec.name, { lazy: device === 'webgpu' });
}

/** The encoder's files from its folder URL (the .onnx first: it names its external data files). */
async function encoderFromUrl(spec: EncoderSpec, run: number) {
  const url = (f: string) => new URL(f, spec.base.endsWith('/') ? spec.base : `${spec.base}/`).href;
  const bytes = async (f: string) => new Uint8Array(await fetchBytes(url(f), `encoder ${f}`, run));
  const json = async (f: string, optional = false): Promise<Record<string, unknown> | undefined> => {
    const r = await fetch(url(f));
    if (!r.ok) { if (optional) return undefined; throw new Error(`encoder: ${url(f)} answered ${r.status} ${r.statusText}`); }
    return (await r.json()) as Record<string, unknown>;
  };
  const onnx = await bytes(ENCODER_FILES[0]);
  const external = new Map<string, Uint8Array>();
  for (const loc of encoderExternalFiles(onnx)) external.set(loc, await bytes(loc));
  return { name: spec.name, onnx, external, tokenizerJson: (await json('tokenizer.json'))!, tokenizerConfig: await json('tokenizer_config.json', true), config: await json('config.json', true) };
}

function specKey(spec: ModelSpec): string {
  if (spec.kind === 'url') return `url:${spec.model}|${spec.tokenizer}`;
  if (spec.kind === 'hub') return `hub:${spec.endpoint}|${spec.spec}`;
  const fileKey = (f: File) => `${f.name}:${f.size}:${f.lastModified}`;
  if (spec.kind === 'llama2c-files') return `l2c:${fileKey(spec.model)}|${fileKey(spec.tokenizer)}`;
  return `hf:${spec.files.map(([p, f]) => `${p}=${fileKey(f)}`).join('|')}`;
}

// The last model opened, kept for the next run with the same files and device.
let cached: { key: string; device: Device; lm: LanguageModel; encoder: Embedder | null } | null = null;

/** The model (and encoder) a message names, opened or taken from the cache. */
async function ensureModel(msg: Extract<ToWorker, { type: 'score' | 'propose' }>): Promise<{ lm: LanguageModel; encoder: Embedder | null }> {
  const { run, device } = msg;
  const key = `${specKey(msg.model)}|${msg.encoder ? `${msg.encoder.name}@${msg.encoder.base}` : 'no encoder'}`;
  if (!cached || cached.key !== key || cached.device !== device) {
    cached?.encoder?.dispose();
    cached?.lm.dispose();
    cached = null;
    const bytes = await modelBytes(msg.model, run, device);
    post({ type: 'status', run, text: `${device === 'webgpu' ? 'uploading weights to the GPU' : 'preparing the CPU model'}: ${bytes.weights.config.name}` });
    const lm = await openModel(bytes.weights, bytes.tokenizer, device);
    let encoder: Embedder | null = null;
    if (msg.encoder) {
      try {
        const eb = await encoderFromUrl(msg.encoder, run);
        post({ type: 'status', run, text: `preparing the sentence encoder ${msg.encoder.name}` });
        encoder = openEncoder(eb, lm);
      } catch (e) {
        lm.dispose();
        throw e;
      }
    }
    cached = { key, device, lm, encoder };
  }
  return cached;
}

async function propose(msg: Extract<ToWorker, { type: 'propose' }>): Promise<void> {
  const t0 = performance.now();
  const { lm, encoder } = await ensureModel(msg);
  const loadSeconds = (performance.now() - t0) / 1000;
  const proposal = await proposeInstructions(lm, msg.input, msg.settings, {
    encoder, encoderName: msg.encoder?.name, onStatus: (text) => post({ type: 'status', run: msg.run, text }),
  });
  post({
    type: 'proposed', run: msg.run, proposal,
    info: { model: lm.config.name, encoder: encoder ? `${msg.encoder!.name} on ${encoder.deviceName}` : null, deviceName: lm.deviceName, backend: msg.device, loadSeconds },
  });
}

async function score(msg: Extract<ToWorker, { type: 'score' }>): Promise<void> {
  const { run, device, records } = msg;
  const t0 = performance.now();
  const { lm, encoder } = await ensureModel(msg);
  const t1 = performance.now();
  post({ type: 'status', run, text: `scoring ${records.length} pairs on ${lm.deviceName}` });
  let lastPartial = 0, tokens = 0;
  const pairs = await scoreRecords(lm, records, {
    encoder, encoderName: msg.encoder?.name,
    onProgress: (p) => { tokens = p.tokens; post({ type: 'progress', run, progress: p, total: records.length }); },
    onPairs: (done) => {
      // Stream results in a few chunks so the plot fills in while scoring goes on.
      if (done.length - lastPartial >= Math.max(8, records.length / 8)) {
        post({ type: 'partial', run, pairs: done.slice(lastPartial) });
        lastPartial = done.length;
      }
    },
  });
  const t2 = performance.now();
  const seconds = (t2 - t1) / 1000;
  post({
    type: 'done', run, pairs,
    info: {
      model: lm.config.name, encoder: encoder ? `${msg.encoder!.name} on ${encoder.deviceName}` : null, deviceName: lm.deviceName, backend: device, seconds, loadSeconds: (t1 - t0) / 1000,
      pairsPerSecond: records.length / Math.max(seconds, 1e-9), tokens,
    },
  });
}

/** Runs one at a time (scoring and proposing share the cached model). */
let queue: Promise<void> = Promise.resolve();

async function run(msg: Exclude<ToWorker, { type: 'probe' }>): Promise<void> {
  try {
    if (msg.type === 'propose') await propose(msg);
    else await score(msg);
  } catch (e) {
    const err = e as Error;
    console.error(err);
    post({ type: 'error', run: msg.run, message: err.message || String(err) });
  }
}

self.onmessage = async (ev: MessageEvent<ToWorker>) => {
  const msg = ev.data;
  if (msg.type === 'probe') {
    post({ type: 'probe', probe: await probe() });
    return;
  }
  queue = queue.then(() => run(msg));
};
