#!/usr/bin/env node
// Benchmark helper (not part of concord): adds the all-MiniLM-L6-v2 x↔y cosine to scored records
// through onnxruntime-node on the CPU, for evaluation sets scored with `--cosine off` on a machine
// where concord's own CPU encoder is too slow to wait for. The same model file concord's encoder
// reads (models/all-MiniLM-L6-v2/model_q4.onnx), concord's own WordPiece tokenizer (dist/, so run
// `npm run build` first) and texts (x = instruction + "\n\n" + input, y = output), mean pooling
// and L2 normalisation as src/encoder. `--check scored-embed.jsonl` compares with cosines concord's
// encoder wrote (`concord score --cosine embed`) for the records both files have (by id).
//
//   node scripts/encoder-cosine.mjs scored.jsonl -o scored-cos.jsonl [--check scored-embed.jsonl]

import * as fs from 'node:fs';
import { parseArgs } from 'node:util';
import ort from 'onnxruntime-node';
import * as os from 'node:os';
import * as path from 'node:path';
import { encodeOnnx, onnx } from '../dist/src/formats/onnx.js';
import { BertTokenizer } from '../dist/src/encoder/tokenize.js';
import { recordToPair } from '../dist/src/pipeline/input.js';

const { values: v, positionals } = parseArgs({ allowPositionals: true, options: { output: { type: 'string', short: 'o' }, check: { type: 'string' } } });
const dir = 'models/all-MiniLM-L6-v2';
const tok = new BertTokenizer(JSON.parse(fs.readFileSync(`${dir}/tokenizer.json`, 'utf8')), JSON.parse(fs.readFileSync(`${dir}/tokenizer_config.json`, 'utf8')), 256);
// The shipped graph asks onnxruntime for int8 activations inside MatMulNBits (accuracy_level=4);
// concord computes in f32. A copy of the same graph and weights at accuracy_level=0 matches
// concord's encoder to ~3e-7 in pair cosine (README "Sentence embeddings"; tests/embed.test.ts).
const m = onnx.ModelProto.decode(fs.readFileSync(`${dir}/model_q4.onnx`));
for (const nd of m.graph?.node ?? []) for (const a of nd.attribute ?? []) if (a.name === 'accuracy_level') a.i = 0;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'concord-evalcos-'));
fs.writeFileSync(path.join(tmp, 'model.onnx'), encodeOnnx(m));
fs.copyFileSync(`${dir}/model_q4.onnx_data`, path.join(tmp, 'model_q4.onnx_data'));
const session = await ort.InferenceSession.create(path.join(tmp, 'model.onnx'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

async function embed(text) {
  const ids = tok.encode(text).ids;
  const L = ids.length;
  const t = (a) => new ort.Tensor('int64', BigInt64Array.from(a, BigInt), [1, L]);
  const out = await session.run({ input_ids: t(ids), attention_mask: t(ids.map(() => 1)), token_type_ids: t(ids.map(() => 0)) });
  const h = out.last_hidden_state.data;
  const d = h.length / L;
  const m = new Float64Array(d);
  for (let i = 0; i < L; i++) for (let k = 0; k < d; k++) m[k] += h[i * d + k] / L;
  const norm = Math.hypot(...m);
  return m.map((x) => x / norm);
}
const dot = (a, b) => a.reduce((s, x, k) => s + x * b[k], 0);

const lines = fs.readFileSync(positionals[0], 'utf8').split('\n').filter((l) => l.trim());
const out = [];
const byId = new Map();
for (const l of lines) {
  const r = JSON.parse(l);
  if (!r.scores) { out.push(l); continue; }
  const p = recordToPair(r);
  const c = dot(await embed(p.x), await embed(p.y));
  r.scores.cosine = c;
  r.scores.cosine_source = 'embed:all-MiniLM-L6-v2 (onnxruntime)';
  byId.set(r.id, c);
  out.push(JSON.stringify(r));
}
if (v.output) fs.writeFileSync(v.output, out.join('\n') + '\n');
console.log(`${positionals[0]}: ${byId.size} cosines${v.output ? ` → ${v.output}` : ''}`);
if (v.check) {
  let n = 0, max = 0;
  for (const l of fs.readFileSync(v.check, 'utf8').split('\n').filter((x) => x.trim())) {
    const r = JSON.parse(l);
    let c = byId.get(r.id);
    if (c === undefined && r.scores) {
      const p = recordToPair(r);
      c = dot(await embed(p.x), await embed(p.y));
    }
    if (c === undefined || typeof r.scores?.cosine !== 'number' || !String(r.scores.cosine_source).startsWith('embed:')) continue;
    n++;
    max = Math.max(max, Math.abs(c - r.scores.cosine));
  }
  console.log(`check against ${v.check}: ${n} records, max |Δcosine| ${max.toExponential(2)}`);
}
