// `npm start` (concord demo) on the embedded sample with the CLI's own defaults (--cosine auto: the
// MiniLM encoder; --rule auto → fused): issue 21's target is ≥ 40 of the 45 aligned pairs kept and
// ≥ 13 of the 15 misaligned dropped, the closing line in its form, and a last line naming the one
// command that does the same on one's own file — which, run on the sample, keeps the same pairs.

import { describe, expect, test } from 'vitest';
import { setupCli } from './helpers/cli.js';
import { ownFileCommand } from '../src/cli/demo.js';

describe('concord demo (npm start)', () => {
  test('the CLI defaults on the sample: ≥ 40/45 aligned kept, ≥ 13/15 misaligned dropped; the printed command does the same', async () => {
    const c = setupCli('concord-demo-test-');
    const r = await c.run(['demo'], {}, { fake: false });
    expect(r.code, r.stderr).toBe(0);
    const m = r.stdout.match(/^misaligned pairs: (\d+) of 15 dropped; aligned pairs: (\d+) of 45 kept$/m);
    expect(m, r.stdout).not.toBeNull();
    const [misDropped, alignedKept] = [Number(m![1]), Number(m![2])];
    console.log(`demo: misaligned ${misDropped}/15 dropped, aligned ${alignedKept}/45 kept`);
    expect(misDropped).toBeGreaterThanOrEqual(13);
    expect(alignedKept).toBeGreaterThanOrEqual(40);
    expect(r.stdout).toMatch(/^fused rule \(rule=fused rule_requested=auto /m);
    expect(r.stdout).not.toContain('=null');

    // The last line: the command for one's own file, the same run (concord run, same defaults).
    const last = r.stdout.trim().split('\n').pop()!.trim();
    expect(last).toMatch(/^node \S*bin\/concord\.js run your-pairs\.jsonl -o kept\.jsonl$/);
    const args = last.split(/\s+/).slice(2).map((a) => (a === 'your-pairs.jsonl' ? 'sample.jsonl' : a));
    const { copyFileSync } = await import('node:fs');
    copyFileSync(new URL('../data/sample-pairs.jsonl', import.meta.url), c.p('sample.jsonl'));
    const run = await c.run([...args, '--drop-out', 'dropped.jsonl'], {}, { fake: false });
    expect(run.code, run.stderr).toBe(0);
    const kept = c.lines('kept.jsonl'), dropped = c.lines('dropped.jsonl');
    expect(kept.filter((x) => x.note === 'aligned').length).toBe(alignedKept);
    expect(dropped.filter((x) => x.note === 'misaligned').length).toBe(misDropped);
  }, 300_000);

  test('the own-file command carries the flags the demo was given', () => {
    expect(ownFileCommand({}, 'concord')).toBe('concord run your-pairs.jsonl -o kept.jsonl');
    expect(ownFileCommand({ model: 'models/x y', device: 'cpu', rule: 'ifd', keep: true }, 'concord'))
      .toBe('concord run your-pairs.jsonl -o kept.jsonl --model "models/x y" --device cpu --rule ifd');
  });
});
