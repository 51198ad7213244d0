// `concord generate`: responses for instructions (forward) or instructions for responses
// (reverse), through the model's Decoder (src/generate/): a file job (src/generate/job.ts) or one
// prompt (--prompt).

import { generate } from '../generate/engine.js';
import { generateFile } from '../generate/job.js';
import { promptBuilder, type Direction } from '../generate/prompts.js';
import type { SamplingParams } from '../generate/types.js';
import { loadModel, type LoadedLanguageModel } from '../models/index.js';
import { withGgufFile } from '../models/load.js';
import { resolveChatTemplate } from '../pipeline/chat-template.js';
import { errorsPathFor } from '../jobs/bad-records.js';
import { lockOutputs } from '../jobs/locks.js';
import { preflightPaths } from '../jobs/preflight.js';
import { encodeStandalone } from '../pipeline/templates.js';
import type { DeviceChoice } from '../gpu/device.js';
import { choiceFlag, command, deviceFlag, EXIT, loadProgressPrinter, log, numFlag, parseFlags, unescapeCli, UsageError } from './common.js';

export const GENERATE_HELP = `concord generate <in.jsonl|json|parquet…> -o out.jsonl [options]
concord generate --prompt "…" [options] [--json]

For each record, generate the response from the instruction (--direction forward, the default) or
the instruction from the response (--direction reverse: backtranslation). The prompt is the
scorer's context: [BOS] + the forward template up to {y} (reverse: the reverse template up to {x}),
or the model's chat template (roles swapped in reverse). Output: one line per record and sample, in
input order, the record's fields with the generated text in the output field (forward) or the
instruction field (reverse; a replaced value is kept as original_<field>), generated_tokens,
finish_reason (eos | stop | length) and sample (with --num-samples > 1). Bad records go to
<out>.errors.jsonl. --prompt: the text as is after BOS (no template); prints the text (--json: the
text, the token ids and the finish reason).

  --model <path|id|default>   default: stories15M
  --revision R  --gguf-file NAME   as in score (a Hub id's branch/tag/commit; one GGUF file of its repo)
  --device auto|webgpu|cpu|cpu-twin   (default auto; a backend that cannot decode yet falls back to
                              cpu-twin with auto, and is an error when named)
  --direction forward|reverse
  --num-samples K             samples per record (default 1, at most 1024)
  --max-new-tokens N          (default 128)
  --temperature T             0 = greedy (default 1)
  --top-k K                   0 = off (default)
  --top-p P                   1 = off (default)
  --min-p P                   0 = off (default)
  --seed S                    uint32 (default 0); sample j of record i uses seed S + i·K + j
  --stop TEXT                 stop string (repeatable; \\n \\t \\\\ escapes); EOS always stops
  --forward-template T  --reverse-template T  --chat-template auto|none|F  --system TEXT   (as in score)
  --instruction-field F  --input-field F  --output-field F
  --slots N                   sequences decoded together (default 8)
  --max-len N                 prompt + generated tokens per sequence (default: the model's maxLen)
  --errors F                  bad records (default <out>.errors.jsonl)
  --resume                    go on from the checkpoint of an interrupted run
  --checkpoint-every N        records between checkpoints (default 64; also every 5 s)
  --quiet                     no progress lines
  --json                      (--prompt) print JSON`;

const OPTIONS = {
  output: { type: 'string', short: 'o' }, model: { type: 'string' }, revision: { type: 'string' }, 'gguf-file': { type: 'string' }, device: { type: 'string' },
  direction: { type: 'string' }, 'num-samples': { type: 'string' }, 'max-new-tokens': { type: 'string' },
  temperature: { type: 'string' }, 'top-k': { type: 'string' }, 'top-p': { type: 'string' }, 'min-p': { type: 'string' },
  seed: { type: 'string' }, stop: { type: 'string', multiple: true }, prompt: { type: 'string' },
  'forward-template': { type: 'string' }, 'reverse-template': { type: 'string' }, 'chat-template': { type: 'string' }, system: { type: 'string' },
  'instruction-field': { type: 'string' }, 'input-field': { type: 'string' }, 'output-field': { type: 'string' },
  slots: { type: 'string' }, 'max-len': { type: 'string' }, errors: { type: 'string' }, 'checkpoint-every': { type: 'string' }, resume: { type: 'boolean' }, quiet: { type: 'boolean' }, json: { type: 'boolean' },
} as const;

/** The model, on a backend that decodes: with --device auto, the twin when the chosen one cannot yet. */
async function decodingModel(path: string, device: DeviceChoice, revision: string | undefined): Promise<LoadedLanguageModel> {
  const lm = await loadModel(path, { device, revision, onProgress: loadProgressPrinter() });
  if (lm.createDecoder) return lm;
  const why = `${lm.deviceName} cannot decode yet`;
  lm.dispose();
  if (device !== 'auto') throw new UsageError(`--device ${device}: ${why}; use --device cpu-twin`);
  log(`concord generate: ${why}; using the TypeScript twin (--device cpu-twin)`);
  return loadModel(path, { device: 'cpu-twin', revision });
}

/** The most samples per record --num-samples (and synthesize's --num-candidates) may ask for: each is a full generation. */
export const MAX_SAMPLES = 1024;

/** --stop values, unescaped; an empty one is a usage error (it would match before any text). */
export function stopFlag(values: string[] | undefined): string[] {
  const stop = (values ?? []).map(unescapeCli);
  if (stop.some((x) => x === '')) throw new UsageError('--stop needs a non-empty string (an empty one would match before any text)');
  return stop;
}

