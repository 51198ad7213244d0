// `concord bench kernels`: every kernel variant validated against its CPU twin, then timed.

import { chooseBackend } from '../gpu/device.js';
import { GpuRuntime } from '../gpu/runtime.js';
import { choiceFlag, command, EXIT, log, parseFlags, UsageError } from './common.js';

export const BENCH_HELP = `concord bench kernels [--json] [--size small|large] [--device auto|webgpu|cpu|both]
concord bench profile [--json] [--model M] [--batch B] [--len L] [--f16]

kernels: every kernel and variant is checked against its CPU twin, then timed; each case shows
achieved GFLOP/s and GB/s from the cost model (bench/cost.ts), and on an adapter in its peak
table the % of the applicable peak and the bound (compute or memory); else "peak unknown".
  --size small|large    small fits software adapters (default); large is for real GPUs
  --device D            auto, webgpu, cpu, or both (default: webgpu + cpu; both and webgpu take
                        the adapter even when it is a software one)
  --json                the results as JSON
profile: one prefill batch (default model, B 4, L 48) validated against the CPU twin, then
profiled with timestamp queries: GPU time per kernel, and per kernel class and for the whole
prefill the cost model's FLOPs, bytes, achieved rates, % of peak and bound (WebGPU, any adapter).
Exit code 4 when a kernel fails validation.`;

export const benchCommand = command('bench', BENCH_HELP, async (argv) => {
  const [what, ...rest] = argv;
  if (what === 'profile') return profileCommand(rest);
  if (what !== 'kernels') throw new UsageError(what ? `unknown benchmark '${what}' (try: concord bench kernels, concord bench profile)` : 'which benchmark? (concord bench kernels, concord bench profile)');
  const { values } = parseFlags(rest, { json: { type: 'boolean' }, size: { type: 'string' }, device: { type: 'string' } });
  const size = choiceFlag(values.size ?? 'small', '--size', ['small', 'large'] as const);
  const dev = choiceFlag(values.device ?? 'both', '--device', ['auto', 'webgpu', 'cpu', 'both'] as const);
  const devices: ('webgpu' | 'cpu')[] = dev === 'both' ? ['webgpu', 'cpu'] : [dev === 'cpu' ? 'cpu' : 'webgpu'];
  let rt: GpuRuntime | null = null;
  if (devices.includes('webgpu')) {
    // A kernel benchmark is about the WGSL: take the adapter even when it is a software one.
    const d = await chooseBackend(dev === 'both' ? 'webgpu' : dev);
    log(`concord: ${d.reason}`);
    if (d.gpu) rt = new GpuRuntime(d.gpu);
  }
  const { runKernelBench } = await import('../../bench/kernels.js');
  const results = await runKernelBench({ size, devices, rt, log: values.json ? undefined : (l) => console.log(l) });
  if (values.json) console.log(JSON.stringify(results, null, 2));
  rt?.destroy();
  return results.every((r) => r.validated) ? EXIT.ok : EXIT.verifyFailed;
});

async function profileCommand(argv: string[]): Promise<number> {
  const { values } = parseFlags(argv, { json: { type: 'boolean' }, model: { type: 'string' }, batch: { type: 'string' }, len: { type: 'string' }, f16: { type: 'boolean' } });
  const int = (v: string | undefined, name: string, def: number) => {
    if (v === undefined) return def;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new UsageError(`${name} must be a positive integer (got '${v}')`);
    return n;
  };
  const batch = int(values.batch, '--batch', 4), len = int(values.len, '--len', 48);
  const d = await chooseBackend('webgpu');
  log(`concord: ${d.reason}`);
  const rt = new GpuRuntime(d.gpu!);
  try {
    const { runProfile } = await import('../../bench/profile.js');
    const r = await runProfile({ model: values.model ?? 'default', batch, len, f16: values.f16 ?? false, rt, log: values.json ? (l) => log(l) : (l) => console.log(l) });
    if (values.json) console.log(JSON.stringify(r, null, 2));
    return r.validatedMaxAbsErr <= 1e-3 ? EXIT.ok : EXIT.verifyFailed;
  } finally {
    rt.destroy();
  }
}
