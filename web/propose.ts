// The "propose instructions" view: a response (pasted, or a sample story's) → the worker generates
// k candidate instructions with the reverse prompt on the chosen device (WebGPU: the GPU decoder,
// sampling on the GPU), scores each (candidate, response) like the scoring view, and this page
// ranks them with the selected rule (chooseCandidate: the argmax of applyFilter's rank over the
// candidates; a new rule reranks the held scores). The chosen one is shown beside the original
// instruction; the downloads are the CLI's record shape (web/engine.ts candidateLines).

import { candidateLines, chooseCandidate, parseRecords, RULES, toJsonl, type Candidate, type FilterResult, type Proposal, type ProposeSettings, type Rule, type ScoredPair } from './engine.js';
import type { EncoderSpec, FromWorker, ModelSpec, ProposeInfo, ToWorker } from './protocol.js';

export interface ProposeContext {
  worker: Worker;
  modelSpec(): ModelSpec;
  encoderSpec(): EncoderSpec | null;
  gpuOk(): boolean;
}

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} missing`);
  return el as T;
};

// Run ids of this view, apart from the scoring view's (which counts up from 1).
let runId = 1_000_000;
let running = false;
let samples: Record<string, unknown>[] = [];
let proposal: Proposal | null = null;
let info: ProposeInfo | null = null;
let choice: { filter: FilterResult; chosen: number } | null = null;
let ctx: ProposeContext;

const setState = (s: 'running' | 'done' | 'error') => { document.body.dataset.propose = s; };
const num = (v: number | undefined | null, d = 3) => (typeof v === 'number' && Number.isFinite(v) ? v.toFixed(d) : '—');

function setButtons(): void {
  $<HTMLButtonElement>('propose-gpu').disabled = running || !ctx.gpuOk();
  $<HTMLButtonElement>('propose-cpu').disabled = running;
  $<HTMLInputElement>('propose-temp').disabled = $<HTMLInputElement>('propose-greedy').checked;
  $<HTMLInputElement>('propose-top-p').disabled = $<HTMLInputElement>('propose-greedy').checked;
}

/** The sample stories for the picker (the page's sample set). */
async function loadSamples(): Promise<void> {
  try {
    const r = await fetch('data/sample-pairs.jsonl');
    if (!r.ok) return;
    samples = parseRecords(await r.text()).records.filter((x): x is Record<string, unknown> => !!x && typeof x === 'object' && typeof (x as Record<string, unknown>).output === 'string');
  } catch {
    return;
  }
  const sel = $<HTMLSelectElement>('propose-sample');
  samples.forEach((s, i) => {
    const label = `${s.id ?? `#${i + 1}`}: ${String(s.output).slice(0, 70)}…`;
    sel.append(new Option(label, String(i)));
  });
}

/** What the worker proposes for: the picked sample's record while its response is unedited, else the text alone. */
function proposeInput(): unknown {
  const text = $<HTMLTextAreaElement>('propose-response').value;
  const i = $<HTMLSelectElement>('propose-sample').value;
  const s = i === '' ? undefined : samples[Number(i)];
  if (s && s.output === text) return s;
  return text;
}

function settings(): ProposeSettings {
  const int = (id: string, what: string, min: number): number => {
    const v = Number($<HTMLInputElement>(id).value);
    if (!Number.isInteger(v) || v < min) throw new Error(`${what} must be an integer ≥ ${min}`);
    return v;
  };
  const greedy = $<HTMLInputElement>('propose-greedy').checked;
  const temperature = greedy ? 0 : Number($<HTMLInputElement>('propose-temp').value);
  const topP = greedy ? 1 : Number($<HTMLInputElement>('propose-top-p').value);
  if (!(temperature >= 0)) throw new Error('temperature must be ≥ 0');
  if (!(topP > 0 && topP <= 1)) throw new Error('top-p must be in (0, 1]');
  const seed = int('propose-seed', 'seed', 0);
  if (seed > 0xffffffff) throw new Error('seed must be a uint32');
  return { k: int('propose-k', 'candidates', 1), maxNewTokens: int('propose-max', 'max new tokens', 1), stop: $<HTMLInputElement>('propose-stop').value, sampling: { temperature, topK: 0, topP, minP: 0, seed } };
}

function start(device: 'webgpu' | 'cpu'): void {
  const err = $('propose-error');
  err.hidden = true;
  let msg: ToWorker;
  try {
    const input = proposeInput();
    if (typeof input === 'string' && input.trim() === '') throw new Error('paste a response, or pick a sample story');
    msg = { type: 'propose', run: ++runId, model: ctx.modelSpec(), encoder: ctx.encoderSpec(), device, input, settings: settings() };
  } catch (e) {
    err.textContent = (e as Error).message;
    err.hidden = false;
    return;
  }
  running = true;
  setButtons();
  setState('running');
  $('propose-status').textContent = 'starting…';
  ctx.worker.postMessage(msg);
}

const rule = (): Rule => $<HTMLSelectElement>('propose-rule').value as Rule;

const scoreLine = (p: ScoredPair | null) => (p?.scores
  ? `g_fwd ${num(p.g_fwd)} · g_rev ${num(p.g_rev)} · cosine ${num(p.scores.cosine)}`
  : p?.error ? `not scored: ${p.error}` : '');

function rerank(): void {
  if (!proposal) return;
  const err = $('propose-error');
  try {
    choice = chooseCandidate(proposal.candidates, rule());
    err.hidden = true;
  } catch (e) {
    err.textContent = (e as Error).message; // e.g. the cosine rule without an encoder
    err.hidden = false;
    choice = null;
    return;
  }
  const { filter, chosen } = choice;
  const c: Candidate | undefined = proposal.candidates[chosen];
  $('propose-chosen').textContent = c ? c.x : '(no candidate could be scored)';
  $('propose-chosen-scores').textContent = c ? `sample ${c.sample} · ${scoreLine(c)} · rule ${filter.applied.rule} rank ${num(filter.rank[chosen], 4)}` +
    (filter.rank[chosen] === -Infinity ? ' (no candidate clears the rule; the first scored one is shown)' : '') : '';
  $('propose-original').textContent = proposal.original ?? '(none: a pasted response)';
  $('propose-original-scores').textContent = scoreLine(proposal.originalPair);
  const trs = proposal.candidates.map((p, i) => {
    const tr = document.createElement('tr');
    tr.className = i === chosen ? 'chosen' : '';
    const cells = [String(p.sample), i === chosen ? '✓' : '', num(filter.rank[i], 4), num(filter.score[i]), num(p.g_fwd), num(p.g_rev), num(p.scores?.cosine),
      String(p.generated_tokens), p.finish_reason, p.error ? `${p.x} (${p.error})` : p.x];
    cells.forEach((t, k) => {
      const td = document.createElement('td');
      td.textContent = t;
      td.className = k === cells.length - 1 ? 'text' : 'mono';
      tr.appendChild(td);
    });
    return tr;
  });
  document.querySelector('#propose-table tbody')!.replaceChildren(...trs);
  $('propose-result').hidden = false;
}

function download(which: 'chosen' | 'candidates'): void {
  if (!proposal || !choice) return;
  const lines = candidateLines(proposal.candidates, choice.filter, choice.chosen);
  const rows = which === 'chosen' ? lines.filter((l) => l.chosen) : lines;
  const a = document.createElement('a');
  a.href = URL.createObjectURL(new Blob([toJsonl(rows)], { type: 'application/x-ndjson' }));
  a.download = `${which === 'chosen' ? 'proposed' : 'candidates'}.jsonl`;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
}

function onMessage(ev: MessageEvent<FromWorker>): void {
  const m = ev.data;
  if (m.type === 'probe' || m.run !== runId) return;
  if (m.type === 'status') $('propose-status').textContent = m.text;
  else if (m.type === 'proposed') {
    running = false;
    proposal = m.proposal;
    info = m.info;
    setButtons();
    const p = m.proposal;
    $('propose-status').textContent = `${info.model} · ${info.deviceName} · cosine ${info.encoder ?? 'off'} · prompt ${p.promptTokens} tokens (template ${JSON.stringify(p.template)}) · ` +
      `${p.candidates.length} candidates generated in ${p.generateSeconds.toFixed(1)} s, scored in ${p.scoreSeconds.toFixed(1)} s (model load ${info.loadSeconds.toFixed(1)} s)`;
    rerank();
    setState('done');
  } else if (m.type === 'error') {
    running = false;
    setButtons();
    $('propose-error').textContent = m.message;
    $('propose-error').hidden = false;
    setState('error');
  }
}

export function initPropose(c: ProposeContext): void {
  ctx = c;
  c.worker.addEventListener('message', onMessage);
  $<HTMLSelectElement>('propose-rule').append(...RULES.map((r) => new Option(r, r, r === 'auto', r === 'auto')));
  $('propose-rule').addEventListener('change', rerank);
  $('propose-sample').addEventListener('change', () => {
    const i = $<HTMLSelectElement>('propose-sample').value;
    if (i !== '') $<HTMLTextAreaElement>('propose-response').value = String(samples[Number(i)].output);
  });
  $('propose-greedy').addEventListener('change', setButtons);
  $('propose-gpu').addEventListener('click', () => start('webgpu'));
  $('propose-cpu').addEventListener('click', () => start('cpu'));
  $('dl-chosen').addEventListener('click', () => download('chosen'));
  $('dl-candidates').addEventListener('click', () => download('candidates'));
  setButtons();
  void loadSamples();
}

/** After the WebGPU probe (the WebGPU button follows it). */
export const proposeProbed = (): void => setButtons();

/** For tests and the console (read-only views). */
export const proposeView = {
  get proposal() { return proposal; },
  get info() { return info; },
  get choice() { return choice; },
  get samples() { return samples; },
};
