// Small CLI defects of issue 21 (item 7), each pinned by a test that failed before its fix:
// the device reason printed twice per command, `=null` parameters in the filter summary and the
// report header, `score --help` describing `--cosine auto` as the LM's hidden states on the CPU,
// and test files that left their /tmp/concord-* folders behind.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { ROOT, setupCli, type Cli } from './helpers/cli.js';
import { makeTinyModel } from './helpers/tiny-models.js';

let c: Cli;
beforeAll(() => { c = setupCli('concord-defects-'); });

/** Scored records as `concord score` writes them, with an encoder cosine (so `auto` → `fused`). */
function writeScored(file: string, n: number): void {
  const recs = Array.from({ length: n }, (_, i) => ({
    id: i, instruction: `q${i}`, output: `a${i}`,
    scores: {
      fwd_logp: -2 + 0.05 * i, rev_logp: -3 + 0.03 * ((i * 7) % n), y_logp: -2.1, x_logp: -3.5,
      ifd: 1 + 0.01 * i, rifd: 0.5, cosine: 0.2 + 0.6 * (((i * 5) % n) / n), cosine_source: 'embed:all-MiniLM-L6-v2',
      x_tokens: 5, y_tokens: 9,
    },
  }));
  fs.writeFileSync(file, recs.map((r) => JSON.stringify(r)).join('\n') + '\n');
}

describe('small CLI defects', () => {
  test('the device reason is printed once per command, and --cosine auto takes the encoder on the CPU as --help says', async () => {
    const model = makeTinyModel('llama2c', c.p('tiny'));
    fs.writeFileSync(c.p('pairs.jsonl'), [
      { instruction: 'Tell a story about a cat.', output: 'Once upon a time there was a cat.' },
      { instruction: 'Say hello.', output: 'Hello, friend.' },
    ].map((r) => JSON.stringify(r)).join('\n') + '\n');
    // --device auto on a machine without a hardware GPU (or --device cpu): the reason is in the opening line.
    const r = await c.run(['score', 'pairs.jsonl', '-o', 'scored.jsonl', '--model', model], {}, { fake: false });
    expect(r.code, r.stderr).toBe(0);
    const opening = r.stderr.split('\n').find((l) => l.startsWith('concord: model '));
    expect(opening).toBeDefined();
    const reason = opening!.split(' — ')[1];
    if (reason) expect(r.stderr.split(reason).length - 1).toBe(1);
    expect(r.stderr).toMatch(/^ {2}device \S/m);

    // The encoder runs on onnxruntime beside the LM on the CPU path: the summary and the records say so …
    const device = JSON.parse(fs.readFileSync(c.p('scored.jsonl'), 'utf8').split('\n')[0]).scores.cosine_source;
    expect(device).toBe('embed:all-MiniLM-L6-v2');
    expect(r.stderr).toContain('cosine embed:all-MiniLM-L6-v2');
    // … and the help describes auto so, not as "the LM's mean hidden states" unless on WebGPU.
    const help = await c.run(['score', '--help'], {}, { fake: false });
    const cosineHelp = help.stdout.slice(help.stdout.indexOf('--cosine auto'), help.stdout.indexOf('--embed-model'));
    expect(cosineHelp).toMatch(/sentence encoder \(on WebGPU or onnxruntime\)/);
    expect(cosineHelp).not.toMatch(/runs on\s+WebGPU, else/);
  }, 120_000);

  test('filter summaries and the report header name only the parameters that have a value (no =null)', async () => {
    writeScored(c.p('s.jsonl'), 20);
    const f = await c.run(['filter', 's.jsonl', '-o', 'k.jsonl']);
    expect(f.code, f.stderr).toBe(0);
    const line = f.stderr.split('\n').find((l) => l.startsWith('concord filter:'))!;
    expect(line).toContain('rule=fused');
    expect(line).toContain('min_score=');
    expect(line).not.toContain('=null');
    const rep = await c.run(['report', 's.jsonl', '-o', 'r.html']);
    expect(rep.code, rep.stderr).toBe(0);
    const html = fs.readFileSync(c.p('r.html'), 'utf8');
    expect(html).toContain('rule=fused');
    expect(html).not.toContain('=null');
  }, 60_000);

  test('every test file that makes a temp folder removes it (rmSync, or scratchDir from tests/helpers/scratch.ts)', () => {
    const dir = path.join(ROOT, 'tests');
    const files = fs.readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts'));
    const leaks = files.filter((f) => {
      const s = fs.readFileSync(path.join(dir, f), 'utf8');
      return /mkdtempSync\(/.test(s) && !/rmSync\(/.test(s);
    });
    expect(leaks).toEqual([]);
  });
});
