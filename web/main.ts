// The page: model and data inputs, the run (in a worker), and the results — scatter of g_fwd vs
// g_rev coloured by keep/drop, a histogram of each, the keep-fraction / threshold control (the
// filter reruns on the scores held here; nothing is rescored), the table, and the downloads.

import {
  BarController, BarElement, CategoryScale, Chart, Legend, LinearScale, LineController, LineElement, PointElement,
  ScatterController, Title, Tooltip, type ChartDataset, type TooltipItem,
} from 'chart.js';
import { appliedParams, DEFAULT_ENCODER, filterPairs, outputRecord, parseRecords, RULES, toJsonl, type FilterControl, type FilterResult, type Rule, type ScoredPair } from './engine.js';
import type { EncoderSpec, FromWorker, GpuProbe, ModelSpec, RunInfo, ToWorker } from './protocol.js';
import { initPropose, proposeProbed, proposeView } from './propose.js';

Chart.register(ScatterController, LineController, BarController, LinearScale, CategoryScale, PointElement, LineElement, BarElement, Title, Tooltip, Legend);

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} missing`);
  return el as T;
};

const KEPT = '#1b9e77', DROPPED = '#d95f02', DROPPED_FILL = 'rgba(217, 95, 2, 0.45)', KEPT_FILL = 'rgba(27, 158, 119, 0.75)';

// ---- state ----------------------------------------------------------------------------------------

const params = new URLSearchParams(location.search);
const urlModel = params.get('model') && params.get('tokenizer')
  ? { model: params.get('model')!, tokenizer: params.get('tokenizer')!, name: params.get('name') ?? params.get('model')! }
  : null;

/** The sentence encoder (the CLI's --cosine auto): served with the page; ?encoder=off scores without it, ?encoder=URL names another ONNX folder. */
function encoderSpec(): EncoderSpec | null {
  const e = params.get('encoder');
  if (e === 'off') return null;
  return { name: params.get('encoder-name') ?? (e ? e.replace(/\/+$/, '').split('/').pop()! : DEFAULT_ENCODER), base: new URL(e ?? `models/${DEFAULT_ENCODER}/`, location.href).href };
}

let probe: GpuProbe | null = null;
let runId = 0;
let running = false;
let pairs: ScoredPair[] = [];
let filter: FilterResult | null = null;
let info: RunInfo | null = null;
let sortKey: string | null = null;
let sortDesc = true;
/** The status lines of the current run (model download and load progress), for tests and the console. */
let statusLog: string[] = [];

const worker = new Worker(new URL('./worker.ts', import.meta.url), { type: 'module' });
const send = (m: ToWorker) => worker.postMessage(m);

function setState(s: 'idle' | 'scoring' | 'done' | 'error'): void {
  document.body.dataset.state = s;
}

// ---- WebGPU status --------------------------------------------------------------------------------

function showProbe(p: GpuProbe): void {
  probe = p;
  const el = $('gpu-status');
  const gpuBtn = $<HTMLButtonElement>('run-gpu');
  if (p.ok) {
    el.className = 'status ok';
    el.textContent = `WebGPU: ${p.adapter}${p.software ? ' — a software adapter (CPU rasteriser): correct but slow' : ''}` +
      `${p.features?.includes('shader-f16') ? ' · shader-f16' : ''}`;
    gpuBtn.disabled = running;
  } else {
    el.className = 'status bad';
    el.textContent = `No WebGPU here: ${p.error}. The CPU path below still works — choose it explicitly ("Score on the CPU"); ` +
      'it is exact but much slower. For WebGPU use a recent Chrome/Edge (or Firefox/Safari with WebGPU enabled).';
    gpuBtn.disabled = true;
    gpuBtn.title = 'WebGPU is not available in this browser';
  }
}

// ---- model choice ---------------------------------------------------------------------------------

const modelChoice = (): string => (document.querySelector<HTMLInputElement>('input[name=model]:checked')?.value ?? 'default');

function updateModelInputs(): void {
  const choice = modelChoice();
  document.querySelectorAll<HTMLElement>('.sub-inputs').forEach((d) => { d.hidden = d.dataset.for !== choice; });
}

/** The served model; URLs made absolute against the page (the worker resolves against its own script). */
function defaultModelSpec(): Extract<ModelSpec, { kind: 'url' }> {
  const abs = (u: string) => new URL(u, location.href).href;
  const m = urlModel ?? { name: 'stories15M (llama2.c)', model: 'models/stories15M/model.bin', tokenizer: 'models/stories15M/tokenizer.bin' };
  return { kind: 'url', name: m.name, model: abs(m.model), tokenizer: abs(m.tokenizer) };
}

function modelSpec(): ModelSpec {
  const choice = modelChoice();
  if (choice === 'llama2c') {
    const m = $<HTMLInputElement>('l2c-model').files?.[0];
    const t = $<HTMLInputElement>('l2c-tokenizer').files?.[0];
    if (!m || !t) throw new Error('choose both the checkpoint (model.bin) and its tokenizer.bin');
    return { kind: 'llama2c-files', name: `${m.name} (llama2.c)`, model: m, tokenizer: t };
  }
  if (choice === 'hub') {
    const spec = $<HTMLInputElement>('hub-id').value.trim();
    if (!spec) throw new Error('type a Hub model id (Org/Name or Org/Name@revision)');
    return { kind: 'hub', name: spec, spec, endpoint: $<HTMLInputElement>('hub-endpoint').value.trim() };
  }
  if (choice === 'hf') {
    const list = [...($<HTMLInputElement>('hf-folder').files ?? [])];
    if (list.length === 0) throw new Error('choose a Hugging Face model folder');
    const top = list[0].webkitRelativePath.split('/')[0] || 'model';
    const files: [string, File][] = list.map((f) => [f.webkitRelativePath.split('/').slice(1).join('/') || f.name, f]);
    return { kind: 'hf-files', name: top, files };
  }
  return defaultModelSpec();
}

async function checkDefaultModel(): Promise<void> {
  const spec = defaultModelSpec();
  const label = $('default-model-label');
  if (urlModel) label.textContent = `${urlModel.name} (llama2.c, from the page's URL)`;
  try {
    const r = await fetch(spec.model, { method: 'HEAD' });
    const size = Number(r.headers.get('content-length') ?? 0);
    if (!r.ok) throw new Error(String(r.status));
    if (size) label.textContent += ` · ${(size / 1e6).toFixed(1)} MB`;
  } catch {
    $('model-note').textContent = `The default model is not served with this page (${spec.model}); choose your own files.`;
  }
}

