// Every command answers a bad command line the same way: exit 2 and ONE line on stderr naming the
// flag (or the missing argument) — before any model is loaded. One row per command and mistake.

import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';
import { COMMANDS, main } from '../src/cli/main.js';

type Row = [command: string, mistake: 'unknown flag' | 'bad value' | 'missing argument', argv: string[], names: string];

const ROWS: Row[] = [
  ['doctor', 'unknown flag', ['doctor', '--bogus'], '--bogus'],
  ['doctor', 'bad value', ['doctor', '--json=yes'], '--json'],
  ['doctor', 'missing argument', ['doctor', 'extra'], "'extra'"],
  ['bench', 'unknown flag', ['bench', 'kernels', '--bogus'], '--bogus'],
  ['bench', 'bad value', ['bench', 'kernels', '--size', 'huge'], '--size'],
  ['bench', 'missing argument', ['bench'], 'concord bench kernels'],
  ['logprob', 'unknown flag', ['logprob', '--target', 'a', '--bogus'], '--bogus'],
  ['logprob', 'bad value', ['logprob', '--target', 'a', '--device', 'gpu'], '--device'],
  ['logprob', 'missing argument', ['logprob', '--context', 'a'], '--target'],
  ['score', 'unknown flag', ['score', 'in.jsonl', '-o', 'out.jsonl', '--bogus'], '--bogus'],
  ['score', 'bad value', ['score', 'in.jsonl', '-o', 'out.jsonl', '--window', '0'], '--window'],
  ['score', 'missing argument', ['score', 'in.jsonl'], '-o/--output'],
  ['filter', 'unknown flag', ['filter', 'in.jsonl', '-o', 'k.jsonl', '--bogus'], '--bogus'],
  ['filter', 'bad value', ['filter', 'in.jsonl', '-o', 'k.jsonl', '--keep-fraction', '2'], '--keep-fraction'],
  ['filter', 'missing argument', ['filter', '-o', 'k.jsonl'], 'expected one input file'],
  ['run', 'unknown flag', ['run', 'in.jsonl', '-o', 'k.jsonl', '--bogus'], '--bogus'],
  ['run', 'bad value', ['run', 'in.jsonl', '-o', 'k.jsonl', '--rule', 'nope'], '--rule'],
  ['run', 'missing argument', ['run', 'in.jsonl', '--rule', 'main'], '-o/--output'],
  ['demo', 'unknown flag', ['demo', '--bogus'], '--bogus'],
  ['demo', 'bad value', ['demo', '--device', 'gpu'], '--device'],
  ['demo', 'missing argument', ['demo', '--model'], '--model'],
  ['download', 'unknown flag', ['download', 'a/b', '--bogus'], '--bogus'],
  ['download', 'bad value', ['download', 'a/b', '--revision', '../../etc'], '--revision'],
  ['download', 'missing argument', ['download'], 'expected one model id'],
  ['embed', 'unknown flag', ['embed', '--text', 'a', '--bogus'], '--bogus'],
  ['embed', 'bad value', ['embed', '--text', 'a', '--max-length', '1'], '--max-length'],
  ['embed', 'missing argument', ['embed'], '--text'],
  ['dedup', 'unknown flag', ['dedup', 'in.jsonl', '-o', 'u.jsonl', '--bogus'], '--bogus'],
  ['dedup', 'bad value', ['dedup', 'in.jsonl', '-o', 'u.jsonl', '--threshold', '2'], '--threshold'],
  ['dedup', 'missing argument', ['dedup', 'in.jsonl'], '-o'],
  ['merge', 'unknown flag', ['merge', 'dir', '-o', 'm.jsonl', '--bogus'], '--bogus'],
  ['merge', 'bad value', ['merge', 'dir', '-o', 'm.jsonl', '--keep-fraction', '3'], '--keep-fraction'],
  ['merge', 'missing argument', ['merge', '-o', 'm.jsonl'], 'expected one folder'],
  ['eval', 'unknown flag', ['eval', 's.jsonl', '--label', 'l', '--bogus'], '--bogus'],
  ['eval', 'bad value', ['eval', 's.jsonl', '--label', 'l', '--keep-fraction', '7'], '--keep-fraction'],
  ['eval', 'missing argument', ['eval', 's.jsonl'], '--label'],
  ['select', 'unknown flag', ['select', 's.jsonl', '-o', 'x.jsonl', '--budget', '3', '--bogus'], '--bogus'],
  ['select', 'bad value', ['select', 's.jsonl', '-o', 'x.jsonl', '--budget', '3', '--diversity', '2'], '--diversity'],
  ['select', 'missing argument', ['select', 's.jsonl', '-o', 'x.jsonl'], '--budget'],
  ['report', 'unknown flag', ['report', 's.jsonl', '-o', 'r.html', '--bogus'], '--bogus'],
  ['report', 'bad value', ['report', 's.jsonl', '-o', 'r.html', '--rule', 'best'], '--rule'],
  ['report', 'missing argument', ['report', 's.jsonl'], '-o/--output'],
  ['tune', 'unknown flag', ['tune', '--bogus'], '--bogus'],
  ['tune', 'bad value', ['tune', '--op', 'nosuch'], '--op'],
  ['tune', 'missing argument', ['tune', '--model'], '--model'],
  ['generate', 'unknown flag', ['generate', '--prompt', 'a', '--bogus'], '--bogus'],
  ['generate', 'bad value', ['generate', '--prompt', 'a', '--top-p', '2'], '--top-p'],
  ['generate', 'missing argument', ['generate', 'in.jsonl'], '-o'],
  ['synthesize', 'unknown flag', ['synthesize', 'in.jsonl', '-o', 'p.jsonl', '--bogus'], '--bogus'],
  ['synthesize', 'bad value', ['synthesize', 'in.jsonl', '-o', 'p.jsonl', '--num-candidates', '0'], '--num-candidates'],
  ['synthesize', 'missing argument', ['synthesize', 'in.jsonl'], '-o/--output'],
  ['quantize', 'unknown flag', ['quantize', 'm', '-o', 'x.gguf', '--bogus'], '--bogus'],
  ['quantize', 'bad value', ['quantize', 'm', '-o', 'x.gguf', '--type', 'q3_k'], '--type'],
  ['quantize', 'missing argument', ['quantize', 'm'], '-o FILE.gguf'],
];

