// `npm run build && node dist/bench/icl.js [--candidates N] [--anchors A] [--device cpu|cpu-twin] [--slots S] [--data DIR]`:
// in-context influence (docs/signals.md) with KV reuse (each candidate's prefix prefilled once, the
// anchors scored from its cache) against the same computation without reuse (every prefix + anchor
// scored from an empty slot). stories15M; candidates are the first N pairs of
// self-instruct-user-oriented.jsonl (the benchmark data folder) whose forward sequence is at most
// 96 tokens, anchors the next A such pairs of at most 64 tokens (so a prefix and an anchor fit the
// 256-token context). The anchors' zero-shot scores (shared) are computed before the clock starts.
//
// Validated before anything is reported: the two paths' columns agree within 1e-4 (icl_gold
// exactly). A failed check prints INVALID and exits 1.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { loadModel } from '../src/models/index.js';
import { packageRoot } from '../src/env.js';
import { recordToPair } from '../src/pipeline/input.js';
import { sequenceBuilder } from '../src/pipeline/sequences.js';
import { InContextInfluence, type IclScores } from '../src/signals/icl.js';

const { values: a } = parseArgs({ options: { candidates: { type: 'string' }, anchors: { type: 'string' }, device: { type: 'string' }, slots: { type: 'string' }, data: { type: 'string' } } });
const N = Number(a.candidates ?? 16), A = Number(a.anchors ?? 8);
const device = (a.device ?? 'cpu') as 'cpu' | 'cpu-twin';
const DATA = join(a.data ?? join(packageRoot(), '..', 'shared', 'data'), 'self-instruct-user-oriented.jsonl');

async function main(): Promise<void> {
  const lm = await loadModel('default', { device, cpuBackend: device === 'cpu' ? 'onnxruntime' : 'twin' });
  const builder = sequenceBuilder({ tokenizer: lm.tokenizer, maxLen: lm.maxLen, sameModel: true });
  const len = (p: { x: string; y: string }) => { try { return builder.build(p).sequences[0].ids.length; } catch { return Infinity; } };
  const all: { x: string; y: string }[] = [];
  for (const l of readFileSync(DATA, 'utf8').split('\n')) {
    if (!l.trim()) continue;
    try { const p = recordToPair(JSON.parse(l)); if (p.x.trim() && p.y.trim()) all.push({ x: p.x, y: p.y }); } catch { /* records concord score would report are skipped here */ }
  }
  const cands = all.filter((p) => len(p) <= 96).slice(0, N);
  const anchors = all.filter((p) => len(p) <= 64 && !cands.includes(p)).slice(0, A);
  const slots = a.slots ? Number(a.slots) : undefined;
  console.log(`in-context influence: stories15M on ${lm.deviceName}, ${cands.length} candidates × ${anchors.length} anchors, load ${loadavg()[0].toFixed(2)}`);
  const run = async (reuse: boolean): Promise<{ ms: number; cols: IclScores[]; fed: number }> => {
    const icl = new InContextInfluence(lm, builder, anchors, { reuse, slots });
    await icl.zeroShot();
    const fed0 = icl.tokensFed;
    const t0 = performance.now();
    const cols = await icl.score(cands);
    return { ms: performance.now() - t0, cols, fed: icl.tokensFed - fed0 };
  };
  await run(true); // warm-up
  const plain = await run(false);
  const reused = await run(true);
  const problems: string[] = [];
  reused.cols.forEach((c, i) => {
    const p = plain.cols[i];
    if (c.icl_gold !== p.icl_gold) problems.push(`candidate ${i}: icl_gold ${c.icl_gold} vs ${p.icl_gold}`);
    for (const k of ['icl_delta', 'icl_ratio'] as const) if (!(Math.abs(c[k]! - p[k]!) <= 1e-4)) problems.push(`candidate ${i}: ${k} ${c[k]} vs ${p[k]}`);
  });
  if (problems.length) { console.log(`INVALID\n${problems.join('\n')}`); process.exit(1); }
  console.log(`no reuse: ${plain.ms.toFixed(0)} ms, ${plain.fed} token rows fed`);
  console.log(`KV reuse: ${reused.ms.toFixed(0)} ms, ${reused.fed} token rows fed (${(plain.ms / reused.ms).toFixed(2)}× faster)`);
  console.log('check: the two paths agree (icl_gold equal, icl_delta and icl_ratio within 1e-4)');
  lm.dispose();
}

void main();