// ---- data -----------------------------------------------------------------------------------------

function dataNote(): void {
  const parsed = parseRecords($<HTMLTextAreaElement>('data-text').value);
  const note = $('data-note');
  note.classList.toggle('error-text', parsed.errors.length > 0);
  note.textContent = parsed.records.length || parsed.errors.length
    ? `${parsed.records.length} records${parsed.errors.length ? ` · ${parsed.errors.length} unreadable (${parsed.errors.slice(0, 2).join('; ')})` : ''}`
    : 'Alpaca (instruction/input/output), messages or conversations records, one per line, a JSON array, or a Parquet file (drop or choose it).';
}

async function loadText(text: string): Promise<void> {
  $<HTMLTextAreaElement>('data-text').value = text;
  dataNote();
}

/** A dropped or chosen file: Parquet (by its magic bytes) becomes JSONL text; anything else is text. */
async function loadFile(f: File): Promise<void> {
  const head = new Uint8Array(await f.slice(0, 4).arrayBuffer());
  const { isParquetBytes, parquetToJsonl } = await import('./parquet.js');
  if (!isParquetBytes(head)) return loadText(await f.text());
  try {
    const { text, rows } = await parquetToJsonl(await f.arrayBuffer());
    await loadText(text);
    $('data-note').textContent += ` · from Parquet ${f.name} (${rows} rows)`;
  } catch (e) {
    $('data-note').textContent = `${f.name}: not a readable Parquet file (${(e as Error).message})`;
  }
}