describe('usage errors: exit 2, one line naming the flag, for every command', () => {
  let err: string[];
  beforeEach(() => {
    err = [];
    vi.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => { err.push(String(s)); return true; });
    vi.spyOn(console, 'log').mockImplementation(() => {});
  });
  afterEach(() => { vi.restoreAllMocks(); });

  test('the table covers every command', () => {
    expect(new Set(ROWS.map((r) => r[0]))).toEqual(new Set(Object.keys(COMMANDS)));
    for (const c of Object.keys(COMMANDS)) expect(ROWS.filter((r) => r[0] === c).map((r) => r[1]).sort()).toEqual(['bad value', 'missing argument', 'unknown flag']);
  });

  test.each(ROWS)('%s: %s', async (cmd, _mistake, argv, names) => {
    const code = await main(argv);
    const text = err.join('');
    expect(code).toBe(2);
    expect(text.trimEnd().split('\n')).toHaveLength(1);
    expect(text).toContain(`concord ${cmd}: `);
    expect(text).toContain(names);
    expect(text).not.toMatch(/\n\s+at /); // no stack trace
  });

  test('an unknown command is a usage error too', async () => {
    expect(await main(['frobnicate'])).toBe(2);
    expect(err.join('')).toContain("unknown command 'frobnicate'");
  });

  test('--no-entropy: every command that scores takes it (and its --help says so); it takes no value', async () => {
    const log = vi.mocked(console.log);
    for (const [cmd, argv] of [['score', ['in.jsonl', '-o', 'o.jsonl']], ['run', ['in.jsonl', '-o', 'k.jsonl']], ['synthesize', ['in.jsonl', '-o', 'p.jsonl']]] as const) {
      err.length = 0;
      expect(await main([cmd, ...argv, '--no-entropy=yes'])).toBe(2);
      expect(err.join('')).toBe(`concord ${cmd}: --no-entropy takes no value (concord ${cmd} --help)\n`);
      log.mockClear();
      expect(await COMMANDS[cmd](['--help'])).toBe(0);
      expect(String(log.mock.calls[0][0])).toContain('--no-entropy');
    }
  });

  test('--help exits 0 for every command', async () => {
    for (const c of Object.keys(COMMANDS)) expect(await COMMANDS[c](['--help'])).toBe(0);
  });
});
