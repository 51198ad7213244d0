// `--gpu N|NAME` (CONCORD_GPU): which Vulkan adapter dawn.node takes on a host with several GPUs.
//
// How dawn.node chooses (google/dawn src/dawn/node/binding/GPU.cpp, GPU::requestAdapter): it
// enumerates the adapters of one backend (Vulkan on Linux; `backend=` flag or DAWNNODE_BACKEND
// overrides) in the order the Vulkan loader returns the physical devices, then takes the FIRST one
// whose AdapterInfo.device (the Vulkan deviceName) contains the `adapter=` flag's text (any adapter
// when the flag is absent). The flags are the strings given to `create([...])`, `key=value` each
// (src/dawn/node/Module.cpp). A non-matching name fails with "no adapter with name … found" and the
// list of available adapters. There is no index flag, and several GPUs of one model share a name,
// so a name cannot tell them apart. Vulkan ignores CUDA_VISIBLE_DEVICES.
//
// So:
//  - `--gpu NAME` passes `adapter=NAME` (a substring of the device name, e.g. "A100", "llvmpipe").
//  - `--gpu N` (0-based, PCI bus order — nvidia-smi's default order) finds the N-th display
//    controller in /sys/bus/pci/devices and asks Mesa's device-select Vulkan layer (an implicit
//    layer shipped with mesa-vulkan-drivers; it reorders the physical devices for every ICD,
//    NVIDIA's included, using VK_EXT_pci_bus_info) to put that device first and expose only it:
//    DRI_PRIME=pci-DDDD_BB_DD_F and MESA_VK_DEVICE_SELECT_FORCE_DEFAULT_DEVICE=1. Without that
//    layer an index cannot be honoured and concord says so instead of guessing.
//  - The job engine can confine the process instead (Slurm --gres=gpu:1 with ConstrainDevices=yes,
//    Kubernetes `nvidia.com/gpu: 1`, `docker run --gpus device=N`): then only one GPU is visible
//    and no --gpu is needed. In containers the NVIDIA Vulkan ICD is only mounted when
//    NVIDIA_DRIVER_CAPABILITIES includes `graphics` (or is `all`).

import * as fs from 'node:fs';
import * as path from 'node:path';

export class GpuSelectError extends Error {
  override name = 'GpuUnavailableError';
}

export interface PciGpu { address: string; vendor: string; device: string; driver: string | null }

/** Display controllers (PCI class 0x03xxxx) in bus-address order. */
export function pciGpus(root = '/sys/bus/pci/devices'): PciGpu[] {
  let names: string[] = [];
  try { names = fs.readdirSync(root); } catch { return []; }
  const read = (d: string, f: string) => { try { return fs.readFileSync(path.join(root, d, f), 'utf8').trim(); } catch { return ''; } };
  const out: PciGpu[] = [];
  for (const d of names.sort()) {
    if (!read(d, 'class').startsWith('0x03')) continue;
    let driver: string | null = null;
    try { driver = path.basename(fs.readlinkSync(path.join(root, d, 'driver'))); } catch { /* unbound */ }
    out.push({ address: d, vendor: read(d, 'vendor'), device: read(d, 'device'), driver });
  }
  return out;
}

const LAYER_DIRS = ['/usr/share/vulkan/implicit_layer.d', '/etc/vulkan/implicit_layer.d', '/usr/local/share/vulkan/implicit_layer.d'];

export function mesaDeviceSelectLayer(dirs = LAYER_DIRS): string | null {
  for (const dir of dirs) {
    let names: string[] = [];
    try { names = fs.readdirSync(dir); } catch { continue; }
    const f = names.find((n) => /device_select/i.test(n));
    if (f) return path.join(dir, f);
  }
  return null;
}

/** `0000:41:00.0` → `pci-0000_41_00_0` (the form Mesa's device-select layer reads from DRI_PRIME). */
export const driPrimeTag = (address: string) => `pci-${address.replace(/[:.]/g, '_')}`;

export interface GpuSelection {
  /** Flags for dawn.node's create(). */
  flags: string[];
  /** Environment to set before create() (the Vulkan loader and layers read it then). */
  env: Record<string, string>;
  note: string;
}

export function selectGpu(spec: string, o: { gpus?: PciGpu[]; layer?: string | null } = {}): GpuSelection {
  const s = spec.trim();
  if (s === '') throw new GpuSelectError('--gpu: empty (give an index such as 0 or part of the adapter name)');
  if (!/^\d+$/.test(s)) {
    return { flags: [`adapter=${s}`], env: {}, note: `--gpu ${s}: the first Vulkan adapter whose name contains '${s}' (dawn.node adapter=)` };
  }
  const n = Number(s);
  const gpus = o.gpus ?? pciGpus();
  if (n >= gpus.length) {
    const list = gpus.map((g, k) => `${k}: ${g.address} ${g.vendor}:${g.device}${g.driver ? ` (${g.driver})` : ''}`).join(', ');
    throw new GpuSelectError(`--gpu ${n}: ${gpus.length} GPU${gpus.length === 1 ? '' : 's'} on the PCI bus${list ? ` (${list})` : ''}; a software adapter is picked by name (--gpu llvmpipe)`);
  }
  const layer = o.layer !== undefined ? o.layer : mesaDeviceSelectLayer();
  const g = gpus[n];
  if (!layer) {
    throw new GpuSelectError(
      `--gpu ${n}: picking a GPU by index needs Mesa's device-select Vulkan layer (apt-get install mesa-vulkan-drivers), ` +
      `because dawn.node only matches adapter names and GPUs of one model share a name; or confine the process to GPU ${g.address} ` +
      '(Slurm --gres=gpu:1 with ConstrainDevices, Kubernetes nvidia.com/gpu: 1, docker --gpus device=N) and drop --gpu',
    );
  }
  return {
    flags: [],
    env: { DRI_PRIME: driPrimeTag(g.address), MESA_VK_DEVICE_SELECT_FORCE_DEFAULT_DEVICE: '1' },
    note: `--gpu ${n}: PCI ${g.address} (${g.vendor}:${g.device}${g.driver ? `, ${g.driver}` : ''}) through Mesa's device-select layer (${layer})`,
  };
}
