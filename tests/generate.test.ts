// `concord generate` (src/cli/generate.ts, src/generate/job.ts, src/generate/prompts.ts): the quick
// form against the float64 greedy reference, file jobs in both directions, samples, stop strings,
// bad records, resume after a failed write, usage errors.

import * as fs from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { generate } from '../src/generate/engine.js';
import { promptBuilder } from '../src/generate/prompts.js';
import { GREEDY } from '../src/generate/types.js';
import { loadModel } from '../src/models/index.js';
import { chatFormatFromTemplate } from '../src/pipeline/chat-template.js';
import { passSequences, planPasses, SLOT_ONLY } from '../src/pipeline/plan.js';
import { encodeStandalone, encodeTemplate, parseTemplate } from '../src/pipeline/templates.js';
import { record, ROOT, setupCli } from './helpers/cli.js';

const STORIES = join(ROOT, 'models', 'stories15M');
const PHI3 = join(ROOT, 'tests', 'fixtures', 'hf', 'phi3');
const GREEDY_REF = JSON.parse(fs.readFileSync(join(ROOT, 'tests', 'fixtures', 'greedy-reference.json'), 'utf8')).cases as { model: string; prompt_text?: string; tokens: number[]; text?: string }[];
const CHATML = "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

describe('generation prompts are the scorer\'s contexts', () => {
  it('forward and reverse, default and chat templates: the prompt is the scorer\'s sequence cut at the generated slot', async () => {
    const lm = await loadModel(PHI3, { device: 'cpu-twin', threads: 1 });
    const tok = lm.tokenizer;
    const chat = chatFormatFromTemplate({ text: CHATML, origin: 'test.jinja' }, tok, { model: 'phi3' });
    const x = 'Write a story about a red ball.', y = 'The ball rolled away into the park.';
    for (const c of [null, chat]) {
      const fwd = c?.forward ?? (tok.dummyPrefix ? '{x}{y}' : '{x}\n\n{y}'), rev = c?.reverse ?? (tok.dummyPrefix ? '{y}{x}' : '{y}\n\n{x}');
      const plan = planPasses({ forward: encodeTemplate(tok, parseTemplate(fwd, ['x', 'y'])), reverse: encodeTemplate(tok, parseTemplate(rev, ['y', 'x'])), xOnly: encodeTemplate(tok, SLOT_ONLY.x), yOnly: encodeTemplate(tok, SLOT_ONLY.y), sameModel: true, fourPass: true });
      const xIds = encodeStandalone(tok, x), yIds = encodeStandalone(tok, y);
      const seqs = passSequences(plan, tok.bosId!, xIds, yIds);
      const fSeq = seqs.find((s) => s.spans.x && s.spans.y && s.spans.x[0] < s.spans.y[0])!;
      const rSeq = seqs.find((s) => s.spans.x && s.spans.y && s.spans.y[0] < s.spans.x[0])!;
      expect(promptBuilder(tok, { direction: 'forward', chat: c }).build(x)).toEqual(fSeq.ids.slice(0, fSeq.spans.y![0]));
      expect(promptBuilder(tok, { direction: 'reverse', chat: c }).build(y)).toEqual(rSeq.ids.slice(0, rSeq.spans.x![0]));
    }
    // The chat prompt really holds the template's text: user turn, then the assistant header.
    const p = promptBuilder(tok, { direction: 'reverse', chat }).build(y);
    expect(tok.decode(p.slice(1))).toMatch(/^<\|im_start\|>user\n.*The ball rolled away into the park\.<\|im_end\|>\n<\|im_start\|>assistant\n$/s);
    lm.dispose();
  });
});

