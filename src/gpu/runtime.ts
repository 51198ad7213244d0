// The kernel harness: compiled-pipeline cache, pooled buffers, uniforms, dispatch folding, readback.
//
// A kernel (kernels/<op>.ts) describes itself with a ProgramSpec: which shader file, which WGSL
// `override` constants (workgroup size, tile sizes, layout flags: the only things substituted),
// and a cache key built from exactly those. Shapes always travel in a uniform buffer, so a new
// sequence length reuses the compiled pipeline.

import type { GpuHandle } from './device.js';
import { shaderSource } from './shaders.js';

export interface ProgramSpec {
  /** Shader name: shaders/<shader>.wgsl */
  shader: string;
  entryPoint?: string;
  /** WGSL `override` constants; part of the cache key. */
  constants?: Record<string, number>;
  /**
   * Compile with f16 weights: the shader's `alias WeightT = f32;` becomes f16 and `enable f16;` is
   * prepended (needs shader-f16). The one substitution besides override constants; in the key.
   */
  f16Weights?: boolean;
}

const WEIGHT_ALIAS = 'alias WeightT = f32;';

/** The WGSL text a spec compiles: the shader file, with the weight type swapped for f16 weights. */
export function programSource(spec: ProgramSpec): string {
  const text = shaderSource(spec.shader);
  if (!spec.f16Weights) return text;
  if (!text.includes(WEIGHT_ALIAS)) throw new Error(`shader '${spec.shader}' has no '${WEIGHT_ALIAS}': it has no f16-weight form`);
  return `enable f16;\n${text.replace(WEIGHT_ALIAS, 'alias WeightT = f16;')}`;
}