async function loadSample(): Promise<void> {
  try {
    const r = await fetch('data/sample-pairs.jsonl');
    if (!r.ok) throw new Error(`${r.status} ${r.statusText}`);
    await loadText(await r.text());
  } catch (e) {
    $('data-note').textContent = `The sample set is not served with this page (${(e as Error).message}).`;
  }
}

// ---- running --------------------------------------------------------------------------------------

function startRun(device: 'webgpu' | 'cpu'): void {
  const err = $('run-error');
  err.hidden = true;
  let spec: ModelSpec;
  try {
    spec = modelSpec();
  } catch (e) {
    err.textContent = (e as Error).message;
    err.hidden = false;
    return;
  }
  const parsed = parseRecords($<HTMLTextAreaElement>('data-text').value);
  if (parsed.records.length === 0) {
    err.textContent = parsed.errors.length ? `No readable records: ${parsed.errors[0]}` : 'No pairs yet: paste or drop some, or load the sample set.';
    err.hidden = false;
    return;
  }
  runId++;
  running = true;
  statusLog = [];
  pairs = [];
  filter = null;
  info = null;
  setButtons();
  setState('scoring');
  $('progress').hidden = false;
  $<HTMLProgressElement>('progress-bar').value = 0;
  $('progress-text').textContent = 'starting…';
  send({ type: 'score', run: runId, model: spec, encoder: encoderSpec(), device, records: parsed.records });
}

function setButtons(): void {
  $<HTMLButtonElement>('run-gpu').disabled = running || !probe?.ok;
  $<HTMLButtonElement>('run-cpu').disabled = running;
}

worker.onmessage = (ev: MessageEvent<FromWorker>) => {
  const m = ev.data;
  if (m.type === 'probe') {
    showProbe(m.probe);
    proposeProbed();
    return;
  }
  if (m.run !== runId) return;
  if (m.type === 'status') {
    $('progress-text').textContent = m.text;
    statusLog.push(m.text);
  } else if (m.type === 'progress') {
    const p = m.progress;
    const rate = p.done / Math.max(p.elapsedMs / 1000, 1e-9);
    $<HTMLProgressElement>('progress-bar').value = p.done / Math.max(m.total, 1);
    $('progress-text').textContent = `${p.done} / ${m.total} pairs · ${rate.toFixed(2)} pairs/s · ` +
      `${(p.tokens / Math.max(p.elapsedMs / 1000, 1e-9)).toFixed(0)} tokens/s${p.errors ? ` · ${p.errors} not scored` : ''}`;
  } else if (m.type === 'partial') {
    pairs = pairs.concat(m.pairs);
    refilter();
  } else if (m.type === 'done') {
    running = false;
    pairs = m.pairs;
    info = m.info;
    setButtons();
    $<HTMLProgressElement>('progress-bar').value = 1;
    $('progress-text').textContent = `${pairs.length} pairs in ${info.seconds.toFixed(1)} s · ${info.pairsPerSecond.toFixed(2)} pairs/s`;
    $('run-info').textContent = `${info.model} · ${info.deviceName} · cosine ${info.encoder ?? 'off'} · ${pairs.length} pairs in ${info.seconds.toFixed(1)} s ` +
      `(${info.pairsPerSecond.toFixed(2)} pairs/s; model load ${info.loadSeconds.toFixed(1)} s)`;
    refilter();
    setState('done');
  } else if (m.type === 'error') {
    running = false;
    setButtons();
    $('run-error').textContent = m.message;
    $('run-error').hidden = false;
    $('progress').hidden = true;
    setState('error');
  }
};
worker.onerror = (ev) => {
  running = false;
  setButtons();
  $('run-error').textContent = `the scoring worker failed: ${ev.message}`;
  $('run-error').hidden = false;
  setState('error');
};

// ---- filter + results -----------------------------------------------------------------------------

