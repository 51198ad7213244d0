// `npm start` (concord demo) on the embedded sample with the CLI's own defaults (--cosine auto: the
// MiniLM encoder; --rule auto → fused): issue 21's target is ≥ 40 of the 45 aligned pairs kept and
// ≥ 13 of the 15 misaligned dropped, the closing line in its form, and a last line naming the one
// command that does the same on one's own file — which, run on the sample, keeps the same pairs.

import { rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { describe, expect, test } from 'vitest';
import { setupCli } from './helpers/cli.js';
import { ownFileCommand } from '../src/cli/demo.js';

describe('concord demo (npm start)', () => {
  test('the CLI defaults on the sample: ≥ 40/45 aligned kept, ≥ 13/15 misaligned dropped; the printed command does the same', async () => {
    const c = setupCli('concord-demo-test-');
    const r = await c.run(['demo', '--keep'], {}, { fake: false });
    expect(r.code, r.stderr).toBe(0);
    const m = r.stdout.match(/^misaligned pairs: (\d+) of 15 dropped; aligned pairs: (\d+) of 45 kept$/m);
    expect(m, r.stdout).not.toBeNull();
    const [misDropped, alignedKept] = [Number(m![1]), Number(m![2])];
    console.log(`demo: misaligned ${misDropped}/15 dropped, aligned ${alignedKept}/45 kept`);
    expect(misDropped).toBeGreaterThanOrEqual(13);
    expect(alignedKept).toBeGreaterThanOrEqual(40);
    expect(r.stdout).toMatch(/^fused rule \(rule=fused rule_requested=auto /m);
    expect(r.stdout).not.toContain('=null');
    // --keep: the scored records stay (in a scratch folder the demo names; removed here).
    const scored = /scored records in (\S+scored\.jsonl)\)/.exec(r.stdout)?.[1];
    expect(scored, r.stdout).toBeDefined();
    try {
      // The last line: the command for one's own file — concord run with the demo's defaults.
      const last = r.stdout.trim().split('\n').pop()!.trim();
      expect(last).toMatch(/^node \S*bin\/concord\.js run your-pairs\.jsonl -o kept\.jsonl$/);
      const args = last.split(/\s+/).slice(2);
      const dry = await c.run(args, { CONCORD_DRY_RUN: '1' }, { fake: false });
      expect(dry.code, dry.stderr).toBe(0);
      // concord run = score + filter with the same defaults: concord filter's default rule on the
      // demo's scored records keeps exactly what the demo kept (scoring twice costs minutes here).
      const f = await c.run(['filter', scored!, '-o', 'kept.jsonl', '--drop-out', 'dropped.jsonl'], {}, { fake: false });
      expect(f.code, f.stderr).toBe(0);
      const kept = c.lines('kept.jsonl'), dropped = c.lines('dropped.jsonl');
      expect(kept.filter((x) => x.note === 'aligned').length).toBe(alignedKept);
      expect(dropped.filter((x) => x.note === 'misaligned').length).toBe(misDropped);
    } finally {
      rmSync(dirname(scored!), { recursive: true, force: true });
    }
  }, 900_000);

  test('the own-file command carries the flags the demo was given', () => {
    expect(ownFileCommand({}, 'concord')).toBe('concord run your-pairs.jsonl -o kept.jsonl');
    expect(ownFileCommand({ model: 'models/x y', device: 'cpu', rule: 'ifd', keep: true }, 'concord'))
      .toBe('concord run your-pairs.jsonl -o kept.jsonl --model "models/x y" --device cpu --rule ifd');
  });
});
