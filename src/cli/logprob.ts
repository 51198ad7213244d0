// `concord logprob`: per-token log-probs of a target after a context, under one model.

import { loadModel } from '../models/index.js';
import { withGgufFile } from '../models/load.js';
import { encodeStandalone } from '../pipeline/templates.js';
import { command, deviceFlag, EXIT, loadProgressPrinter, log, parseFlags, UsageError } from './common.js';

export const LOGPROB_HELP = `concord logprob --model <path|id|default> [--revision R] [--gguf-file F] --context "…" --target "…" [--device …] [--json]

Tokenises context and target separately (as scoring does), joins the ids after BOS and prints
log p(token | prefix) for every target token, with the entropy (nats) of the next-token
distribution it was drawn from, their sum, mean and the perplexity.
  --model <path|id|default>  default: stories15M; a Hub id (Org/Name[@rev]) is downloaded into the
                             Hugging Face cache on first use (docs/hub.md)
  --revision REV             branch, tag or commit of a model id (default main)
  --gguf-file NAME           one GGUF file of the model id's repo (= --model Org/Name:NAME; docs/gguf.md)
  --context TEXT             (default empty)
  --target TEXT              required
  --device auto|webgpu|cpu   (default auto)
  --json                     the same as JSON (each token: logprob and entropy)`;

export const logprobCommand = command('logprob', LOGPROB_HELP, async (argv) => {
  const { values: v } = parseFlags(argv, {
    model: { type: 'string' }, revision: { type: 'string' }, 'gguf-file': { type: 'string' }, context: { type: 'string' }, target: { type: 'string' }, device: { type: 'string' }, json: { type: 'boolean' },
  });
  if (v.target === undefined || v.target === '') throw new UsageError('--target is required (the text to score)');
  const device = deviceFlag(v.device);
  const lm = await loadModel(withGgufFile(v.model, v['gguf-file']) ?? 'default', { device, revision: v.revision, onProgress: loadProgressPrinter() });
  try {
    log(`concord: model ${lm.config.name} on ${lm.deviceName}${lm.deviceReason ? ` — ${lm.deviceReason}` : ''}`);
    const tok = lm.tokenizer;
    const start = tok.bosId ?? tok.eosId;
    if (start === null) throw new UsageError(`${lm.config.name}: no BOS/EOS token to start the sequence with`);
    // As in scoring: context and target are tokenised separately and joined as ids.
    const ctx = v.context ? encodeStandalone(tok, v.context) : [];
    const tgt = encodeStandalone(tok, v.target);
    const ids = [start, ...ctx, ...tgt];
    if (ids.length > lm.maxLen) throw new UsageError(`${ids.length} tokens is over the model's maxLen ${lm.maxLen}`);
    const [res] = await lm.scoreBatch([{ ids }], { entropy: true });
    const tokens = tgt.map((id, k) => {
      const pos = 1 + ctx.length + k;
      return { pos, id, token: tok.idToToken(id) ?? String(id), text: tok.decode([id]), logprob: res.logprobs[pos - 1], entropy: res.entropy![pos - 1] };
    });
    let sum = 0;
    for (const t of tokens) sum += t.logprob;
    const out = {
      model: lm.config.name, device: lm.deviceName, device_reason: lm.deviceReason ?? null,
      context_tokens: ctx.length, target_tokens: tgt.length, sum, mean: sum / tgt.length, ppl: Math.exp(-sum / tgt.length), tokens,
    };
    if (v.json) console.log(JSON.stringify(out, null, 2));
    else {
      console.log(`context: ${ctx.length} tokens (+BOS)   target: ${tgt.length} tokens`);
      console.log(`${'pos'.padStart(5)} ${'id'.padStart(6)}  ${'token'.padEnd(16)} logprob  entropy`);
      for (const t of tokens) console.log(`${String(t.pos).padStart(5)} ${String(t.id).padStart(6)}  ${JSON.stringify(t.token).padEnd(16)} ${t.logprob.toFixed(4).padStart(7)}  ${t.entropy.toFixed(4)}`);
      console.log(`sum ${sum.toFixed(4)}   mean ${(sum / tgt.length).toFixed(4)}   perplexity ${out.ppl.toFixed(3)}`);
    }
    return EXIT.ok;
  } finally {
    lm.dispose();
  }
});