function control(): FilterControl {
  const kind = document.querySelector<HTMLInputElement>('input[name=ctl]:checked')?.value;
  if (kind === 'thresholds') {
    const v = (id: string) => { const x = parseFloat($<HTMLInputElement>(id).value); return Number.isFinite(x) ? x : undefined; };
    return { kind: 'thresholds', fwdThreshold: v('thr-fwd'), revThreshold: v('thr-rev') };
  }
  if (kind === 'fraction') return { kind: 'fraction', keepFraction: parseFloat($<HTMLInputElement>('keep-fraction').value) };
  return { kind: 'defaults' };
}

const rule = (): Rule => $<HTMLSelectElement>('rule').value as Rule;

function refilter(): void {
  if (pairs.length === 0) return;
  $('results').hidden = false;
  $('keep-fraction-out').textContent = `${Math.round(parseFloat($<HTMLInputElement>('keep-fraction').value) * 100)}%`;
  try {
    filter = filterPairs(pairs, control(), rule());
    $('filter-error').hidden = true;
  } catch (e) {
    // e.g. the cosine rule without an encoder cosine, or main --signal logp without a fraction
    $('filter-error').textContent = (e as Error).message;
    $('filter-error').hidden = false;
    return;
  }
  const scored = pairs.filter((p) => p.scores).length;
  $('kept-summary').textContent = `kept ${filter.kept} of ${pairs.length}` +
    ` (${((100 * filter.kept) / Math.max(pairs.length, 1)).toFixed(0)}%)` +
    (scored < pairs.length ? ` · ${pairs.length - scored} not scored` : '') +
    ` · ${appliedParams(filter.applied, 4).map(([k, v]) => `${k}=${v}`).join(' ')}`;
  $('kept-summary').dataset.kept = String(filter.kept);
  $('kept-summary').dataset.rule = String(filter.applied.rule);
  drawScatter();
  drawHistograms();
  drawTable();
}

// Chart.js's generics do not follow a chart's type through `new Chart`; the handles are kept untyped.
let scatter: Chart | null = null;
let histFwd: Chart | null = null;
let histRev: Chart | null = null;

interface Pt { x: number; y: number; i: number }

