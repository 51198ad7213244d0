// `npm run build && node dist/bench/decode-gpu.js [--model M] [--batch 1,4] [--new-tokens 32]
//      [--peer-model models/stories15M-onnx-kv] [--reps 1]`:
// greedy decoding tokens/s of the WebGPU decoder (src/models/decode-gpu.ts) on whatever adapter
// WebGPU finds (lavapipe here), at batch 1 and batched. Validated before timing: the first
// prompt's greedy tokens equal the CPU twin's argmax of the growing sequence (forwardHiddenCpu +
// logitsCpu, the first `--check` tokens), and every batch size gives the same tokens per prompt
// (batch invariance). tokens/s counts the decode steps after the prefill (batched: aggregate).
//
// --peer-model: transformers.js `generate` on onnxruntime-node's WebGPU EP (bench/peer-generate.ts,
// the same Vulkan driver) on the KV-cache ONNX export of the same weights, in the same run: the same
// prompt ids (left-padded as a batch), greedy, exactly --new-tokens tokens. Validated before timing:
// at every batch size prompt 0's first --check tokens equal concord's (else the run is INVALID), and
// how many prompts' tokens equal concord's in full is reported. Its decode time is a run of
// --new-tokens tokens minus a run of 1 token (the prefill and first token), the same unit as
// concord's. --reps rounds, each running concord then the peer per batch size; medians reported.

import { parseArgs } from 'node:util';
import { GREEDY } from '../src/generate/types.js';
import { forwardHiddenCpu, logitsCpu } from '../src/models/forward-cpu.js';
import { loadModel } from '../src/models/index.js';
import { loadWeights } from '../src/models/load.js';
import { GENERATE_WEBGPU_PEER_NAME, loadGeneratePeer, type GeneratePeer } from './peer-generate.js';

const PROMPTS = ['Once upon a time, there was a little girl', 'The dog ran to the park', 'Tom had a red ball. One day', 'Lily and her mom went to the', 'The sun was hot and the birds', 'A big bear lived in the woods', 'Sam wanted to fly like a bird', 'One morning, the cat'];