export const generateCommand = command('generate', GENERATE_HELP, async (argv, defer) => {
  const { values: v, positionals } = parseFlags(argv, OPTIONS, true);
  if (positionals.length > 1) throw new UsageError(`one input file, got ${positionals.length}`);
  const input = positionals[0];
  if (input === undefined && v.prompt === undefined) throw new UsageError('give an input file (with -o) or --prompt');
  if (input !== undefined && v.prompt !== undefined) throw new UsageError('give an input file or --prompt, not both');
  if (input !== undefined && !v.output) throw new UsageError('-o OUT is required with an input file');
  const direction: Direction = choiceFlag(v.direction ?? 'forward', '--direction', ['forward', 'reverse'] as const);
  const sampling: SamplingParams = {
    temperature: numFlag(v.temperature, '--temperature', { min: 0 }) ?? 1,
    topK: numFlag(v['top-k'], '--top-k', { int: true, min: 0 }) ?? 0,
    topP: numFlag(v['top-p'], '--top-p', { min: 0, max: 1 }) ?? 1,
    minP: numFlag(v['min-p'], '--min-p', { min: 0, max: 1 }) ?? 0,
    seed: numFlag(v.seed, '--seed', { int: true, min: 0, max: 0xffffffff }) ?? 0,
  };
  if (sampling.topP === 0) throw new UsageError('--top-p must be above 0 (1 = off)');
  const k = numFlag(v['num-samples'], '--num-samples', { int: true, min: 1, max: MAX_SAMPLES }) ?? 1;
  const maxNewTokens = numFlag(v['max-new-tokens'], '--max-new-tokens', { int: true, min: 0 }) ?? 128;
  const slots = numFlag(v.slots, '--slots', { int: true, min: 1 }) ?? 8;
  const stop = stopFlag(v.stop);
  const device = deviceFlag(v.device);
  const errorsPath = v.errors ?? (v.output ? errorsPathFor(v.output) : '');
  if (input !== undefined) defer(lockOutputs(preflightPaths({ input, output: v.output, errors: errorsPath }).outputs));

  const lm = await decodingModel(withGgufFile(v.model, v['gguf-file']) ?? 'default', device, v.revision);
  defer(() => lm.dispose());
  const maxLen = numFlag(v['max-len'], '--max-len', { int: true, min: 2, max: lm.maxLen }) ?? lm.maxLen;
  if (!v.quiet) log(`concord generate: model ${lm.config.name} on ${lm.deviceName}${lm.deviceReason ? ` — ${lm.deviceReason}` : ''}`);

  if (v.prompt !== undefined) {
    const tok = lm.tokenizer;
    const start = tok.bosId ?? tok.eosId;
    if (start === null) throw new UsageError(`${lm.config.name}: no BOS/EOS token to start the sequence with`);
    const prompt = [start, ...encodeStandalone(tok, unescapeCli(v.prompt))];
    const decoder = await lm.createDecoder!({ slots: Math.min(slots, k), maxLen });
    const reqs = Array.from({ length: k }, (_, j) => ({ prompt, sampling: { ...sampling, seed: (sampling.seed + j) >>> 0 }, maxNewTokens, stopIds: tok.eosId !== null ? [tok.eosId] : [], stopStrings: stop }));
    const { results } = await generate(decoder, reqs, { decode: (ids) => tok.decode(ids) });
    decoder.dispose();
    const bad = results.find((r) => r.error);
    if (bad) throw new UsageError(`--prompt: ${bad.error}`);
    if (v.json) {
      const rows = results.map((r) => ({ text: r.text, ids: r.ids, generated_tokens: r.generated_tokens, finish_reason: r.finish_reason }));
      console.log(JSON.stringify({ model: lm.config.name, device: lm.deviceName, prompt_ids: prompt, ...(k === 1 ? rows[0] : { samples: rows }) }, null, 2));
    } else for (const r of results) console.log(r.text);
    return EXIT.ok;
  }

  const chatSpec = v['chat-template'] ?? (v.system !== undefined ? 'auto' : 'none');
  const chat = resolveChatTemplate(chatSpec, lm.tokenizer, { model: lm.config.name, system: v.system !== undefined ? unescapeCli(v.system) : undefined });
  const template = direction === 'forward' ? v['forward-template'] : v['reverse-template'];
  const builder = promptBuilder(lm.tokenizer, { direction, template: template !== undefined ? unescapeCli(template) : undefined, chat: chat.format });
  if (!v.quiet) log(`concord generate: ${direction}, template ${JSON.stringify(builder.template)}; ${chat.note}`);
  const fields = { instruction: v['instruction-field'], input: v['input-field'], output: v['output-field'] };
  const t0 = Date.now();
  const s = await generateFile({
    input: input!, output: v.output!, errorsPath, lm, builder, sampling, numSamples: k, maxNewTokens, stop, slots, maxLen, resume: v.resume,
    checkpointEvery: numFlag(v['checkpoint-every'], '--checkpoint-every', { int: true, min: 1 }),
    fields: Object.fromEntries(Object.entries(fields).filter(([, x]) => x !== undefined)),
    optionsKey: { model: lm.config.name, weights: lm.weights.config, direction, template: builder.template },
    onRecord: v.quiet ? undefined : (n) => { if (n % 50 === 0) log(`concord generate: ${n} records`); },
  });
  const secs = (Date.now() - t0) / 1000;
  if (!v.quiet) {
    log(`concord generate: ${s.records} records${s.resumedFrom ? ` (resumed after ${s.resumedFrom})` : ''}, ${s.samples} samples, ${s.generatedTokens} tokens in ${secs.toFixed(1)} s; ` +
      `finish: eos ${s.finish.eos}, stop ${s.finish.stop}, length ${s.finish.length}; ${s.errors} errors${s.errors ? ` → ${errorsPath}` : ''}`);
  }
  return EXIT.ok;
});