function drawScatter(): void {
  if (!filter) return;
  const kept: Pt[] = [], dropped: Pt[] = [];
  pairs.forEach((p, i) => {
    if (!Number.isFinite(p.g_fwd) || !Number.isFinite(p.g_rev)) return;
    (filter!.keep[i] ? kept : dropped).push({ x: p.g_fwd, y: p.g_rev, i });
  });
  const xs = [...kept, ...dropped].map((p) => p.x), ys = [...kept, ...dropped].map((p) => p.y);
  const padded = (v: number[]): [number, number] => {
    const lo = Math.min(...v), hi = Math.max(...v), pad = 0.06 * (hi - lo || 1);
    return [lo - pad, hi + pad];
  };
  const [x0, x1] = padded(xs), [y0, y1] = padded(ys);
  const tf = filter.applied.fwd_threshold, tr = filter.applied.rev_threshold;
  const lines: ChartDataset<'scatter', Pt[]>[] = [];
  const lineStyle = { showLine: true, pointRadius: 0, borderColor: '#555', borderDash: [5, 4], borderWidth: 1, pointHitRadius: 0 };
  if (typeof tf === 'number' && Number.isFinite(tf)) lines.push({ label: 'g_fwd threshold', data: [{ x: tf, y: y0, i: -1 }, { x: tf, y: y1, i: -1 }], ...lineStyle });
  if (typeof tr === 'number' && Number.isFinite(tr)) lines.push({ label: 'g_rev threshold', data: [{ x: x0, y: tr, i: -1 }, { x: x1, y: tr, i: -1 }], ...lineStyle });
  const datasets: ChartDataset<'scatter', Pt[]>[] = [
    { label: `kept (${kept.length})`, data: kept, backgroundColor: KEPT_FILL, borderColor: KEPT, pointRadius: 4, pointHoverRadius: 7 },
    { label: `dropped (${dropped.length})`, data: dropped, backgroundColor: DROPPED_FILL, borderColor: DROPPED, pointRadius: 4, pointHoverRadius: 7 },
    ...lines,
  ];
  if (scatter) {
    scatter.data.datasets = datasets as ChartDataset[];
    Object.assign(scatter.options.scales!.x!, { min: x0, max: x1 });
    Object.assign(scatter.options.scales!.y!, { min: y0, max: y1 });
    scatter.update('none');
    return;
  }
  const snippet = (s: string, n = 90) => (s.length > n ? `${s.slice(0, n - 1)}…` : s).replace(/\s+/g, ' ');
  scatter = new Chart($<HTMLCanvasElement>('scatter'), {
    type: 'scatter',
    data: { datasets: datasets as ChartDataset<'scatter'>[] },
    options: {
      animation: false,
      maintainAspectRatio: false,
      plugins: {
        legend: { labels: { filter: (item) => !String(item.text).includes('threshold') } },
        title: { display: false },
        tooltip: {
          filter: (item) => (item.raw as Pt).i >= 0,
          callbacks: {
            title: (items: TooltipItem<'scatter'>[]) => {
              const pt = items[0]?.raw as Pt | undefined;
              return pt ? `pair #${pt.i + 1} — ${filter?.keep[pt.i] ? 'kept' : 'dropped'}` : '';
            },
            label: (item: TooltipItem<'scatter'>) => {
              const pt = item.raw as Pt;
              const p = pairs[pt.i];
              return [`g_fwd ${p.g_fwd.toFixed(3)} · g_rev ${p.g_rev.toFixed(3)}`, `x: ${snippet(p.x)}`, `y: ${snippet(p.y)}`];
            },
          },
        },
      },
      scales: {
        x: { min: x0, max: x1, title: { display: true, text: 'g_fwd = log p(y|x) − log p(y)   [nats/token]' }, ticks: { callback: (v) => Number(v).toFixed(2) } },
        y: { min: y0, max: y1, title: { display: true, text: 'g_rev = log p(x|y) − log p(x)   [nats/token]' }, ticks: { callback: (v) => Number(v).toFixed(2) } },
      },
    },
  });
}

/** Equal-width bins over the finite values; counts split by keep/drop. */
function bins(values: number[], keep: boolean[], n = 24): { labels: string[]; kept: number[]; dropped: number[] } {
  const finite = values.filter(Number.isFinite);
  const lo = Math.min(...finite), hi = Math.max(...finite);
  const w = hi > lo ? (hi - lo) / n : 1;
  const kept = new Array<number>(n).fill(0), dropped = new Array<number>(n).fill(0);
  values.forEach((v, i) => {
    if (!Number.isFinite(v)) return;
    const b = Math.min(n - 1, Math.floor((v - lo) / w));
    (keep[i] ? kept : dropped)[b]++;
  });
  const labels = kept.map((_, b) => (lo + (b + 0.5) * w).toFixed(2));
  return { labels, kept, dropped };
}

function histogram(existing: Chart | null, canvas: string, title: string, values: number[]): Chart {
  const h = bins(values, filter!.keep);
  const datasets: ChartDataset<'bar'>[] = [
    { label: 'kept', data: h.kept, backgroundColor: KEPT_FILL, borderColor: KEPT, borderWidth: 1, stack: 's' },
    { label: 'dropped', data: h.dropped, backgroundColor: DROPPED_FILL, borderColor: DROPPED, borderWidth: 1, stack: 's' },
  ];
  if (existing) {
    existing.data.labels = h.labels;
    existing.data.datasets = datasets as ChartDataset[];
    existing.update('none');
    return existing;
  }
  return new Chart($<HTMLCanvasElement>(canvas), {
    type: 'bar',
    data: { labels: h.labels, datasets },
    options: {
      animation: false,
      maintainAspectRatio: false,
      plugins: { legend: { display: false }, title: { display: true, text: title } },
      scales: {
        x: { stacked: true, title: { display: true, text: 'nats/token' }, ticks: { maxTicksLimit: 8 } },
        y: { stacked: true, title: { display: true, text: 'pairs' }, ticks: { precision: 0 } },
      },
    },
  });
}

