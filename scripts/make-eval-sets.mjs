#!/usr/bin/env node
// Builds concord's evaluation sets from ../shared/data into a git-ignored folder (default
// eval-sets/). For design and benchmarks only: the data is never committed and `npm test` never
// reads it. Deterministic (seeded). Every record has `label` (1 = a true pair, 0 = not) and
// `eval_sets` (the sets it belongs to).
//
//   node scripts/make-eval-sets.mjs [--data ../shared/data] [--out eval-sets] [--n 100] [--seed 1] [--anchors A]
//   node scripts/make-eval-sets.mjs --split scored-all.jsonl [--out eval-sets]
//
// Sets (Alpaca pairs from alpaca-cherry-5pct.json unless noted):
//   mismatch  n true pairs + n pairs of other instructions each given the response of yet another
//             instruction that is NOT in any set (so the response appears nowhere else in the file).
//   near      the same n true pairs + n near misses: other instructions each given the response of
//             the most similar remaining instruction (token-overlap Jaccard on instruction + input,
//             lower-cased word tokens), that donor instruction not being in any set.
//   davinci   self-instruct-user-oriented.jsonl: for n tasks, the `expert` answer (label 1) and the
//             untuned `davinci` base model's answer to the same instruction (label 0).
// Files: all.jsonl (the union, every record once, to score in one run), mismatch.jsonl, near.jsonl,
// davinci.jsonl. --split takes the scored union and writes scored-<set>.jsonl per set.
// --anchors A also writes anchors.jsonl (for `concord score --signals icl --anchors`): the first A
// Alpaca pairs, in the seeded order, that are in no set and lend no near-miss response, whose
// instruction text (trimmed, lower-cased) and response are nowhere in all.jsonl, and whose prompt +
// response is at most 400 characters (short anchors leave room for the candidate in a small
// model's context). It draws no random numbers, so the other files are the same with or without it.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';

const { values: v } = parseArgs({
  options: {
    data: { type: 'string' },
    out: { type: 'string', default: 'eval-sets' },
    n: { type: 'string', default: '100' },
    seed: { type: 'string', default: '1' },
    split: { type: 'string' },
    anchors: { type: 'string', default: '0' },
  },
});
const SETS = ['mismatch', 'near', 'davinci'];
// Default data folder: the nearest shared/data above the working directory (../shared/data for a
// checkout beside it).
if (!v.data) {
  for (let d = path.resolve('..'); ; d = path.dirname(d)) {
    if (fs.existsSync(path.join(d, 'shared', 'data'))) { v.data = path.join(d, 'shared', 'data'); break; }
    if (path.dirname(d) === d) { v.data = path.join('..', 'shared', 'data'); break; }
  }
}
fs.mkdirSync(v.out, { recursive: true });

if (v.split) {
  const lines = fs.readFileSync(v.split, 'utf8').split('\n').filter((l) => l.trim());
  const outs = Object.fromEntries(SETS.map((s) => [s, []]));
  for (const l of lines) {
    const r = JSON.parse(l);
    for (const s of r.eval_sets ?? []) outs[s]?.push(l);
  }
  for (const s of SETS) {
    const f = path.join(v.out, `scored-${s}.jsonl`);
    fs.writeFileSync(f, outs[s].join('\n') + (outs[s].length ? '\n' : ''));
    console.log(`${f}: ${outs[s].length} records`);
  }
  process.exit(0);
}

