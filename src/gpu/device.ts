// Getting a GPUDevice anywhere: the browser's navigator.gpu, or dawn.node (npm `webgpu`) in Node.
//
// In Node, with no hardware Vulkan driver, we point the Vulkan loader at a software driver
// ourselves (a Mesa lavapipe >= 24 ICD when installed, else Chromium's SwiftShader) and say so.
// This must happen before dawn.node's create(), because the loader reads the variable then.

import { settings } from '../env.js';
import { GpuUnavailableError, UsageError } from '../errors.js';

/** 'cpu-twin': the CPU path on the TypeScript twin instead of onnxruntime (the reference; for debugging and tests). */
export type DeviceChoice = 'auto' | 'webgpu' | 'cpu' | 'cpu-twin';

export interface AdapterSummary {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  isFallbackAdapter: boolean;
  /** true when the adapter is a CPU rasteriser (SwiftShader, lavapipe/llvmpipe). */
  software: boolean;
}

/** One cooperative-matrix shape the adapter offers (Dawn's GPUSubgroupMatrixConfig, DawnExtensions.idl). */
export interface SubgroupMatrixConfig {
  M: number;
  N: number;
  K: number;
  /** Operand type: 'f32' | 'f16' | 'u32' | 'i32' | 'u8' | 'i8'. */
  componentType: string;
  /** Accumulator / result type, same values. */
  resultComponentType: string;
}

/** Dawn toggles passed to dawn.node's create() (Node); both empty in a browser. */
export interface DawnToggles {
  enabled: string[];
  disabled: string[];
}

export interface GpuHandle {
  device: GPUDevice;
  adapter: GPUAdapter;
  info: AdapterSummary;
  features: string[];
  runtime: 'node-dawn' | 'browser';
  /** How the Vulkan driver was chosen (Node only), for `doctor` and logs. */
  driverNote: string;
  /** The Dawn toggles in force (what concord gave dawn.node's create(); empty in a browser). */
  toggles: DawnToggles;
  /** adapter.info.subgroupMinSize / subgroupMaxSize; null where the runtime does not say. */
  subgroupMinSize: number | null;
  subgroupMaxSize: number | null;
  /**
   * adapter.info.subgroupMatrixConfigs (Dawn: listed with allow_unsafe_apis; NVIDIA's f16 ones
   * only with vulkan_enable_f16_on_nvidia); empty where absent. The feature
   * 'chromium-experimental-subgroup-matrix' is in `features` when the device has it.
   */
  subgroupMatrixConfigs: SubgroupMatrixConfig[];
}

export interface BackendDecision {
  backend: 'webgpu' | 'cpu';
  gpu: GpuHandle | null;
  reason: string;
}

export { GpuUnavailableError } from '../errors.js';

const isNode = typeof process !== 'undefined' && !!process.versions?.node;

// Keep dawn.node's GPU object alive for the process lifetime: if it is garbage-collected,
// dawn.node segfaults or hangs.
let nodeGpu: GPU | null = null;
let nodeDriverNote = '';
let nodeToggles: DawnToggles = { enabled: [], disabled: [] };

/** Dawn toggles concord enables by default (names from Dawn's src/dawn/native/Toggles.cpp). */
export const DEFAULT_DAWN_ENABLE: readonly string[] = Object.freeze([
  // Instance toggle: experimental features (Features.cpp FeatureState::Experimental, such as
  // chromium-experimental-subgroup-matrix) may be requested.
  'allow_unsafe_apis',
  // Adapter toggle: without it Dawn refuses shader-f16 on NVIDIA Vulkan (PhysicalDeviceVk.cpp, and
  // lists no f16 subgroup-matrix configuration there).
  'vulkan_enable_f16_on_nvidia',
]);
/** Dawn toggles concord disables by default: timestamp queries at full resolution (device toggle). */
export const DEFAULT_DAWN_DISABLE: readonly string[] = Object.freeze(['timestamp_quantization']);

const ENABLE_KEY = 'enable-dawn-features', DISABLE_KEY = 'disable-dawn-features';