function drawHistograms(): void {
  histFwd = histogram(histFwd, 'hist-fwd', 'g_fwd (how much x helps predict y)', pairs.map((p) => p.g_fwd));
  histRev = histogram(histRev, 'hist-rev', 'g_rev (how much y helps predict x)', pairs.map((p) => p.g_rev));
}

type Row = { index: number; keep: boolean; combined: number; g_fwd: number; g_rev: number; fwd_logp: number; rev_logp: number; x: string; y: string; error?: string };

function drawTable(): void {
  if (!filter) return;
  const rows: Row[] = pairs.map((p, i) => ({
    index: i + 1, keep: filter!.keep[i], combined: filter!.score[i], g_fwd: p.g_fwd, g_rev: p.g_rev,
    fwd_logp: p.scores?.fwd_logp ?? NaN, rev_logp: p.scores?.rev_logp ?? NaN, x: p.x, y: p.y, error: p.error,
  }));
  const mode = document.querySelector<HTMLInputElement>('input[name=rows]:checked')?.value ?? 'best';
  const byCombined = (a: Row, b: Row) => (Number.isFinite(b.combined) ? b.combined : -1) - (Number.isFinite(a.combined) ? a.combined : -1) || a.index - b.index;
  let shown = rows.slice().sort(byCombined);
  if (mode === 'best') shown = shown.slice(0, 25);
  else if (mode === 'worst') shown = shown.reverse().slice(0, 25);
  if (sortKey) {
    const k = sortKey as keyof Row;
    shown.sort((a, b) => {
      const va = a[k], vb = b[k];
      const c = typeof va === 'string' ? String(va).localeCompare(String(vb)) : Number(va ?? NaN) - Number(vb ?? NaN);
      return (sortDesc ? -c : c) || a.index - b.index;
    });
  }
  document.querySelectorAll<HTMLElement>('#pairs th').forEach((th) => {
    th.classList.toggle('sorted', th.dataset.key === sortKey);
    th.classList.toggle('desc', th.dataset.key === sortKey && sortDesc);
  });
  const tbody = document.querySelector('#pairs tbody')!;
  const num = (v: number, d = 3) => (Number.isFinite(v) ? v.toFixed(d) : '—');
  const trs = shown.map((r) => {
    const tr = document.createElement('tr');
    tr.className = r.keep ? 'kept' : 'dropped';
    const cells = [String(r.index), r.keep ? 'keep' : 'drop', num(r.combined, 2), num(r.g_fwd), num(r.g_rev), num(r.fwd_logp), num(r.rev_logp), r.x, r.error ? `(${r.error})` : r.y];
    cells.forEach((text, k) => {
      const td = document.createElement('td');
      td.textContent = k >= 7 && text.length > 160 ? `${text.slice(0, 159)}…` : text;
      if (k >= 7) { td.title = text; td.className = 'text'; } else td.className = 'mono';
      tr.appendChild(td);
    });
    return tr;
  });
  tbody.replaceChildren(...trs);
}

function download(which: 'kept' | 'dropped'): void {
  if (!filter) return;
  const rows = pairs.flatMap((p, i) => (filter!.keep[i] === (which === 'kept') ? [outputRecord(p, filter!.keep[i], filter!.score[i])] : []));
  const blob = new Blob([toJsonl(rows)], { type: 'application/x-ndjson' });
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = `${which}.jsonl`;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
}

// ---- wiring ---------------------------------------------------------------------------------------

// ?hub=Org/Name[@rev]&endpoint=<url>: a model by Hub id, chosen and filled in (endpoint as HF_ENDPOINT).
if (params.get('hub')) {
  $<HTMLInputElement>('hub-id').value = params.get('hub')!;
  document.querySelector<HTMLInputElement>('input[name=model][value=hub]')!.checked = true;
}
if (params.get('endpoint')) $<HTMLInputElement>('hub-endpoint').value = params.get('endpoint')!;
document.querySelectorAll<HTMLInputElement>('input[name=model]').forEach((r) => r.addEventListener('change', updateModelInputs));
updateModelInputs();
void checkDefaultModel();