export function programKey(spec: ProgramSpec): string {
  const c = spec.constants ? Object.entries(spec.constants).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k}=${v}`).join(',') : '';
  return `${spec.shader}${spec.f16Weights ? '<f16>' : ''}:${spec.entryPoint ?? 'main'}${c ? `[${c}]` : ''}`;
}

export const ceilDiv = (a: number, b: number): number => Math.floor((a + b - 1) / b);

/**
 * Fold a 1-D workgroup count into a 2-D grid when it exceeds maxComputeWorkgroupsPerDimension.
 * Shaders recover the linear index as wid.x + wid.y * nwg.x and bounds-guard it.
 */
export function foldDispatch(count: number, maxPerDim: number): [number, number] {
  if (count <= maxPerDim) return [Math.max(count, 1), 1];
  const y = ceilDiv(count, maxPerDim);
  return [ceilDiv(count, y), y];
}

/** Builds a uniform struct: u32 / i32 / f32 fields in declaration order, 16-byte padded. */
export class Uniforms {
  private view: DataView;
  private bytes: ArrayBuffer;
  private offset = 0;
  constructor(maxFields = 32) {
    this.bytes = new ArrayBuffer(maxFields * 4);
    this.view = new DataView(this.bytes);
  }
  u32(v: number): this { this.view.setUint32(this.offset, v >>> 0, true); this.offset += 4; return this; }
  i32(v: number): this { this.view.setInt32(this.offset, v | 0, true); this.offset += 4; return this; }
  f32(v: number): this { this.view.setFloat32(this.offset, v, true); this.offset += 4; return this; }
  build(): ArrayBuffer { return this.bytes.slice(0, Math.max(16, ceilDiv(this.offset, 16) * 16)); }
}

export type BufferUse = 'storage' | 'uniform' | 'staging';

const USAGE: Record<BufferUse, number> = {
  // GPUBufferUsage is a global only after the WebGPU globals are installed; use raw flags.
  storage: 0x0080 /* STORAGE */ | 0x0008 /* COPY_DST */ | 0x0004 /* COPY_SRC */,
  uniform: 0x0040 /* UNIFORM */ | 0x0008,
  staging: 0x0001 /* MAP_READ */ | 0x0008,
};

/** Pool size classes: powers of two up to 1 MiB, then 1 MiB steps. */
function sizeClass(bytes: number): number {
  const b = Math.max(16, ceilDiv(bytes, 4) * 4);
  if (b <= 1 << 20) return 1 << Math.ceil(Math.log2(b));
  return ceilDiv(b, 1 << 20) << 20;
}

export interface RuntimeStats {
  pipelinesCompiled: number;
  buffersCreated: number;
  bytesAllocated: number;
  peakBytesAllocated: number;
  dispatches: number;
  submits: number;
}

export class GpuRuntime {
  readonly device: GPUDevice;
  readonly limits: GPUSupportedLimits;
  readonly hasF16: boolean;
  readonly hasTimestamps: boolean;
  readonly stats: RuntimeStats = { pipelinesCompiled: 0, buffersCreated: 0, bytesAllocated: 0, peakBytesAllocated: 0, dispatches: 0, submits: 0 };
  private pipelines = new Map<string, GPUComputePipeline>();
  private pool = new Map<string, GPUBuffer[]>();
  private sizes = new WeakMap<GPUBuffer, { use: BufferUse; size: number }>();
  private encoder: GPUCommandEncoder | null = null;
  private transient: GPUBuffer[] = [];
  private errors: string[] = [];
  private profiler: Profiler | null = null;

  constructor(readonly handle: GpuHandle) {
    this.device = handle.device;
    this.limits = handle.device.limits;
    this.hasF16 = handle.device.features.has('shader-f16');
    this.hasTimestamps = handle.device.features.has('timestamp-query');
  }

  get name(): string {
    const i = this.handle.info;
    return i.description || `${i.vendor} ${i.architecture}`;
  }

  /** Compiled pipeline for a spec, cached by key and labelled with it. */
  pipeline(spec: ProgramSpec): GPUComputePipeline {
    const key = programKey(spec);
    let p = this.pipelines.get(key);
    if (p) return p;
    this.device.pushErrorScope('validation');
    const module = this.device.createShaderModule({ label: key, code: programSource(spec) });
    p = this.device.createComputePipeline({
      label: key,
      layout: 'auto',
      compute: { module, entryPoint: spec.entryPoint ?? 'main', constants: spec.constants },
    });
    this.device.popErrorScope().then((err) => {
      if (err) this.errors.push(`pipeline ${key}: ${err.message}`);
    });
    this.pipelines.set(key, p);
    this.stats.pipelinesCompiled++;
    return p;
  }

  /** A buffer from the pool (size rounded up to its class). Release it when done. */
  acquire(bytes: number, use: BufferUse = 'storage', label = 'concord'): GPUBuffer {
    const size = sizeClass(bytes);
    const key = `${use}:${size}`;
    const free = this.pool.get(key);
    const hit = free?.pop();
    if (hit) return hit;
    const max = this.limits.maxBufferSize;
    if (size > max) throw new Error(`${label}: buffer of ${size} bytes exceeds maxBufferSize ${max}`);
    const buf = this.device.createBuffer({ label: `${label} (${use} ${size}B)`, size, usage: USAGE[use] });
    this.sizes.set(buf, { use, size });
    this.stats.buffersCreated++;
    this.stats.bytesAllocated += size;
    this.stats.peakBytesAllocated = Math.max(this.stats.peakBytesAllocated, this.stats.bytesAllocated);
    return buf;
  }

  /**
   * Return a buffer to the pool. While commands are being recorded the release waits for the
   * submit: a queue.writeBuffer into a reused buffer would otherwise land before the recorded
   * passes that still read its old contents.
   */
  release(buf: GPUBuffer): void {
    if (this.encoder) {
      this.transient.push(buf);
      return;
    }
    this.recycle(buf);
  }

  private recycle(buf: GPUBuffer): void {
    const meta = this.sizes.get(buf);
    if (!meta) return;
    const key = `${meta.use}:${meta.size}`;
    let list = this.pool.get(key);
    if (!list) this.pool.set(key, (list = []));
    list.push(buf);
  }

  /** Free every pooled (released) buffer. */
  trim(): void {
    for (const list of this.pool.values()) {
      for (const b of list) {
        this.stats.bytesAllocated -= this.sizes.get(b)?.size ?? 0;
        b.destroy();
      }
    }
    this.pool.clear();
  }

  /**
   * A long-lived storage buffer of exactly the data's size (weights): not pooled, so weights do
   * not round up to a size class; destroy it with dropPersistent().
   */
  persistent(data: ArrayBufferView, label: string): GPUBuffer {
    const buf = this.persistentBuffer(data.byteLength, label);
    this.write(buf, data);
    return buf;
  }

  /** An empty persistent buffer of `bytes` (rounded up to 4), filled by the caller with write() at offsets (streamed weights). */
  persistentBuffer(bytes: number, label: string): GPUBuffer {
    const size = ceilDiv(bytes, 4) * 4;
    if (size > this.limits.maxStorageBufferBindingSize) {
      throw new Error(`${label}: ${size} bytes exceed maxStorageBufferBindingSize ${this.limits.maxStorageBufferBindingSize}`);
    }
    const buf = this.device.createBuffer({ label, size: Math.max(size, 16), usage: USAGE.storage });
    this.stats.buffersCreated++;
    this.stats.bytesAllocated += size;
    this.stats.peakBytesAllocated = Math.max(this.stats.peakBytesAllocated, this.stats.bytesAllocated);
    return buf;
  }

  dropPersistent(buf: GPUBuffer): void {
    this.stats.bytesAllocated -= buf.size;
    buf.destroy();
  }

  /** Upload typed data into a pooled storage buffer (writeBuffer). */
  upload(data: ArrayBufferView, label = 'upload'): GPUBuffer {
    const buf = this.acquire(data.byteLength, 'storage', label);
    this.write(buf, data);
    return buf;
  }

  write(buf: GPUBuffer, data: ArrayBufferView, offset = 0): void {
    // writeBuffer wants a multiple of 4 bytes.
    const n = data.byteLength;
    if (n % 4 === 0) {
      this.device.queue.writeBuffer(buf, offset, data.buffer, data.byteOffset, n);
    } else {
      const padded = new Uint8Array(ceilDiv(n, 4) * 4);
      padded.set(new Uint8Array(data.buffer, data.byteOffset, n));
      this.device.queue.writeBuffer(buf, offset, padded);
    }
  }

  /** A uniform buffer holding `data`, recycled after the next submit. */
  uniform(data: ArrayBuffer, label = 'uniforms'): GPUBuffer {
    const buf = this.acquire(data.byteLength, 'uniform', label);
    this.device.queue.writeBuffer(buf, 0, data);
    this.transient.push(buf);
    return buf;
  }

  /** A scratch storage buffer recycled after the next submit. */
  scratch(bytes: number, label = 'scratch'): GPUBuffer {
    const buf = this.acquire(bytes, 'storage', label);
    this.transient.push(buf);
    return buf;
  }

  private enc(): GPUCommandEncoder {
    return (this.encoder ??= this.device.createCommandEncoder({ label: 'concord' }));
  }

  /**
   * Record one dispatch. `buffers` are bound to @group(0) @binding(0..n-1) in order.
   * `workgroups` is either [x, y, z] or a 1-D count that is folded into 2-D when needed.
   */
  dispatch(spec: ProgramSpec, buffers: GPUBuffer[], workgroups: number | [number, number, number]): void {
    const pipeline = this.pipeline(spec);
    const bindGroup = this.device.createBindGroup({
      label: programKey(spec),
      layout: pipeline.getBindGroupLayout(0),
      entries: buffers.map((buffer, binding) => ({ binding, resource: { buffer } })),
    });
    const grid = typeof workgroups === 'number'
      ? [...foldDispatch(workgroups, this.limits.maxComputeWorkgroupsPerDimension), 1]
      : workgroups;
    const key = programKey(spec);
    const pass = this.enc().beginComputePass({ label: key, timestampWrites: this.profiler?.next(key) });
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(grid[0], grid[1], grid[2]);
    pass.end();
    this.stats.dispatches++;
  }

  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void {
    this.enc().copyBufferToBuffer(src, srcOffset, dst, dstOffset, bytes);
  }

  /**
   * Per-kernel GPU time from timestamp queries (when the device has timestamp-query): every
   * dispatch until readProfile() writes begin/end timestamps. For benchmarks and profiling only.
   */
  startProfile(maxPasses = 2048): boolean {
    // A query set holds at most 4096 queries: two per pass.
    if (!this.hasTimestamps) return false;
    this.profiler = new Profiler(this.device, maxPasses);
    return true;
  }

  /** Milliseconds per kernel key since startProfile(), sorted by total time; stops profiling. */
  async readProfile(): Promise<{ kernel: string; calls: number; ms: number }[]> {
    const p = this.profiler;
    if (!p) return [];
    this.profiler = null;
    const enc = this.enc();
    p.resolve(enc);
    const staging = this.acquire(p.count * 16, 'staging', 'profile');
    enc.copyBufferToBuffer(p.resolveBuf, 0, staging, 0, p.count * 16);
    this.submit();
    await staging.mapAsync(0x0001, 0, p.count * 16);
    const t = new BigInt64Array(staging.getMappedRange(0, p.count * 16).slice(0));
    staging.unmap();
    this.recycle(staging);
    const totals = new Map<string, { calls: number; ns: number }>();
    p.labels.forEach((label, i) => {
      const e = totals.get(label) ?? { calls: 0, ns: 0 };
      e.calls++;
      e.ns += Number(t[2 * i + 1] - t[2 * i]);
      totals.set(label, e);
    });
    p.destroy();
    return [...totals].map(([kernel, e]) => ({ kernel, calls: e.calls, ms: e.ns / 1e6 })).sort((a, b) => b.ms - a.ms);
  }

  /** Submit recorded work; transient buffers return to the pool (queue order keeps reuse safe). */
  submit(): void {
    if (this.encoder) {
      this.device.queue.submit([this.encoder.finish()]);
      this.encoder = null;
      this.stats.submits++;
    }
    for (const b of this.transient) this.recycle(b);
    this.transient = [];
  }

  async sync(): Promise<void> {
    this.submit();
    await this.device.queue.onSubmittedWorkDone();
    this.throwErrors();
  }

  private throwErrors(): void {
    if (this.errors.length) {
      const msg = this.errors.join('\n');
      this.errors = [];
      throw new Error(`WebGPU validation failed:\n${msg}`);
    }
  }

  /** Read `bytes` from a buffer (submits pending work first). */
  async read(buf: GPUBuffer, bytes: number, offset = 0): Promise<ArrayBuffer> {
    const size = ceilDiv(bytes, 4) * 4;
    const staging = this.acquire(size, 'staging', 'readback');
    this.enc().copyBufferToBuffer(buf, offset, staging, 0, size);
    this.submit();
    await staging.mapAsync(0x0001 /* READ */, 0, size);
    const out = staging.getMappedRange(0, size).slice(0, bytes);
    staging.unmap();
    this.recycle(staging);
    this.throwErrors();
    return out;
  }

  async readF32(buf: GPUBuffer, count: number, offset = 0): Promise<Float32Array> {
    return new Float32Array(await this.read(buf, count * 4, offset));
  }

  destroy(): void {
    this.trim();
    this.device.destroy();
  }
}

/** Timestamp-query bookkeeping for GpuRuntime.startProfile(). */
class Profiler {
  readonly labels: string[] = [];
  readonly querySet: GPUQuerySet;
  readonly resolveBuf: GPUBuffer;
  private resolved = 0;

  constructor(private device: GPUDevice, readonly max: number) {
    this.querySet = device.createQuerySet({ type: 'timestamp', count: 2 * max, label: 'concord.profile' });
    this.resolveBuf = device.createBuffer({ size: 16 * max, usage: 0x0200 /* QUERY_RESOLVE */ | 0x0004 /* COPY_SRC */, label: 'concord.profile' });
  }

  get count(): number { return this.labels.length; }

  next(label: string): GPUComputePassTimestampWrites | undefined {
    const i = this.labels.length;
    if (i >= this.max) return undefined;
    this.labels.push(label);
    return { querySet: this.querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 };
  }

  resolve(enc: GPUCommandEncoder): void {
    if (this.count > this.resolved) enc.resolveQuerySet(this.querySet, 0, 2 * this.count, this.resolveBuf, 0);
    this.resolved = this.count;
  }

  destroy(): void {
    this.querySet.destroy();
    this.resolveBuf.destroy();
  }
}
