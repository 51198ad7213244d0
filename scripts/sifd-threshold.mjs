#!/usr/bin/env node
// T-SHIRT's data-set threshold for `concord score --signals sifd --sifd-threshold T` (docs/signals.md
// "Selective IFD"): the (1 − ρ) percentile of |PMI| over every response token of the data set, with
// PMI_t = loss_t − uncond_loss_t read from a `--token-scores` side file of a first scoring pass.
// Percentile as numpy's default (linear between the two nearest ranks); ρ = 0.5 (the median) as the
// authors' default.
//
//   concord score data.jsonl -o first.jsonl --token-scores tokens.jsonl
//   node scripts/sifd-threshold.mjs tokens.jsonl [--rho 0.5]

import * as fs from 'node:fs';
import * as readline from 'node:readline';
import { parseArgs } from 'node:util';

const { values: v, positionals } = parseArgs({ allowPositionals: true, options: { rho: { type: 'string', default: '0.5' } } });
const rho = Number(v.rho);
if (positionals.length !== 1 || !(rho > 0 && rho <= 1)) {
  console.error('usage: node scripts/sifd-threshold.mjs tokens.jsonl [--rho R], 0 < R ≤ 1');
  process.exit(2);
}
const file = positionals[0];
const abs = [];
let line = 0;
for await (const l of readline.createInterface({ input: fs.createReadStream(file) })) {
  line++;
  if (!l.trim()) continue;
  let r;
  try { r = JSON.parse(l); } catch (e) { console.error(`${file}:${line}: malformed JSON: ${e.message}`); process.exit(3); }
  if (!Array.isArray(r.loss) || !Array.isArray(r.uncond_loss) || r.loss.length !== r.uncond_loss.length) {
    console.error(`${file}:${line}: not a --token-scores line (needs loss and uncond_loss of one length)`);
    process.exit(3);
  }
  r.loss.forEach((x, i) => abs.push(Math.abs(x - r.uncond_loss[i])));
}
if (!abs.length) { console.error(`${file}: no tokens`); process.exit(3); }
abs.sort((a, b) => a - b);
const pos = (1 - rho) * (abs.length - 1), lo = Math.floor(pos), hi = Math.ceil(pos);
const t = abs[lo] + (abs[hi] - abs[lo]) * (pos - lo);
console.log(`${t.toPrecision(6)}\t(the ${((1 - rho) * 100).toFixed(0)}th percentile of |PMI| over ${abs.length} response tokens, nats)`);