describe('concord generate', () => {
  const c = setupCli('concord-generate-');
  const ref = GREEDY_REF.find((r) => r.model === 'stories15M')!;

  it('--prompt greedy on stories15M equals the float64 PyTorch greedy loop, token for token', async () => {
    const r = await c.run(['generate', '--model', STORIES, '--device', 'cpu-twin', '--prompt', ref.prompt_text!, '--max-new-tokens', String(ref.tokens.length), '--temperature', '0', '--json'], {}, { fake: false });
    expect(r.code, r.stderr).toBe(0);
    const o = JSON.parse(r.stdout);
    expect(o.ids).toEqual(ref.tokens);
    expect(o.text).toBe(ref.text);
    expect(o).toMatchObject({ generated_tokens: ref.tokens.length, finish_reason: 'length' });
    // A stop string: the text is cut before it, finish_reason stop.
    const s = await c.run(['generate', '--model', STORIES, '--device', 'cpu-twin', '--prompt', ref.prompt_text!, '--max-new-tokens', '20', '--temperature', '0', '--stop', 'Max', '--json'], {}, { fake: false });
    expect(s.code, s.stderr).toBe(0);
    const so = JSON.parse(s.stdout);
    expect(so.finish_reason).toBe('stop');
    expect(so.text).toBe(ref.text!.slice(0, ref.text!.indexOf('Max')));
  }, 120_000);

  it('a file forward and reverse: input order, fields, finish reasons, bad records to the errors file', async () => {
    const recs = Array.from({ length: 7 }, (_, i) => record(i));
    const lines = recs.map((r) => JSON.stringify(r));
    lines.splice(3, 0, '{"instruction": 5}', 'not json');
    fs.writeFileSync(c.p('in.jsonl'), lines.join('\n') + '\n');
    const args = ['generate', 'in.jsonl', '--model', PHI3, '--device', 'cpu-twin', '--max-new-tokens', '6', '--temperature', '0', '--slots', '3', '--quiet'];
    const f = await c.run([...args, '-o', 'fwd.jsonl'], {}, { fake: false });
    expect(f.code, f.stderr).toBe(0);
    const out = c.lines('fwd.jsonl');
    expect(out.map((o) => o.id)).toEqual(recs.map((r) => r.id));
    const errs = c.lines('fwd.jsonl.errors.jsonl');
    expect(errs.map((e) => e.line)).toEqual([4, 5]);
    expect(errs[0].error).toMatch(/field 'instruction' must be a string/);
    // The same generations as the library: the prompt builder and the engine on the twin.
    const lm = await loadModel(PHI3, { device: 'cpu-twin', threads: 1 });
    const b = promptBuilder(lm.tokenizer, { direction: 'forward' });
    const want = await generate(await lm.createDecoder!({ slots: 1, maxLen: lm.maxLen }), recs.map((r) => ({ prompt: b.build(r.input ? `${r.instruction}\n\n${r.input}` : r.instruction), sampling: GREEDY, maxNewTokens: 6, stopIds: [lm.tokenizer.eosId!] })), { decode: (ids) => lm.tokenizer.decode(ids) });
    out.forEach((o, i) => {
      expect(o.output).toBe(want.results[i].text);
      expect(o.original_output).toBe(recs[i].output);
      expect(o.generated_tokens).toBe(want.results[i].generated_tokens);
      expect(['eos', 'stop', 'length']).toContain(o.finish_reason);
    });
    const r = await c.run([...args, '-o', 'rev.jsonl', '--direction', 'reverse'], {}, { fake: false });
    expect(r.code, r.stderr).toBe(0);
    const rev = c.lines('rev.jsonl');
    expect(rev.map((o) => o.id)).toEqual(recs.map((x) => x.id));
    rev.forEach((o, i) => {
      expect(o.output).toBe(recs[i].output);
      expect(o.original_instruction).toBe(recs[i].instruction);
      expect(o.input).toBeUndefined();
      expect(typeof o.instruction).toBe('string');
    });
    lm.dispose();
  }, 120_000);

  it('--num-samples 3 sampled: 3 lines per record, reproducible; --resume after a failed write gives the same bytes', async () => {
    fs.writeFileSync(c.p('s.jsonl'), Array.from({ length: 12 }, (_, i) => JSON.stringify(record(i))).join('\n') + '\n');
    const args = ['generate', 's.jsonl', '--model', PHI3, '--device', 'cpu-twin', '--max-new-tokens', '5', '--num-samples', '3', '--temperature', '0.9', '--top-p', '0.95', '--seed', '11', '--quiet', '--checkpoint-every', '2'];
    const a = await c.run([...args, '-o', 'a.jsonl'], {}, { fake: false });
    expect(a.code, a.stderr).toBe(0);
    const out = c.lines('a.jsonl');
    expect(out.length).toBe(36);
    expect(out.map((o) => `${o.id}/${o.sample}`)).toEqual(Array.from({ length: 36 }, (_, n) => `${Math.floor(n / 3)}/${n % 3}`));
    expect(new Set(out.map((o) => o.output)).size).toBeGreaterThan(12); // samples differ
    const full = fs.readFileSync(c.p('a.jsonl'), 'utf8');
    // Writes to b.jsonl fail (ENOSPC) after 3 kB: the run stops; --resume finishes it.
    const failed = await c.run([...args, '-o', 'b.jsonl'], { CONCORD_TEST_FAIL_WRITE: 'b.jsonl:3000' }, { fake: false });
    expect(failed.code).not.toBe(0);
    expect(failed.stderr).toMatch(/no space left/);
    expect(fs.existsSync(c.p('b.jsonl.progress.json'))).toBe(true);
    const resumed = await c.run([...args, '-o', 'b.jsonl', '--resume'], {}, { fake: false });
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(fs.readFileSync(c.p('b.jsonl'), 'utf8')).toBe(full);
    // Other options: the checkpoint is refused.
    const again = await c.run([...args, '-o', 'd.jsonl'], { CONCORD_TEST_FAIL_WRITE: 'd.jsonl:3000' }, { fake: false });
    expect(again.code).not.toBe(0);
    const other = await c.run([...args.map((x) => (x === '11' ? '12' : x)), '-o', 'd.jsonl', '--resume'], {}, { fake: false });
    expect(other.code).toBe(6);
    expect(other.stderr).toMatch(/cannot resume/);
  }, 180_000);

  it('usage errors exit 2', async () => {
    for (const args of [['generate'], ['generate', 'x.jsonl'], ['generate', '--prompt', 'hi', '--top-p', '0'], ['generate', '--prompt', 'hi', '--direction', 'sideways'], ['generate', '--prompt', 'hi', '--temperature', '-1']]) {
      const r = await c.run(args, {}, { fake: false });
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
    }
  });
});