function toggleList(value: string | undefined, fallback: readonly string[], what: string): string[] {
  if (value === undefined) return [...fallback];
  if (value.trim() === 'none') return [];
  const list = value.split(',').map((t) => t.trim()).filter(Boolean);
  for (const t of list) {
    if (!/^[a-z0-9_]+$/.test(t)) throw new UsageError(`${what}: '${t}' is not a Dawn toggle name (lower-case letters, digits and _, as in Dawn's Toggles.cpp)`);
  }
  return list;
}

/**
 * dawn.node create() flags and the toggles in force, from the settings (pure, for tests):
 * `enable` / `disable` (CONCORD_DAWN_ENABLE / CONCORD_DAWN_DISABLE: a comma list replacing the
 * defaults, 'none' for none), then `extra` (CONCORD_DAWN_FLAGS, space-separated key=value flags).
 * dawn.node keeps only the last value of a key (binding/Flags.cpp), so the enable-/disable-dawn-
 * features lists of `extra` are merged into concord's instead of replacing them: a toggle named
 * later wins (disable-dawn-features=allow_unsafe_apis in CONCORD_DAWN_FLAGS turns the default off).
 */
export function dawnCreateFlags(o: { enable?: string; disable?: string; extra?: string }): { flags: string[]; toggles: DawnToggles } {
  const state = new Map<string, boolean>();
  for (const t of toggleList(o.enable, DEFAULT_DAWN_ENABLE, 'CONCORD_DAWN_ENABLE')) state.set(t, true);
  for (const t of toggleList(o.disable, DEFAULT_DAWN_DISABLE, 'CONCORD_DAWN_DISABLE')) {
    if (state.get(t)) throw new UsageError(`Dawn toggle '${t}' is both enabled (CONCORD_DAWN_ENABLE) and disabled (CONCORD_DAWN_DISABLE)`);
    state.set(t, false);
  }
  const others: string[] = [];
  for (const flag of (o.extra ?? '').split(/\s+/).filter(Boolean)) {
    const eq = flag.indexOf('=');
    if (eq <= 0) throw new UsageError(`CONCORD_DAWN_FLAGS: '${flag}' is not a key=value flag (dawn.node's create() format)`);
    const key = flag.slice(0, eq), value = flag.slice(eq + 1);
    if (key === ENABLE_KEY || key === DISABLE_KEY) {
      for (const t of toggleList(value, [], `CONCORD_DAWN_FLAGS ${key}`)) { state.delete(t); state.set(t, key === ENABLE_KEY); }
    } else {
      others.push(flag);
    }
  }
  const enabled = [...state].filter(([, on]) => on).map(([t]) => t);
  const disabled = [...state].filter(([, on]) => !on).map(([t]) => t);
  const flags = [...others];
  if (enabled.length) flags.push(`${ENABLE_KEY}=${enabled.join(',')}`);
  if (disabled.length) flags.push(`${DISABLE_KEY}=${disabled.join(',')}`);
  return { flags, toggles: { enabled, disabled } };
}

/** Software Vulkan ICDs we know Dawn accepts, in order of preference. */
async function findSoftwareIcd(): Promise<{ path: string; note: string } | null> {
  const fs = await import('node:fs');
  const dirs = ['/usr/share/vulkan/icd.d', '/etc/vulkan/icd.d', '/usr/local/share/vulkan/icd.d'];
  for (const dir of dirs) {
    let names: string[] = [];
    try { names = fs.readdirSync(dir); } catch { continue; }
    for (const name of names.filter((n) => n.startsWith('lvp_icd'))) {
      const path = `${dir}/${name}`;
      const version = lavapipeVersion(fs, path);
      if (version !== null && version >= 24) return { path, note: `Mesa lavapipe (Mesa ≥ ${version}, ${path})` };
    }
  }
  const swiftshader = ['/usr/lib/chromium/vk_swiftshader_icd.json', '/usr/lib/chromium-browser/vk_swiftshader_icd.json'];
  for (const path of swiftshader) if (fs.existsSync(path)) return { path, note: `SwiftShader (${path})` };
  return null;
}

