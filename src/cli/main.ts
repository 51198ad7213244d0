// The `concord` command line. Each subcommand parses its own flags (node:util parseArgs) and
// returns an exit code; see README "Exit codes".

import { parseArgs } from 'node:util';
import { chooseBackend, parseDeviceChoice } from '../gpu/device.js';
import { GpuRuntime } from '../gpu/runtime.js';
import { doctorReport, formatDoctor } from './doctor.js';
import { pipelineCommands } from './commands.js';
import { dedupCommand, embedCommand } from '../embed/cli.js';
import { mergeCommand } from './merge.js';

// 0 ok; 1 unexpected failure; 2 usage (bad flags, templates, filter options); 3 input errors that
// stop the run (--strict, an unreadable input file or JSON array); 4 --verify above tolerance (or a
// kernel benchmark failing validation); 5 no GPU where one was required; 6 --resume impossible (the
// input or the scoring options changed since the checkpoint). Non-strict runs with bad records
// exit 0 and list them in the errors file. An interrupted score/run exits 130 (SIGINT) or 143
// (SIGTERM) after pointing at --resume.
export const EXIT = { ok: 0, failure: 1, usage: 2, inputErrors: 3, verifyFailed: 4, noGpu: 5, resumeMismatch: 6 } as const;

const HELP = `concord — score and filter instruction–response pairs by mutual alignment (WGSL on WebGPU)

Usage:
  concord doctor [--json]                      runtime, adapter, features, limits, --device auto's choice
  concord bench kernels [--json] [--size small|large] [--device auto|webgpu|cpu|both]
  concord logprob --model <path|default> --context "…" --target "…" [--device …] [--json]
  concord score <in.jsonl|json> -o scored.jsonl [options]      (concord score --help)
  concord filter <scored.jsonl> --rule main --keep-fraction 0.3 -o kept.jsonl [--drop-out dropped.jsonl]
  concord run <in.jsonl|json> -o kept.jsonl [score + filter options]
  concord demo [--device …]                   score + filter the embedded sample (npm start)
  concord embed --model <path|minilm> --text "…" [--text "…"] [--json]
  concord dedup <in.jsonl> --threshold 0.95 -o unique.jsonl
  concord merge <out-dir> -o scored.jsonl      join a sharded run's shards (concord merge --help)

Devices: --device auto (default) takes WebGPU on a hardware adapter and the CPU path otherwise;
--device webgpu forces WebGPU even on a software adapter (SwiftShader, lavapipe); --device cpu
takes the CPU path. The choice and its reason are always printed.`;

export type Command = (argv: string[]) => Promise<number>;

const commands: Record<string, Command> = {
  ...pipelineCommands,
  embed: embedCommand,
  dedup: dedupCommand,
  merge: mergeCommand,
  async doctor(argv) {
    const { values } = parseArgs({ args: argv, options: { json: { type: 'boolean', default: false } } });
    const report = await doctorReport();
    console.log(values.json ? JSON.stringify(report, null, 2) : formatDoctor(report));
    return EXIT.ok;
  },

  async bench(argv) {
    const [what, ...rest] = argv;
    if (what !== 'kernels') {
      console.error(`concord bench: unknown benchmark '${what ?? ''}' (try: concord bench kernels)`);
      return EXIT.usage;
    }
    const { values } = parseArgs({
      args: rest,
      options: {
        json: { type: 'boolean', default: false },
        size: { type: 'string', default: 'small' },
        device: { type: 'string', default: 'both' },
      },
    });
    if (values.size !== 'small' && values.size !== 'large') throw new UsageError('--size must be small or large');
    const devices: ('webgpu' | 'cpu')[] = values.device === 'both' ? ['webgpu', 'cpu'] : [values.device === 'cpu' ? 'cpu' : 'webgpu'];
    let rt: GpuRuntime | null = null;
    if (devices.includes('webgpu')) {
      // A kernel benchmark is about the WGSL: take the adapter even when it is a software one.
      const d = await chooseBackend(values.device === 'both' ? 'webgpu' : parseDeviceChoice(values.device));
      console.error(`concord: ${d.reason}`);
      if (d.gpu) rt = new GpuRuntime(d.gpu);
    }
    const { runKernelBench } = await import('../../bench/kernels.js');
    const results = await runKernelBench({ size: values.size, devices, rt, log: values.json ? undefined : (l) => console.log(l) });
    if (values.json) console.log(JSON.stringify(results, null, 2));
    rt?.destroy();
    return results.every((r) => r.validated) ? EXIT.ok : EXIT.verifyFailed;
  },
};

export class UsageError extends Error {}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    console.log(HELP);
    return cmd ? EXIT.ok : EXIT.usage;
  }
  const run = commands[cmd];
  if (!run) {
    console.error(`concord: unknown command '${cmd}'\n\n${HELP}`);
    return EXIT.usage;
  }
  try {
    return await run(rest);
  } catch (e) {
    const err = e as Error & { code?: string };
    if (err instanceof UsageError || err.code?.startsWith('ERR_PARSE_ARGS')) {
      console.error(`concord ${cmd}: ${err.message}`);
      return EXIT.usage;
    }
    if (err.name === 'GpuUnavailableError' || err.constructor?.name === 'GpuUnavailableError') {
      console.error(`concord ${cmd}: ${err.message}`);
      return EXIT.noGpu;
    }
    console.error(`concord ${cmd}: ${err.stack ?? err.message}`);
    return EXIT.failure;
  }
}