$('load-sample').addEventListener('click', () => void loadSample());
$('data-text').addEventListener('input', dataNote);
$<HTMLInputElement>('data-file').addEventListener('change', async (ev) => {
  const f = (ev.target as HTMLInputElement).files?.[0];
  if (f) await loadFile(f);
});
for (const target of [$('drop'), $('data-text')]) {
  target.addEventListener('dragover', (ev) => { ev.preventDefault(); $('drop').classList.add('over'); });
  target.addEventListener('dragleave', () => $('drop').classList.remove('over'));
  target.addEventListener('drop', async (ev) => {
    ev.preventDefault();
    $('drop').classList.remove('over');
    const f = (ev as DragEvent).dataTransfer?.files?.[0];
    if (f) await loadFile(f);
  });
}

$('run-gpu').addEventListener('click', () => startRun('webgpu'));
$('run-cpu').addEventListener('click', () => startRun('cpu'));

$('keep-fraction').addEventListener('input', () => {
  (document.querySelector<HTMLInputElement>('input[name=ctl][value=fraction]')!).checked = true;
  refilter();
});
for (const id of ['thr-fwd', 'thr-rev']) {
  $(id).addEventListener('input', () => {
    (document.querySelector<HTMLInputElement>('input[name=ctl][value=thresholds]')!).checked = true;
    refilter();
  });
}
document.querySelectorAll<HTMLInputElement>('input[name=ctl]').forEach((r) => r.addEventListener('change', refilter));
$<HTMLSelectElement>('rule').append(...RULES.map((r) => new Option(r, r, r === 'auto', r === 'auto')));
$('rule').addEventListener('change', refilter);
document.querySelectorAll<HTMLInputElement>('input[name=rows]').forEach((r) => r.addEventListener('change', () => { sortKey = null; drawTable(); }));
document.querySelectorAll<HTMLElement>('#pairs th').forEach((th) => th.addEventListener('click', () => {
  const k = th.dataset.key!;
  if (sortKey === k) sortDesc = !sortDesc;
  else { sortKey = k; sortDesc = k !== 'index' && k !== 'x' && k !== 'y'; }
  drawTable();
}));
$('dl-kept').addEventListener('click', () => download('kept'));
$('dl-dropped').addEventListener('click', () => download('dropped'));

setButtons();
initPropose({ worker, modelSpec, encoderSpec, gpuOk: () => !!probe?.ok });
send({ type: 'probe' });

// For tests and the console: the scores and the current decision (read-only views).
(window as unknown as { concordDemo: object }).concordDemo = {
  get pairs() { return pairs; },
  get filter() { return filter; },
  get info() { return info; },
  get probe() { return probe; },
  get statusLog() { return statusLog; },
  /** the "propose instructions" view (web/propose.ts) */
  propose: proposeView,
  /** Page coordinates of pair i's point in the scatter (null when not plotted). */
  pointPosition(i: number): { x: number; y: number } | null {
    if (!scatter) return null;
    for (let d = 0; d < 2; d++) {
      const k = (scatter.data.datasets[d].data as unknown as Pt[]).findIndex((pt) => pt.i === i);
      if (k < 0) continue;
      const el = scatter.getDatasetMeta(d).data[k];
      const r = scatter.canvas.getBoundingClientRect();
      return { x: r.left + window.scrollX + el.x, y: r.top + window.scrollY + el.y };
    }
    return null;
  },
  /** The pair the scatter's tooltip shows now (null when none). */
  get tooltipPair(): number | null {
    const a = scatter?.tooltip?.getActiveElements() ?? [];
    return a.length ? (scatter!.data.datasets[a[0].datasetIndex].data[a[0].index] as unknown as Pt).i : null;
  },
};
