// The CPU backend's worker threads run only from the compiled package (dist/, built by `npm ci`):
// load the compiled loadModel and check that worker results equal the in-thread CPU twin exactly.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadModel } from '../src/models/index.js';
import { randInt, rng } from './helpers/gpu.js';
import { makeTinyModel } from './helpers/tiny-models.js';
import { scratchDir } from './helpers/scratch.js';

const built = join(__dirname, '..', 'dist', 'src', 'models', 'index.js');

describe('CPU worker threads', () => {
  it('score exactly like the in-thread CPU path, in input order', async () => {
    expect(existsSync(built), `${built} missing: run npm run build`).toBe(true);
    const compiled = (await import(pathToFileURL(built).href)) as typeof import('../src/models/index.js');
    const path = makeTinyModel('hf-gpt2', join(scratchDir('concord-workers-'), 'm'));
    const pooled = await compiled.loadModel(path, { device: 'cpu-twin', threads: 2 });
    const inline = await loadModel(path, { device: 'cpu-twin', threads: 1 });
    expect(pooled.deviceName).toContain('2 worker threads');
    expect(inline.deviceName).toContain('1 thread');
    const r = rng(5);
    const seqs = [7, 30, 2, 19, 11, 1].map((n) => ({ ids: Array.from({ length: n }, () => randInt(r, 0, pooled.config.vocabSize - 1)) }));
    const [a, b] = [await pooled.scoreBatch(seqs), await inline.scoreBatch(seqs)];
    seqs.forEach((s, i) => expect(Array.from(a[i].logprobs)).toEqual(Array.from(b[i].logprobs)));
    // With entropies ('score-entropy' jobs): the same log-probs, and the same entropies as in-thread.
    const [ea, eb] = [await pooled.scoreBatch(seqs, { entropy: true }), await inline.scoreBatch(seqs, { entropy: true })];
    seqs.forEach((s, i) => {
      expect(Array.from(ea[i].logprobs)).toEqual(Array.from(b[i].logprobs));
      expect(ea[i].entropy!.length).toBe(Math.max(0, s.ids.length - 1));
      expect(Array.from(ea[i].entropy!)).toEqual(Array.from(eb[i].entropy!));
    });
    const [ha, hb] = [await pooled.meanHidden(seqs), await inline.meanHidden(seqs)];
    seqs.forEach((s, i) => expect(Array.from(ha[i])).toEqual(Array.from(hb[i])));
    pooled.dispose();
  });
});
