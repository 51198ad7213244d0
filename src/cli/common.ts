// What every `concord` command shares: the exit codes, the one usage error, the flag parsers and
// the one error → exit code mapping. A command is `(argv) => Promise<exit code>`; wrap its body
// in `command(name, help, body)` and every failure becomes one line on stderr with its documented
// exit code (the stack only with CONCORD_DEBUG=1).

import { parseArgs, type ParseArgsConfig } from 'node:util';
import { checkSettings, settings } from '../env.js';
import { ConcordError, EXIT, UsageError } from '../errors.js';
import type { DeviceChoice } from '../gpu/device.js';
import type { LoadProgress } from '../models/weight-upload.js';

export { EXIT, UsageError };

export type Command = (argv: string[]) => Promise<number>;

export const log = (s: string): void => { process.stderr.write(`${s}\n`); };

/** 'loading weights: shard 2/4 (model-00002-of-00004.safetensors)  3.21 / 16.06 GB  20%' */
export function formatLoadProgress(p: LoadProgress): string {
  const [unit, scale] = p.bytesTotal >= 1e9 ? ['GB', 1e9] : ['MB', 1e6];
  const n = (b: number) => (b / scale).toFixed(2);
  const pct = p.bytesTotal ? Math.floor((100 * p.bytesDone) / p.bytesTotal) : 100;
  return `loading weights: shard ${p.shard}/${p.shards} (${p.file.split(/[\\/]/).pop()})  ${n(p.bytesDone)} / ${n(p.bytesTotal)} ${unit}  ${pct}%`;
}

/**
 * The model loader's progress callback for the CLI: one stderr line redrawn at most 10×/s, ended
 * when the last byte is in. Undefined (nothing printed) when the stream is not a terminal.
 */
export function loadProgressPrinter(stream: { isTTY?: boolean; write(s: string): unknown } = process.stderr): ((p: LoadProgress) => void) | undefined {
  if (!stream.isTTY) return undefined;
  let last = 0;
  return (p) => {
    const end = p.bytesDone >= p.bytesTotal, now = Date.now();
    if (!end && now - last < 100) return;
    last = now;
    stream.write(`\r\x1b[2K${formatLoadProgress(p)}${end ? '\n' : ''}`);
  };
}

type Options = NonNullable<ParseArgsConfig['options']>;
type Values<O extends Options> = { [K in keyof O]?: O[K]['type'] extends 'boolean' ? boolean : O[K] extends { multiple: true } ? string[] : string };

/** CONCORD_DRY_RUN=1: a command stops once its flags parse, with exit 0 (tests/docs.test.ts checks every command the docs show). */
class DryRun extends Error {}

/**
 * node:util parseArgs in strict mode, with its errors turned into one-line usage errors that name
 * the flag (an unknown flag, a string flag without a value, a value given to a boolean flag, a
 * positional argument where none is taken).
 */
export function parseFlags<O extends Options>(argv: string[], options: O, positionals = false): { values: Values<O>; positionals: string[] } {
  try {
    const r = parseArgs({ args: argv, options, allowPositionals: positionals, strict: true });
    if (settings.dryRun) throw new DryRun();
    return { values: r.values as Values<O>, positionals: r.positionals };
  } catch (e) {
    const err = e as Error & { code?: string };
    if (!err.code?.startsWith('ERR_PARSE_ARGS')) throw e;
    const flag = /'(-[^' ]+)/.exec(err.message)?.[1];
    const arg = /argument '([^']*)'/.exec(err.message)?.[1];
    switch (err.code) {
      case 'ERR_PARSE_ARGS_UNKNOWN_OPTION': throw new UsageError(`unknown flag ${flag ?? err.message}`);
      case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
        throw new UsageError(/does not take an argument/.test(err.message) ? `${flag} takes no value` : `${flag} needs a value`);
      case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL': throw new UsageError(`unexpected argument '${arg ?? err.message}'`);
      default: throw new UsageError(err.message.split('\n')[0]);
    }
  }
}

/** A number flag; undefined when absent, a usage error naming the flag when out of range. */
export function numFlag(v: string | undefined, name: string, o: { int?: boolean; min?: number; max?: number } = {}): number | undefined {
  if (v === undefined) return undefined;
  const n = v.trim() === '' ? NaN : Number(v);
  if (!Number.isFinite(n) || (o.int && !Number.isInteger(n)) || (o.min !== undefined && n < o.min) || (o.max !== undefined && n > o.max)) {
    const range = o.min !== undefined || o.max !== undefined ? ` in [${o.min ?? '-∞'}, ${o.max ?? '∞'}]` : '';
    throw new UsageError(`${name} must be ${o.int ? 'an integer' : 'a number'}${range} (got '${v}')`);
  }
  return n;
}

/** A flag with a fixed set of values. */
export function choiceFlag<C extends string>(v: string | undefined, name: string, choices: readonly C[]): C {
  if (v === undefined || !(choices as readonly string[]).includes(v)) {
    throw new UsageError(`${name} must be ${choices.slice(0, -1).join(', ')}${choices.length > 1 ? ' or ' : ''}${choices[choices.length - 1]} (got '${v ?? ''}')`);
  }
  return v as C;
}

export const deviceFlag = (v: string | undefined): DeviceChoice => choiceFlag(v ?? 'auto', '--device', ['auto', 'webgpu', 'cpu', 'cpu-twin'] as const);

/** Backslash escapes in template flags: \n, \t, \\ (so a shell can pass "{x}\n\n{y}"). */
export function unescapeCli(s: string): string {
  return s.replace(/\\([nt\\])/g, (_, c: string) => (c === 'n' ? '\n' : c === 't' ? '\t' : '\\'));
}

/** The one error → exit code mapping: one line on stderr, the stack only with CONCORD_DEBUG=1. */
export function exitCodeFor(e: unknown, cmd: string): number {
  const err = e instanceof Error ? e : new Error(String(e));
  const code = err instanceof ConcordError ? err.exitCode : EXIT.failure;
  const hint = err instanceof ConcordError && err.pointsAtHelp ? ` (concord ${cmd} --help)` : '';
  // Our own errors are worded for the user (a few, e.g. the list of adapters, span lines); anything
  // else shows its first line only.
  const text = err instanceof ConcordError ? err.message : err.message.split('\n')[0];
  const debugHint = code === EXIT.failure && !settings.debug ? ' (CONCORD_DEBUG=1 shows the stack)' : '';
  log(`concord ${cmd}: ${settings.debug ? err.stack ?? err.message : text}${hint}${debugHint}`);
  return code;
}

/**
 * A command: `--help`/`-h` prints `help`; everything the body throws goes through exitCodeFor.
 * `defer(fn)` runs fn when the command ends, however it ends (e.g. releasing output locks).
 */
export function command(name: string, help: string, body: (argv: string[], defer: (fn: () => void) => void) => Promise<number>): Command {
  return async (argv) => {
    if (argv.includes('--help') || argv.includes('-h')) {
      console.log(help);
      return EXIT.ok;
    }
    const deferred: (() => void)[] = [];
    try {
      checkSettings();
      return await body(argv, (fn) => deferred.push(fn));
    } catch (e) {
      if (e instanceof DryRun) return EXIT.ok;
      return exitCodeFor(e, name);
    } finally {
      for (const fn of deferred.reverse()) fn();
    }
  };
}
