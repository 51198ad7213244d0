// Smoke test for bench/e2e's peer: transformers.js (onnxruntime-node, the ONNX export of
// stories15M) and concord's CPU twin give the same four per-token means on 3 pairs, and the markdown
// report renders. Skipped, with the reason, when models/stories15M-onnx has not been exported
// (scripts/export_onnx.py needs python3-torch, which `npm ci` does not install).

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { GPU_PENDING, renderMarkdown, type E2eReport } from '../bench/e2e.js';
import { loadPeer, logSoftmaxAt, peerPairScorer } from '../bench/peer-transformers.js';
import { loadModel } from '../src/models/index.js';
import { createScorer } from '../src/pipeline/create.js';

const ONNX_DIR = join(import.meta.dirname, '..', 'models', 'stories15M-onnx');
const exported = existsSync(join(ONNX_DIR, 'onnx', 'model.onnx'));
if (!exported) console.warn(`bench-e2e: ${ONNX_DIR} not exported (run /usr/bin/python3 scripts/export_onnx.py); peer agreement test skipped`);

const PAIRS = [
  { instruction: 'Write a story about a dog named Max and a red ball.', input: '', output: 'Max the dog found a red ball. Max played with the ball all day.' },
  { instruction: 'Tell a story about a cat.', input: 'The cat is afraid of rain.', output: 'The cat hid under the bed when the rain came. Then the sun came out.' },
  { instruction: 'Write a story about a bird who learns to fly.', input: '', output: 'Tom baked bread in the kitchen and ate it with jam.' },
];

describe('bench/e2e', () => {
  test('logSoftmaxAt: x − max − log Σ exp(x − max), stable for large logits', () => {
    const row = Float32Array.from([1000, 1001, 999]);
    const lse = 1001 + Math.log(Math.exp(-1) + 1 + Math.exp(-2));
    expect(logSoftmaxAt(row, 0)).toBeCloseTo(1000 - lse, 10);
    expect(logSoftmaxAt(row, 1)).toBeCloseTo(1001 - lse, 10);
  });

  test.skipIf(!exported)('the peer (transformers.js, 4 passes) agrees with concord cpu (2 passes) on 3 pairs within 1e-3 nats/token', async () => {
    const model = await loadModel('stories15M', { device: 'cpu' });
    const scorer = await createScorer({ model, cosine: 'off' });
    const mine = [];
    for await (const r of scorer.score(PAIRS)) mine.push(r.scores!);
    const peer = await loadPeer(ONNX_DIR);
    const score = peerPairScorer(peer, model.tokenizer, model.maxLen);
    for (let i = 0; i < PAIRS.length; i++) {
      const p = await score(PAIRS[i]);
      const c = mine[i];
      expect([p.xTokens, p.yTokens]).toEqual([c.x_tokens, c.y_tokens]);
      for (const [a, b] of [[p.fwd, c.fwd_logp], [p.rev, c.rev_logp], [p.y, c.y_logp], [p.x, c.x_logp]]) {
        expect(Math.abs(a - b)).toBeLessThan(1e-3);
      }
      // transformers.js's own tokenizer on the exported tokenizer.json gives the same ids
      const pair = { x: PAIRS[i].input ? `${PAIRS[i].instruction}\n\n${PAIRS[i].input}` : PAIRS[i].instruction, y: PAIRS[i].output };
      expect(peer.encode(pair.y)).toEqual(model.tokenizer.encode(pair.y, { addSpecial: false }));
    }
    await peer.dispose();
    model.dispose();
  }, 60_000);

  test('markdown report: rows, ratio against the mean of the peer\'s two runs, INVALID marking, GPU-pending sentence', () => {
    const run = (ms: number, scores: number) => ({
      dataset: 'd', pairs: 2, ms, cpuMs: ms, pairTokens: 100, lmTokens: 200, paddingEfficiency: 0.97, batches: 1, truncated: 0, loadavg: [1, 1, 1],
      scores: Array.from({ length: 2 }, () => ({ fwd: scores, rev: -1, y: -1, x: -1, xTokens: 10, yTokens: 40, truncated: false })),
      pairMs: [ms / 2, ms / 2],
    });
    const base = { version: 'v', loadMs: 1, firstRunMs: 1, firstRunPairs: 1, peakRssBytes: 2 ** 20, gpuPeakBytes: null, gpuWeightBytes: null, notes: [] };
    const rep: E2eReport = {
      kind: 'concord-bench-e2e', date: '2025-01-01T00:00:00Z', command: 'npm run bench', limit: 2, tol: 1e-3, data: '../shared/data', model: 'm',
      machine: { cpu: 'x', cores: 2, memGiB: 1, os: 'Linux', node: 'v20' },
      results: [
        { ...base, contestant: 'peer', name: 'transformers.js', device: 'cpu', runs: [run(2000, -1)] },
        { ...base, contestant: 'cpu', name: 'concord cpu', device: 'cpu', runs: [run(500, -1.5)] },
        { ...base, contestant: 'peer', name: 'transformers.js', device: 'cpu', runs: [run(1000, -1)], round: 'again' },
      ],
      comparisons: [{ contestant: 'cpu', dataset: 'd', pairs: 2, maxAbsDiff: 0.5, worst: 'pair 0 fwd', tokenMismatches: 0, ok: false }],
      loadavgStart: [1, 1, 1], loadavgEnd: [1, 1, 1], pending: [GPU_PENDING],
    };
    const md = renderMarkdown(rep);
    // peer: 1 and 2 pairs/s (mean 1.5); concord: 4 pairs/s
    expect(md).toContain('| concord cpu | d | 4.00 | 2.67× |');
    expect(md).toContain('| transformers.js (peer, again) | d | 2.00 | — |');
    expect(md).toContain('INVALID');
    expect(md).toContain('pending');
  });
});