function argmax(x: Float32Array): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { model: { type: 'string', default: 'default' }, batch: { type: 'string', default: '1,4' }, 'new-tokens': { type: 'string', default: '32' }, check: { type: 'string', default: '6' }, 'peer-model': { type: 'string' }, reps: { type: 'string', default: '1' } } });
  const reps = Math.max(1, Number(values.reps));
  const batches = values.batch!.split(',').map(Number);
  const N = Number(values['new-tokens']), nCheck = Math.min(Number(values.check), N);
  const lm = await loadModel(values.model, { device: 'webgpu' });
  if (lm.backend !== 'webgpu' || !lm.createDecoder) throw new Error(`decode-gpu: no WebGPU adapter (${lm.deviceReason})`);
  const bos = lm.tokenizer.bosId;
  const maxB = Math.max(...batches);
  const prompts = Array.from({ length: maxB }, (_, i) => [...(bos === null ? [] : [bos]), ...lm.tokenizer.encode(PROMPTS[i % PROMPTS.length], { addSpecial: false })]);
  const maxLen = Math.max(...prompts.map((p) => p.length)) + N;
  const dec = await lm.createDecoder({ slots: maxB, maxLen });
  const run = async (B: number) => {
    for (let s = 0; s < B; s++) dec.reset(s);
    const tokens = prompts.slice(0, B).map(() => [] as number[]);
    let t = performance.now();
    let ids = await dec.step(prompts.slice(0, B).map((p, s) => ({ slot: s, ids: p, sampling: GREEDY, step: 0 })));
    const prefillMs = performance.now() - t;
    ids.forEach((id, s) => tokens[s].push(id));
    t = performance.now();
    for (let k = 1; k < N; k++) {
      ids = await dec.step(tokens.map((tk, s) => ({ slot: s, ids: [tk[k - 1]], sampling: GREEDY, step: k })));
      ids.forEach((id, s) => tokens[s].push(id));
    }
    return { tokens, prefillMs, decodeMs: performance.now() - t };
  };
  // Validate: the CPU twin's greedy tokens for prompt 0 (same weights; the GPU stores f32 or f16).
  const w = await loadWeights(values.model, {});
  const seq = [...prompts[0]];
  const want: number[] = [];
  for (let i = 0; i < nCheck; i++) {
    const h = forwardHiddenCpu(w, seq);
    const id = argmax(logitsCpu(w, h, [seq.length - 1]));
    want.push(id);
    seq.push(id);
  }
  const warm = await run(maxB);
  const got = warm.tokens[0].slice(0, nCheck);
  if (JSON.stringify(got) !== JSON.stringify(want)) {
    console.error(`decode-gpu: INVALID — greedy tokens ${got.join(' ')} differ from the CPU twin's ${want.join(' ')}${lm.f16 ? ' (f16 weights: a near-tie may flip)' : ''}`);
    return 4;
  }
  console.log(`decode-gpu: ${lm.config.name} on ${lm.deviceName}; greedy tokens of prompt 0 equal the CPU twin's for ${nCheck} tokens`);
  let peer: GeneratePeer | null = null;
  const same: Record<number, number> = {};
  if (values['peer-model']) {
    peer = await loadGeneratePeer(values['peer-model'], { device: 'webgpu' });
    for (const B of batches) {
      const theirs = await peer.generate(prompts.slice(0, B), N, { temperature: 0, topP: 1 });
      if (JSON.stringify(theirs[0].slice(0, nCheck)) !== JSON.stringify(warm.tokens[0].slice(0, nCheck))) {
        console.error(`decode-gpu: INVALID — at batch ${B} the peer's greedy tokens ${theirs[0].join(' ')} differ from concord's ${warm.tokens[0].join(' ')} in the first ${nCheck}`);
        return 4;
      }
      same[B] = theirs.filter((t, i) => JSON.stringify(t) === JSON.stringify(warm.tokens[i])).length;
    }
    console.log(`peer: ${GENERATE_WEBGPU_PEER_NAME} ${peer.version}; prompt 0's first ${nCheck} greedy tokens equal concord's at every batch size`);
  }
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const rows = new Map<number, { prefill: number[]; tokS: number[]; step: number[]; peerTokS: number[]; peerPrefill: number[] }>();
  for (let rep = 0; rep < reps; rep++) {
    for (const B of batches) {
      const row = rows.get(B) ?? { prefill: [], tokS: [], step: [], peerTokS: [], peerPrefill: [] };
      rows.set(B, row);
      const r = await run(B);
      r.tokens.forEach((t, i) => {
        if (JSON.stringify(t) !== JSON.stringify(warm.tokens[i])) throw new Error(`decode-gpu: batch ${B}, prompt ${i}: tokens differ from the batch-${maxB} run (batch invariance)`);
      });
      row.prefill.push(r.prefillMs);
      row.tokS.push((B * (N - 1)) / (r.decodeMs / 1000));
      row.step.push(r.decodeMs / (N - 1));
      if (peer) {
        const ps = prompts.slice(0, B), greedy = { temperature: 0, topP: 1 };
        let t = performance.now();
        await peer.generate(ps, 1, greedy);
        const first = performance.now() - t;
        t = performance.now();
        await peer.generate(ps, N, greedy);
        const all = performance.now() - t;
        row.peerPrefill.push(first);
        row.peerTokS.push((B * (N - 1)) / (Math.max(1e-3, all - first) / 1000));
      }
    }
  }
  console.log(`medians of ${reps} round(s), ${N} new tokens per prompt`);
  console.log(`| batch | prefill (ms) | new tok/s (decode steps, aggregate) | ms / step |${peer ? ' peer prefill (ms) | peer new tok/s | × peer | prompts = peer |' : ''}`);
  console.log(`|--:|--:|--:|--:|${peer ? '--:|--:|--:|--:|' : ''}`);
  for (const B of batches) {
    const r = rows.get(B)!, tokS = median(r.tokS);
    const p = peer ? ` ${median(r.peerPrefill).toFixed(0)} | ${median(r.peerTokS).toFixed(1)} | ${(tokS / median(r.peerTokS)).toFixed(2)}× | ${same[B]}/${B} |` : '';
    console.log(`| ${B} | ${median(r.prefill).toFixed(0)} | ${tokS.toFixed(1)} | ${median(r.step).toFixed(1)} |${p}`);
  }
  await peer?.dispose();
  dec.dispose();
  lm.dispose();
  return 0;
}

main().then((c) => process.exit(c), (e) => { console.error(`decode-gpu: ${(e as Error).message}`); process.exit(1); });
