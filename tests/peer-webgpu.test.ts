// bench/e2e's WebGPU peer: transformers.js on onnxruntime-node's WebGPU execution provider (Dawn
// inside onnxruntime, on the Vulkan driver concord's device.ts picks: lavapipe or SwiftShader here),
// on the ONNX export of stories15M. Its per-pair figures, batch 1 and as padded batches, must agree
// with the CPU peer's, and a padded batch must score each row like that row alone. Skipped, with the
// reason, when models/stories15M-onnx has not been exported (scripts/export_onnx.py, python3-torch).

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { loadPeer, peerBatchedScores, peerPairScorer, type PeerModel } from '../bench/peer-transformers.js';
import { configureNodeVulkanDriver } from '../src/gpu/device.js';
import { llama2cTokenizer } from '../src/tokenizer/llama2c.js';

const root = join(import.meta.dirname, '..');
const ONNX_DIR = join(root, 'models', 'stories15M-onnx');
const exported = existsSync(join(ONNX_DIR, 'onnx', 'model.onnx'));
if (!exported) console.warn(`peer-webgpu: ${ONNX_DIR} not exported (run /usr/bin/python3 scripts/export_onnx.py); skipped`);

const PAIRS = [
  { instruction: 'Write a story about a dog named Max and a red ball.', input: '', output: 'Max the dog found a red ball. Max played with the ball all day.' },
  { instruction: 'Tell a story about a cat.', input: 'The cat is afraid of rain.', output: 'The cat hid under the bed.' },
];

describe.skipIf(!exported)('transformers.js-webgpu peer (onnxruntime-node WebGPU EP)', () => {
  const peers: PeerModel[] = [];
  afterAll(async () => { for (const p of peers) await p.dispose(); });

  test('batch 1 and padded batches agree with the CPU peer within 1e-4 nats/token', async () => {
    const note = await configureNodeVulkanDriver();
    console.log(`[peer-webgpu] Vulkan driver: ${note}`);
    const tok = llama2cTokenizer(join(root, 'models', 'stories15M', 'tokenizer.bin'), 32000);
    const cpu = await loadPeer(ONNX_DIR, { device: 'cpu' });
    const gpu = await loadPeer(ONNX_DIR, { device: 'webgpu' });
    peers.push(cpu, gpu);
    expect(gpu.name).toMatch(/webgpu/i);
    const cpuScore = peerPairScorer(cpu, tok, 256), gpuScore = peerPairScorer(gpu, tok, 256);
    const batched = await peerBatchedScores(gpu, tok, 256, PAIRS, 2048);
    for (let i = 0; i < PAIRS.length; i++) {
      const a = await cpuScore(PAIRS[i]), b = await gpuScore(PAIRS[i]), c = batched[i];
      for (const q of ['fwd', 'rev', 'y', 'x'] as const) {
        expect(Number.isFinite(a[q])).toBe(true);
        expect(Math.abs(a[q] - b[q]), `pair ${i} ${q} batch 1`).toBeLessThan(1e-4);
        expect(Math.abs(a[q] - c[q]), `pair ${i} ${q} batched`).toBeLessThan(1e-4);
      }
      expect(c.xTokens).toBe(a.xTokens);
      expect(c.yTokens).toBe(a.yTokens);
    }
    // a padded batch scores every row as that row alone
    const seqs = [{ ids: [1, 9038, 2501, 263, 931, 29892, 727, 471], span: [1, 8] as [number, number] }, { ids: [1, 9038, 2501, 263], span: [2, 4] as [number, number] }];
    const together = await gpu.scoreBatch(seqs);
    for (let k = 0; k < seqs.length; k++) {
      const alone = await gpu.score(seqs[k]);
      expect(together[k].count).toBe(alone.count);
      expect(Math.abs(together[k].sum - alone.sum)).toBeLessThan(1e-4);
    }
  });
});
