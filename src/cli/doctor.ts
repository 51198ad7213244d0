// `concord doctor [--json]`: what runtime, adapter, features and limits concord sees, and what
// `--device auto` would choose here.

import { autoDecision, DawnToggles, GpuHandle, requestGpu, SubgroupMatrixConfig } from '../gpu/device.js';
import { command, EXIT, parseFlags } from './common.js';

const KEY_LIMITS = [
  'maxBufferSize', 'maxStorageBufferBindingSize', 'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup', 'maxComputeWorkgroupSizeX', 'maxComputeWorkgroupsPerDimension',
  'maxStorageBuffersPerShaderStage',
] as const;

export interface DoctorReport {
  runtime: { name: string; version: string; platform: string; webgpuPackage: string | null };
  driver: string;
  adapter: GpuHandle['info'] | null;
  adapterError: string | null;
  features: string[];
  limits: Record<string, number>;
  /** The Dawn toggles in force (Node); null without an adapter. */
  toggles: DawnToggles | null;
  subgroupMinSize: number | null;
  subgroupMaxSize: number | null;
  subgroupMatrixConfigs: SubgroupMatrixConfig[];
  auto: { backend: 'webgpu' | 'cpu'; reason: string };
}

async function webgpuPackageVersion(): Promise<string | null> {
  try {
    const { createRequire } = await import('node:module');
    const req = createRequire(import.meta.url);
    return (req('webgpu/package.json') as { version: string }).version;
  } catch {
    return null;
  }
}

export async function doctorReport(): Promise<DoctorReport> {
  let gpu: GpuHandle | null = null;
  let err: string | null = null;
  try {
    gpu = await requestGpu();
  } catch (e) {
    err = (e as Error).message;
  }
  const limits: Record<string, number> = {};
  if (gpu) for (const k of KEY_LIMITS) limits[k] = gpu.device.limits[k];
  const report: DoctorReport = {
    runtime: { name: 'node', version: process.version, platform: `${process.platform}-${process.arch}`, webgpuPackage: await webgpuPackageVersion() },
    driver: gpu?.driverNote ?? '',
    adapter: gpu?.info ?? null,
    adapterError: err,
    features: gpu?.features ?? [],
    limits,
    toggles: gpu?.toggles ?? null,
    subgroupMinSize: gpu?.subgroupMinSize ?? null,
    subgroupMaxSize: gpu?.subgroupMaxSize ?? null,
    subgroupMatrixConfigs: gpu?.subgroupMatrixConfigs ?? [],
    auto: autoDecision(gpu, err ?? undefined),
  };
  gpu?.device.destroy();
  return report;
}

export function formatDoctor(r: DoctorReport): string {
  const lines = [
    `runtime   ${r.runtime.name} ${r.runtime.version} (${r.runtime.platform}), webgpu (dawn.node) ${r.runtime.webgpuPackage ?? 'not installed'}`,
    `driver    ${r.driver || '-'}`,
  ];
  if (r.adapter) {
    const a = r.adapter;
    lines.push(
      `adapter   ${a.description || a.device} — vendor ${a.vendor}, architecture ${a.architecture}, device ${a.device}`,
      `          isFallbackAdapter ${a.isFallbackAdapter}, software ${a.software}`,
      `features  ${r.features.join(', ')}`,
      `toggles   ${formatToggles(r.toggles)}`,
      `subgroups ${r.subgroupMinSize === null ? 'size unknown' : `size ${r.subgroupMinSize}–${r.subgroupMaxSize}`}`,
      `subgroup matrix ${formatMatrixConfigs(r.subgroupMatrixConfigs)}`,
      'limits',
      ...Object.entries(r.limits).map(([k, v]) => `  ${k.padEnd(36)} ${v.toLocaleString('en-US')}`),
    );
  } else {
    lines.push(`adapter   none: ${r.adapterError}`);
  }
  lines.push(`--device auto → ${r.auto.backend}: ${r.auto.reason}`);
  return lines.join('\n');
}

function formatToggles(t: DawnToggles | null): string {
  if (!t || (!t.enabled.length && !t.disabled.length)) return 'none (browser, or all turned off)';
  return [`enabled ${t.enabled.join(', ') || 'none'}`, `disabled ${t.disabled.join(', ') || 'none'}`].join('; ');
}

/** 'none', or e.g. 'f16→f32 8×8×8, f16→f16 16×16×16' (M×N×K). */
export function formatMatrixConfigs(configs: SubgroupMatrixConfig[]): string {
  if (!configs.length) return 'none';
  return configs.map((c) => `${c.componentType}→${c.resultComponentType} ${c.M}×${c.N}×${c.K}`).join(', ');
}

export const DOCTOR_HELP = `concord doctor [--json]

What runtime, adapter, features, Dawn toggles, subgroup sizes, subgroup-matrix configurations and
limits concord sees, and what --device auto would choose.
  --json    the same as JSON`;

export const doctorCommand = command('doctor', DOCTOR_HELP, async (argv) => {
  const { values } = parseFlags(argv, { json: { type: 'boolean' } });
  const report = await doctorReport();
  console.log(values.json ? JSON.stringify(report, null, 2) : formatDoctor(report));
  return EXIT.ok;
});