/** Mesa major version of a lavapipe ICD, read from the library it names (Dawn rejects lavapipe < 24). */
function lavapipeVersion(fs: typeof import('node:fs'), icdPath: string): number | null {
  try {
    const icd = JSON.parse(fs.readFileSync(icdPath, 'utf8'));
    const lib: string = icd.ICD?.library_path ?? '';
    // Debian's mesa packages record the version in their dpkg file list; fall back to the api_version:
    // Mesa 22.x reports Vulkan 1.3.2xx, Mesa >= 24 reports >= 1.3.27x.
    const api: string = icd.ICD?.api_version ?? '';
    const m = /^1\.(\d+)\.(\d+)/.exec(api);
    if (lib && m) {
      const minor = Number(m[1]), patch = Number(m[2]);
      if (minor >= 4 || (minor === 3 && patch >= 274)) return 24; // "24" = Mesa 24 or newer
      return 22;
    }
  } catch { /* unreadable ICD: not usable */ }
  return null;
}

/**
 * A hardware GPU shows up as a DRM render node or an NVIDIA device node. (Mesa installs Intel and
 * Radeon ICD files even where no such GPU exists, so ICD files alone prove nothing.)
 */
function hasHardwareGpu(fs: typeof import('node:fs')): boolean {
  try {
    if (fs.readdirSync('/dev').some((n) => /^nvidia\d+$/.test(n))) return true;
    return fs.readdirSync('/dev/dri').some((n) => n.startsWith('renderD'));
  } catch {
    return false;
  }
}

/** Whether the dynamic linker can find the Vulkan loader (LD_LIBRARY_PATH, the ld.so cache, the usual folders). */
function vulkanLoaderPresent(fs: typeof import('node:fs')): boolean {
  const lib = 'libvulkan.so.1';
  const dirs = [...(process.env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean),
    '/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib', '/usr/local/lib', '/lib/x86_64-linux-gnu'];
  if (dirs.some((d) => fs.existsSync(`${d}/${lib}`))) return true;
  try {
    return fs.readFileSync('/etc/ld.so.cache').includes(lib);
  } catch {
    return false;
  }
}

/**
 * Point the Vulkan loader at a driver (Node): the environment's choice, the system's when a
 * hardware GPU is present, else a software ICD. Returns the note. Exported so that another Vulkan
 * user in the process (onnxruntime-node's WebGPU EP in bench/e2e) lands on the same driver.
 */
export async function configureNodeVulkanDriver(): Promise<string> {
  if (nodeDriverNote) return nodeDriverNote;
  const fs = await import('node:fs');
  process.env.XDG_RUNTIME_DIR ??= '/tmp';
  const userSet = process.env.VK_ICD_FILENAMES || process.env.VK_DRIVER_FILES;
  if (userSet) {
    nodeDriverNote = `Vulkan driver from the environment (${userSet})`;
  } else if (hasHardwareGpu(fs)) {
    nodeDriverNote = 'hardware GPU device node found; using the system Vulkan loader';
  } else {
    const icd = await findSoftwareIcd();
    if (icd) {
      process.env.VK_ICD_FILENAMES = icd.path;
      nodeDriverNote = `no hardware Vulkan driver: configured software driver ${icd.note}`;
    } else {
      nodeDriverNote = 'no hardware Vulkan driver and no software ICD (apt-get install chromium libvulkan1)';
    }
  }
  return nodeDriverNote;
}

