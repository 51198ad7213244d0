// The `concord` command line: it only dispatches. Each command lives in its own file and returns
// an exit code (src/cli/common.ts: the codes, the flag parsers, the one error → exit mapping;
// docs/cli.md "Exit codes").

import { benchCommand } from './bench.js';
import { EXIT, log, type Command } from './common.js';
import { dedupCommand } from './dedup.js';
import { demoCommand } from './demo.js';
import { doctorCommand } from './doctor.js';
import { downloadCommand } from './download.js';
import { embedCommand } from './embed.js';
import { evalCommand } from './eval.js';
import { filterCommand } from './filter.js';
import { generateCommand } from './generate.js';
import { logprobCommand } from './logprob.js';
import { mergeCommand } from './merge.js';
import { quantizeCommand } from './quantize.js';
import { reportCommand } from './report.js';
import { runCommand } from './run.js';
import { scoreCommand } from './score.js';
import { selectCommand } from './select.js';
import { synthesizeCommand } from './synthesize.js';
import { tuneCommand } from './tune.js';

export { EXIT } from './common.js';

const HELP = `concord — score and filter instruction–response pairs by mutual alignment (WGSL on WebGPU)

Usage:
  concord doctor [--json]                      runtime, adapter, features, toggles, subgroups, limits, --device auto's choice
  concord bench kernels [--json] [--size small|large] [--device auto|webgpu|cpu|both]
  concord bench profile [--json] [--model M] [--batch B] [--len L] [--f16]   per-kernel GPU time of one prefill, cost model
  concord logprob --model <path|id|default> [--revision R] --context "…" --target "…" [--device …] [--json]
  concord score <in.jsonl|json> -o scored.jsonl [options]      (concord score --help)
  concord filter <scored.jsonl> --rule main --keep-fraction 0.3 -o kept.jsonl [--drop-out dropped.jsonl]
  concord run <in.jsonl|json> -o kept.jsonl [score + filter options]
  concord generate <in.jsonl> -o out.jsonl [--direction forward|reverse] [--num-samples K]   (concord generate --help)
  concord synthesize <responses.jsonl> -o pairs.jsonl [--num-candidates K] [--seed-data SEED]   backtranslate + mutual filter
  concord merge <out-dir> -o scored.jsonl      join a sharded run's shards (concord merge --help)
  concord demo [--device …]                   score + filter the embedded sample (npm start)
  concord download <Org/Name[@rev]> [--gguf-file F]   fetch a Hub model into the Hugging Face cache now
  concord embed --model <path|minilm> --text "…" [--text "…"] [--json]
  concord dedup <in.jsonl> --threshold 0.95 -o unique.jsonl
  concord eval <scored.jsonl> --label FIELD [--positive V] [--json]   AUC, precision/recall per score and rule
  concord select <scored.jsonl> --budget N --diversity 0.9 -o selected.jsonl   best-first, diverse
  concord report <scored.jsonl> -o report.html [--group source] [--label F]   one self-contained page
  concord tune [--model M] [--dry-run] [--json]   validate + time every kernel variant, cache the winners
  concord quantize MODEL -o model.Q8_0.gguf [--type q8_0|q4_0|q4_k|q4_k_m|f16]   write a (quantized) GGUF file

Devices: --device auto (default) takes WebGPU on a hardware adapter and the CPU path otherwise;
--device webgpu forces WebGPU even on a software adapter (SwiftShader, lavapipe); --device cpu
takes the CPU path (onnxruntime's native kernels); --device cpu-twin the CPU path on the TypeScript
twin (the reference). The choice and its reason are always printed.
Every command takes --help.`;

/** Every command, by name (tests/cli-usage.test.ts checks each one's usage errors). */
export const COMMANDS: Record<string, Command> = {
  doctor: doctorCommand,
  bench: benchCommand,
  logprob: logprobCommand,
  score: scoreCommand,
  filter: filterCommand,
  run: runCommand,
  merge: mergeCommand,
  demo: demoCommand,
  download: downloadCommand,
  embed: embedCommand,
  dedup: dedupCommand,
  eval: evalCommand,
  select: selectCommand,
  report: reportCommand,
  tune: tuneCommand,
  generate: generateCommand,
  quantize: quantizeCommand,
  synthesize: synthesizeCommand,
};

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    console.log(HELP);
    return cmd ? EXIT.ok : EXIT.usage;
  }
  const run = COMMANDS[cmd];
  if (!run) {
    log(`concord: unknown command '${cmd}'\n\n${HELP}`);
    return EXIT.usage;
  }
  return run(rest);
}
