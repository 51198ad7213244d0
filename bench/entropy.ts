// `npm run build && node dist/bench/entropy.js [--limit N] [--rounds R] [--devices cpu,cpu-twin] [--data DIR]`:
// what the next-token entropy (y_entropy, x_entropy, upd; docs/signals.md) adds to scoring time on
// the CPU path. Same model (stories15M), same pairs (the first N of the self-instruct set in the
// shared data folder), same scorer settings (2 passes, cosine off), one scorer with
// `entropy: false` and one with `entropy: true`, each on its own model instance (onnxruntime swaps
// its head graph for the one with the entropy output on first use). Rounds alternate off/on after
// one warm-up each; the median and the fastest round of each are reported (the fastest is the
// least disturbed by other load on a shared machine), and the median CPU time of the process (all
// threads; onnxruntime does not spin by default), which other load disturbs far less than wall time.
//
// Validated before anything is reported: the four log-prob means of every pair must agree between
// the two scorers within 1e-5 nats/token (the entropy output must not move the log-probs), every
// entropy signal must be finite, and with both devices the onnxruntime and twin entropies must
// agree within 1e-4 nats. A failed check prints INVALID and exits 1.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { loadModel } from '../src/models/index.js';
import { createScorerFromModels, type PairScores } from '../src/pipeline/scorer.js';
import { packageRoot } from '../src/env.js';

const { values: a } = parseArgs({ options: { limit: { type: 'string' }, rounds: { type: 'string' }, devices: { type: 'string' }, data: { type: 'string' } } });
const N = Number(a.limit ?? 24), ROUNDS = Number(a.rounds ?? 3);
const devices = (a.devices ?? 'cpu,cpu-twin').split(',') as ('cpu' | 'cpu-twin')[];
// The benchmark data folder (as bench/e2e.ts: ../shared/data from the project root, or --data DIR).
const DATA = join(a.data ?? join(packageRoot(), '..', 'shared', 'data'), 'self-instruct-user-oriented.jsonl');

function readPairs(): unknown[] {
  const text = readFileSync(DATA, 'utf8');
  return text.split('\n').filter((l) => l.trim()).slice(0, N).map((l) => JSON.parse(l));
}

async function scoreAll(sc: ReturnType<typeof createScorerFromModels>, pairs: unknown[]): Promise<{ ms: number; cpuMs: number; scores: PairScores[] }> {
  const t0 = performance.now(), c0 = process.cpuUsage();
  const scores: PairScores[] = [];
  for await (const r of sc.score(pairs, { firstIndex: 0 })) {
    if (r.error) throw new Error(`${r.loc}: ${r.error}`);
    scores.push(r.scores!);
  }
  const c = process.cpuUsage(c0);
  return { ms: performance.now() - t0, cpuMs: (c.user + c.system) / 1000, scores };
}

const median = (v: number[]): number => [...v].sort((x, y) => x - y)[Math.floor(v.length / 2)];

async function main(): Promise<void> {
  const pairs = readPairs();
  const problems: string[] = [];
  const byDevice: Record<string, PairScores[]> = {};
  console.log(`entropy cost: stories15M, ${pairs.length} pairs of self-instruct-user-oriented, ${ROUNDS} rounds, load ${loadavg()[0].toFixed(2)}`);
  for (const device of devices) {
    const opts = { device, cpuBackend: device === 'cpu' ? 'onnxruntime' as const : 'twin' as const };
    const [mOff, mOn] = [await loadModel('default', opts), await loadModel('default', opts)];
    const off = createScorerFromModels({ model: mOff, cosine: 'off', entropy: false });
    const on = createScorerFromModels({ model: mOn, cosine: 'off', entropy: true });
    await scoreAll(off, pairs.slice(0, 2));
    await scoreAll(on, pairs.slice(0, 2));
    const tOff: number[] = [], tOn: number[] = [], cOff: number[] = [], cOn: number[] = [];
    let sOff: PairScores[] = [], sOn: PairScores[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const x = await scoreAll(off, pairs);
      const y = await scoreAll(on, pairs);
      tOff.push(x.ms);
      tOn.push(y.ms);
      cOff.push(x.cpuMs);
      cOn.push(y.cpuMs);
      sOff = x.scores;
      sOn = y.scores;
    }
    sOff.forEach((s, i) => {
      for (const k of ['fwd_logp', 'rev_logp', 'y_logp', 'x_logp'] as const) {
        if (!(Math.abs(s[k] - sOn[i][k]) <= 1e-5)) problems.push(`${device} pair ${i}: ${k} ${s[k]} without entropy vs ${sOn[i][k]} with`);
      }
      for (const k of ['y_entropy', 'x_entropy', 'upd', 'norm_loss'] as const) if (!Number.isFinite(sOn[i][k])) problems.push(`${device} pair ${i}: ${k} is ${sOn[i][k]}`);
    });
    byDevice[device] = sOn;
    const [mo, mn] = [median(tOff), median(tOn)];
    console.log(`${device.padEnd(9)} ${mOn.deviceName}`);
    const [co, cn] = [median(cOff), median(cOn)];
    console.log(`          CPU time (all threads), median: without ${co.toFixed(0)} ms, with ${cn.toFixed(0)} ms, added ${(100 * (cn / co - 1)).toFixed(1)}%   rounds off [${cOff.map((t) => t.toFixed(0)).join(', ')}] on [${cOn.map((t) => t.toFixed(0)).join(', ')}]`);
    const [lo, ln] = [Math.min(...tOff), Math.min(...tOn)];
    console.log(`          fastest rounds: without ${lo.toFixed(0)} ms, with ${ln.toFixed(0)} ms, added ${(100 * (ln / lo - 1)).toFixed(1)}%`);
    console.log(`          median: without entropy ${mo.toFixed(0)} ms (${(pairs.length / (mo / 1000)).toFixed(2)} pairs/s)   with ${mn.toFixed(0)} ms (${(pairs.length / (mn / 1000)).toFixed(2)} pairs/s)   added ${(100 * (mn / mo - 1)).toFixed(1)}%   rounds off [${tOff.map((t) => t.toFixed(0)).join(', ')}] on [${tOn.map((t) => t.toFixed(0)).join(', ')}]`);
    mOff.dispose();
    mOn.dispose();
  }
  if (byDevice.cpu && byDevice['cpu-twin']) {
    let worst = 0;
    byDevice.cpu.forEach((s, i) => {
      for (const k of ['y_entropy', 'x_entropy'] as const) worst = Math.max(worst, Math.abs(s[k]! - byDevice['cpu-twin'][i][k]!));
    });
    console.log(`onnxruntime vs twin: max |Δ| of the mean entropies ${worst.toExponential(2)} nats`);
    if (!(worst <= 1e-4)) problems.push(`onnxruntime vs twin mean entropy differ by ${worst}`);
  }
  if (problems.length) {
    console.log(`INVALID:\n  ${problems.slice(0, 10).join('\n  ')}`);
    process.exit(1);
  }
  console.log('validated: log-prob means equal with and without entropy (≤1e-5), entropy signals finite');
}

await main();