async function nodeNavigatorGpu(): Promise<GPU> {
  if (nodeGpu) return nodeGpu;
  const fs = await import('node:fs');
  await configureNodeVulkanDriver();
  const userSet = process.env.VK_ICD_FILENAMES || process.env.VK_DRIVER_FILES;
  // Without a Vulkan loader or any driver, dawn.node prints its own raw errors (BackendVk.cpp)
  // before failing; say it once, in our words, and do not start it.
  if (process.platform === 'linux' && !vulkanLoaderPresent(fs)) {
    throw new GpuUnavailableError('no Vulkan loader (libvulkan.so.1) on this machine, so no WebGPU in Node (apt-get install libvulkan1, plus a driver: chromium for SwiftShader or mesa-vulkan-drivers)');
  }
  if (!userSet && !hasHardwareGpu(fs)) {
    throw new GpuUnavailableError(nodeDriverNote);
  }
  // CONCORD_DAWN_NODE: a dawn.node file to load instead of the `webgpu` package (the GPU bundle
  // carries dawn.node alone). The Dawn toggles and CONCORD_DAWN_FLAGS: dawnCreateFlags().
  const { flags, toggles } = dawnCreateFlags({ enable: settings.dawnEnable, disable: settings.dawnDisable, extra: settings.dawnFlags });
  // A variable module name keeps browser bundlers from trying to resolve the native addon.
  const modName = 'webgpu';
  type DawnModule = { create: (o: string[]) => GPU; globals: object };
  const dawnPath = settings.dawnNode;
  const mod: DawnModule = dawnPath
    ? ((await import('node:module')).createRequire(import.meta.url)(dawnPath) as DawnModule)
    : ((await import(/* @vite-ignore */ modName)) as DawnModule);
  Object.assign(globalThis, mod.globals);
  // --gpu N|NAME (src/gpu/select.ts): dawn.node's adapter= flag, or Mesa's device-select layer.
  if (settings.gpu) {
    const { selectGpu } = await import('./select.js');
    const sel = selectGpu(settings.gpu);
    Object.assign(process.env, sel.env);
    flags.push(...sel.flags);
    nodeDriverNote += `; ${sel.note}`;
  }
  nodeGpu = mod.create(flags);
  nodeToggles = toggles;
  (globalThis as { __concordDawn?: GPU }).__concordDawn = nodeGpu; // extra strong reference
  return nodeGpu;
}

function summarise(adapter: GPUAdapter): AdapterSummary {
  const info = adapter.info;
  const text = `${info.vendor} ${info.architecture} ${info.device} ${info.description}`.toLowerCase();
  const fallback = (info as { isFallbackAdapter?: boolean }).isFallbackAdapter ??
    (adapter as { isFallbackAdapter?: boolean }).isFallbackAdapter ?? false;
  const software = fallback || /swiftshader|llvmpipe|lavapipe|software/.test(text);
  return {
    vendor: info.vendor, architecture: info.architecture, device: info.device,
    description: info.description, isFallbackAdapter: fallback, software,
  };
}

/** Requested whenever the adapter offers them (the subgroup-matrix one needs allow_unsafe_apis in Dawn). */
export const OPTIONAL_FEATURES = ['shader-f16', 'timestamp-query', 'subgroups', 'chromium-experimental-subgroup-matrix'] as const;

/** Subgroup sizes and matrix configurations from an adapter's info, typed; null / [] where absent. */
export function subgroupInfo(info: GPUAdapterInfo): Pick<GpuHandle, 'subgroupMinSize' | 'subgroupMaxSize' | 'subgroupMatrixConfigs'> {
  const i = info as GPUAdapterInfo & { subgroupMinSize?: number; subgroupMaxSize?: number; subgroupMatrixConfigs?: ArrayLike<Record<string, unknown>> };
  const size = (v: unknown) => (typeof v === 'number' && v > 0 ? v : null);
  // dawn.node's configs are interface objects with getters: copy the fields into plain objects.
  const configs = Array.from(i.subgroupMatrixConfigs ?? [], (c) => ({
    M: Number(c.M), N: Number(c.N), K: Number(c.K),
    componentType: String(c.componentType), resultComponentType: String(c.resultComponentType),
  }));
  return { subgroupMinSize: size(i.subgroupMinSize), subgroupMaxSize: size(i.subgroupMaxSize), subgroupMatrixConfigs: configs };
}

/** Request an adapter and device. Throws GpuUnavailableError when there is none. */
export async function requestGpu(): Promise<GpuHandle> {
  let gpu: GPU | undefined;
  let runtime: GpuHandle['runtime'];
  if (typeof navigator !== 'undefined' && (navigator as Navigator).gpu) {
    gpu = (navigator as Navigator).gpu;
    runtime = 'browser';
  } else if (isNode) {
    gpu = await nodeNavigatorGpu();
    runtime = 'node-dawn';
  } else {
    throw new GpuUnavailableError('this browser has no WebGPU (navigator.gpu is missing)');
  }
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) throw new GpuUnavailableError(`no WebGPU adapter${nodeDriverNote ? `: ${nodeDriverNote}` : ''}`);
  const requiredFeatures = OPTIONAL_FEATURES.filter((f) => adapter.features.has(f)) as GPUFeatureName[];
  const l = adapter.limits;
  const device = await adapter.requestDevice({
    requiredFeatures,
    requiredLimits: {
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
      maxBufferSize: l.maxBufferSize,
      maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
      maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
    },
  });
  device.lost.then((info) => {
    if (info.reason !== 'destroyed') {
      console.error(`concord: GPU device lost (${info.reason}): ${info.message}`);
    }
  });
  device.addEventListener?.('uncapturederror', (ev) => {
    console.error(`concord: WebGPU error: ${(ev as GPUUncapturedErrorEvent).error.message}`);
  });
  return {
    device, adapter, info: summarise(adapter), features: [...device.features].sort(), runtime,
    driverNote: runtime === 'browser' ? 'browser navigator.gpu' : nodeDriverNote,
    toggles: runtime === 'browser' ? { enabled: [], disabled: [] } : { enabled: [...nodeToggles.enabled], disabled: [...nodeToggles.disabled] },
    ...subgroupInfo(adapter.info),
  };
}

