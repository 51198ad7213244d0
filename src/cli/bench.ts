// `concord bench kernels`: every kernel variant validated against its CPU twin, then timed.

import { chooseBackend } from '../gpu/device.js';
import { GpuRuntime } from '../gpu/runtime.js';
import { choiceFlag, command, EXIT, log, parseFlags, UsageError } from './common.js';

export const BENCH_HELP = `concord bench kernels [--json] [--size small|large] [--device auto|webgpu|cpu|both]

Every kernel and variant is checked against its CPU twin, then timed (GFLOP/s or GB/s).
  --size small|large    small fits software adapters (default); large is for real GPUs
  --device D            auto, webgpu, cpu, or both (default: webgpu + cpu; both and webgpu take
                        the adapter even when it is a software one)
  --json                the results as JSON
Exit code 4 when a kernel fails validation.`;

export const benchCommand = command('bench', BENCH_HELP, async (argv) => {
  const [what, ...rest] = argv;
  if (what !== 'kernels') throw new UsageError(what ? `unknown benchmark '${what}' (try: concord bench kernels)` : 'which benchmark? (concord bench kernels)');
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