const n = Number(v.n);
let seed = Number(v.seed) >>> 0;
/** mulberry32 */
const rand = () => {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const shuffle = (a) => {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
};

// ---- Alpaca sets ----
const alpaca = JSON.parse(fs.readFileSync(path.join(v.data, 'alpaca-cherry-5pct.json'), 'utf8'))
  .map((r, i) => ({ ...r, i }))
  .filter((r) => r.instruction.trim() && r.output.trim());
const order = shuffle(alpaca.map((_, k) => k));
if (order.length < 5 * n) throw new Error(`need ${5 * n} Alpaca pairs, have ${order.length}`);
const take = (k) => order.splice(0, k).map((j) => alpaca[j]);
const T = take(n), MI = take(n), MD = take(n), NI = take(n);
const pool = order.map((j) => alpaca[j]); // the rest: near-miss donors, none in any set

const words = (s) => new Set(s.toLowerCase().match(/[a-z0-9]+/g) ?? []);
const jaccard = (a, b) => {
  let inter = 0;
  for (const w of a) if (b.has(w)) inter++;
  return inter / (a.size + b.size - inter || 1);
};
const prompt = (r) => `${r.instruction} ${r.input ?? ''}`;
const poolWords = pool.map((r) => words(prompt(r)));

const rec = (r, output, label, kind, sets, extra = {}) => ({
  id: `alpaca/${r.i}/${kind}`, instruction: r.instruction, input: r.input ?? '', output, label, kind, eval_sets: sets, ...extra,
});
const all = [];
for (const r of T) all.push(rec(r, r.output, 1, 'true', ['mismatch', 'near']));
MI.forEach((r, k) => all.push(rec(r, MD[k].output, 0, 'mismatched', ['mismatch'], { response_of: `alpaca/${MD[k].i}` })));
const used = new Set();
for (const r of NI) {
  const w = words(prompt(r));
  let best = -1, bs = -1;
  pool.forEach((d, k) => {
    if (used.has(k) || d.output.trim() === r.output.trim()) return;
    const s = jaccard(w, poolWords[k]);
    if (s > bs) { bs = s; best = k; }
  });
  used.add(best);
  const d = pool[best];
  all.push(rec(r, d.output, 0, 'near-miss', ['near'], { response_of: `alpaca/${d.i}`, donor_instruction: d.instruction, overlap: Number(bs.toFixed(4)) }));
}

// ---- self-instruct: expert vs davinci ----
const si = fs.readFileSync(path.join(v.data, 'self-instruct-user-oriented.jsonl'), 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
const byTask = new Map();
for (const r of si) {
  const task = r.id.split('/')[0];
  if (!byTask.has(task)) byTask.set(task, {});
  byTask.get(task)[r.source] = r;
}
const tasks = shuffle([...byTask.keys()].filter((t) => {
  const e = byTask.get(t).expert, d = byTask.get(t).davinci;
  return e && d && e.output.trim() && d.output.trim() && e.output.trim() !== d.output.trim();
})).slice(0, n);
for (const t of tasks) {
  for (const [src, label] of [['expert', 1], ['davinci', 0]]) {
    const r = byTask.get(t)[src];
    all.push({ id: r.id, instruction: r.instruction, input: r.input ?? '', output: r.output, label, kind: src, source: src, eval_sets: ['davinci'] });
  }
}

const write = (f, recs) => fs.writeFileSync(path.join(v.out, f), recs.map((r) => JSON.stringify(r)).join('\n') + '\n');
write('all.jsonl', all);
for (const s of SETS) write(`${s}.jsonl`, all.filter((r) => r.eval_sets.includes(s)));
// ---- anchors (held out of every set) ----
const A = Number(v.anchors);
if (!(Number.isInteger(A) && A >= 0)) throw new Error(`--anchors must be a whole number (got ${v.anchors})`);
if (A > 0) {
  const norm = (s) => s.trim().toLowerCase();
  const seenInstr = new Set(all.map((r) => norm(r.instruction)));
  for (const r of all) if (r.donor_instruction) seenInstr.add(norm(r.donor_instruction));
  const seenOut = new Set(all.map((r) => r.output.trim()));
  const anchors = [];
  for (const [k, r] of pool.entries()) {
    if (anchors.length === A) break;
    if (used.has(k) || seenInstr.has(norm(r.instruction)) || seenOut.has(r.output.trim())) continue;
    if (`${prompt(r)} ${r.output}`.length > 400) continue;
    anchors.push({ id: `alpaca/${r.i}/anchor`, instruction: r.instruction, input: r.input ?? '', output: r.output });
  }
  if (anchors.length < A) throw new Error(`only ${anchors.length} held-out Alpaca pairs fit the anchor rule, asked for ${A}`);
  write('anchors.jsonl', anchors);
  console.log(`${path.join(v.out, 'anchors.jsonl')}: ${A} anchor pairs held out of every set`);
}
const meanOverlap = all.filter((r) => r.kind === 'near-miss').reduce((a, r) => a + r.overlap, 0) / n;
console.log(`${path.join(v.out, 'all.jsonl')}: ${all.length} records (${SETS.map((s) => `${s} ${all.filter((r) => r.eval_sets.includes(s)).length}`).join(', ')}); near misses: mean instruction overlap ${meanOverlap.toFixed(3)}`);