export function requireGpuFromEnv(): boolean {
  return settings.requireGpu;
}

/**
 * What `--device auto` takes given the adapter found (or the error met): WebGPU on a hardware
 * adapter, the CPU path otherwise. CONCORD_REQUIRE_GPU=1 makes a software adapter acceptable and
 * a missing one an error. Pure, so `doctor` can report it without choosing anything.
 */
export function autoDecision(gpu: GpuHandle | null, error?: string): { backend: 'webgpu' | 'cpu'; reason: string } {
  if (!gpu) return { backend: 'cpu', reason: `auto: ${error ?? 'no WebGPU adapter'}; using the CPU path` };
  const name = adapterName(gpu);
  if (gpu.info.software && !requireGpuFromEnv()) {
    return { backend: 'cpu', reason: `auto: only a software adapter (${name}); using the CPU path (force it with --device webgpu)` };
  }
  return { backend: 'webgpu', reason: `auto: ${gpu.info.software ? 'software' : 'hardware'} adapter ${name}` };
}

export const adapterName = (gpu: GpuHandle): string =>
  `${gpu.info.description || gpu.info.device} (${gpu.info.vendor}/${gpu.info.architecture})`;

/**
 * Resolve `--device auto|webgpu|cpu`. `auto` takes WebGPU on a hardware adapter and the CPU path
 * otherwise; `webgpu` takes WebGPU even on a software adapter. With CONCORD_REQUIRE_GPU=1 a missing
 * adapter is an error. The reason is always returned so callers can print it.
 */
export async function chooseBackend(choice: DeviceChoice): Promise<BackendDecision> {
  if (choice === 'cpu' || choice === 'cpu-twin') return { backend: 'cpu', gpu: null, reason: `--device ${choice}: CPU path chosen explicitly` };
  // auto on a Linux machine with no GPU device node can only find a software adapter, which auto
  // would not take: decide without starting dawn.node (and its warnings on stderr).
  if (choice === 'auto' && isNode && process.platform === 'linux' && !requireGpuFromEnv() && !settings.gpu &&
    !process.env.VK_ICD_FILENAMES && !process.env.VK_DRIVER_FILES && !hasHardwareGpu(await import('node:fs'))) {
    return { backend: 'cpu', gpu: null, reason: 'auto: no hardware GPU (no /dev/nvidia*, /dev/dri/renderD*); using the CPU path (--device webgpu takes a software adapter)' };
  }
  let gpu: GpuHandle;
  try {
    gpu = await requestGpu();
  } catch (e) {
    if (e instanceof UsageError) throw e; // a bad CONCORD_DAWN_* setting is the user's to fix, not a reason for the CPU
    const msg = (e as Error).message;
    const sel = isNode && settings.gpu ? ` --gpu ${settings.gpu}` : '';
    if (choice === 'webgpu' || requireGpuFromEnv() || sel) throw new GpuUnavailableError(`--device ${choice}${sel}: ${msg}`);
    return { gpu: null, ...autoDecision(null, msg) };
  }
  if (choice === 'webgpu') {
    return { backend: 'webgpu', gpu, reason: `--device webgpu: ${adapterName(gpu)}${gpu.info.software ? ' [software adapter]' : ''}` };
  }
  const d = autoDecision(gpu);
  if (d.backend === 'cpu') gpu.device.destroy();
  return { ...d, gpu: d.backend === 'webgpu' ? gpu : null };
}
