// Getting a GPUDevice anywhere: the browser's navigator.gpu, or dawn.node (npm `webgpu`) in Node.
//
// In Node, with no hardware Vulkan driver, we point the Vulkan loader at a software driver
// ourselves (a Mesa lavapipe >= 24 ICD when installed, else Chromium's SwiftShader) and say so.
// This must happen before dawn.node's create(), because the loader reads the variable then.

import { settings } from '../env.js';
import { GpuUnavailableError } from '../errors.js';

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

export interface GpuHandle {
  device: GPUDevice;
  adapter: GPUAdapter;
  info: AdapterSummary;
  features: string[];
  runtime: 'node-dawn' | 'browser';
  /** How the Vulkan driver was chosen (Node only), for `doctor` and logs. */
  driverNote: string;
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
  // carries dawn.node alone). CONCORD_DAWN_FLAGS: dawn.node create() flags, space-separated, e.g.
  // 'enable-dawn-features=allow_unsafe_apis,vulkan_enable_f16_on_nvidia'.
  // A variable module name keeps browser bundlers from trying to resolve the native addon.
  const modName = 'webgpu';
  type DawnModule = { create: (o: string[]) => GPU; globals: object };
  const dawnPath = settings.dawnNode;
  const mod: DawnModule = dawnPath
    ? ((await import('node:module')).createRequire(import.meta.url)(dawnPath) as DawnModule)
    : ((await import(/* @vite-ignore */ modName)) as DawnModule);
  Object.assign(globalThis, mod.globals);
  // --gpu N|NAME (src/gpu/select.ts): dawn.node's adapter= flag, or Mesa's device-select layer.
  const flags: string[] = (settings.dawnFlags ?? '').split(/\s+/).filter(Boolean);
  if (settings.gpu) {
    const { selectGpu } = await import('./select.js');
    const sel = selectGpu(settings.gpu);
    Object.assign(process.env, sel.env);
    flags.push(...sel.flags);
    nodeDriverNote += `; ${sel.note}`;
  }
  nodeGpu = mod.create(flags);
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

const OPTIONAL_FEATURES: GPUFeatureName[] = ['shader-f16', 'timestamp-query', 'subgroups'];

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
  const requiredFeatures = OPTIONAL_FEATURES.filter((f) => adapter.features.has(f));
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
