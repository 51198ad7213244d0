// `concord report`: one self-contained HTML page (inline SVG and CSS, no script, no external
// request) about a scored file: a histogram per score (split by label when labels exist), the
// forward/reverse gain scatter (coloured by label, or by the rule's keep decision), a breakdown per
// group (--group FIELD) and, with labels, the eval table (src/eval).

import { evaluate, type EvalReport } from '../eval/index.js';
import { appliedParams, applyFilter, mainSignals, type FilterOptions, type ScoreFields } from '../filter/index.js';

export interface ReportInput {
  title: string;
  scores: ScoreFields[];
  /** per record, for --group */
  groups?: string[];
  groupField?: string;
  labels?: boolean[];
  labelField?: string;
  filter: FilterOptions;
  /** the records left out while reading (file:line: reason) */
  problems?: string[];
}

const esc = (s: string): string => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
const fmt = (x: number | null | undefined, d = 3): string => (x === null || x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(d));

/** Quantile of sorted finite values (linear interpolation). */
function quantile(sorted: number[], q: number): number {
  if (!sorted.length) return NaN;
  const p = (sorted.length - 1) * q, lo = Math.floor(p), hi = Math.ceil(p);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (p - lo);
}

const COLORS = { pos: '#2a9d8f', neg: '#e76f51', all: '#4c6ef5', kept: '#2a9d8f', dropped: '#adb5bd' };

/** An SVG histogram of one or more series over shared bins (the 1st–99th percentile range). */
export function histogramSvg(name: string, series: { label: string; color: string; values: number[] }[], bins = 30): string {
  const W = 360, H = 180, P = { l: 36, r: 8, t: 22, b: 28 };
  const all = series.flatMap((s) => s.values.filter(Number.isFinite)).sort((a, b) => a - b);
  if (!all.length) return `<svg width="${W}" height="${H}" role="img"><text x="8" y="20">${esc(name)}: no values</text></svg>`;
  let lo = quantile(all, 0.01), hi = quantile(all, 0.99);
  if (!(hi > lo)) { lo = all[0] - 0.5; hi = all[all.length - 1] + 0.5; }
  const w = (hi - lo) / bins;
  const counts = series.map((s) => {
    const c = new Array<number>(bins).fill(0);
    for (const v of s.values) if (Number.isFinite(v)) c[Math.min(bins - 1, Math.max(0, Math.floor((v - lo) / w)))]++;
    return c;
  });
  const max = Math.max(1, ...counts.flat());
  const iw = W - P.l - P.r, ih = H - P.t - P.b;
  const bw = iw / bins / series.length;
  const bars = counts.map((c, si) => c.map((k, b) => {
    const h = (k / max) * ih;
    return `<rect x="${(P.l + b * (iw / bins) + si * bw).toFixed(1)}" y="${(P.t + ih - h).toFixed(1)}" width="${Math.max(bw - 0.5, 0.5).toFixed(1)}" height="${h.toFixed(1)}" fill="${series[si].color}"><title>${esc(series[si].label)} [${fmt(lo + b * w)}, ${fmt(lo + (b + 1) * w)}): ${k}</title></rect>`;
  }).join('')).join('');
  const legend = series.length > 1 ? series.map((s, i) => `<rect x="${W - 150 + i * 70}" y="6" width="10" height="10" fill="${s.color}"/><text x="${W - 136 + i * 70}" y="15" font-size="11">${esc(s.label)}</text>`).join('') : '';
  return `<svg class="hist" data-score="${esc(name)}" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="histogram of ${esc(name)}">
<text x="${P.l}" y="15" font-size="13" font-weight="600">${esc(name)}</text>${legend}
<line x1="${P.l}" y1="${P.t + ih}" x2="${W - P.r}" y2="${P.t + ih}" stroke="#555"/>
<line x1="${P.l}" y1="${P.t}" x2="${P.l}" y2="${P.t + ih}" stroke="#555"/>
<text x="${P.l}" y="${H - 8}" font-size="10">${fmt(lo)}</text><text x="${W - P.r}" y="${H - 8}" font-size="10" text-anchor="end">${fmt(hi)}</text>
<text x="${P.l - 4}" y="${P.t + 8}" font-size="10" text-anchor="end">${max}</text>${bars}</svg>`;
}

/** An SVG scatter of (x, y) points in colour groups; at most `maxPoints` drawn (an even stride). */
export function scatterSvg(xName: string, yName: string, groups: { label: string; color: string; x: number[]; y: number[] }[], maxPoints = 5000): string {
  const W = 520, H = 420, P = { l: 48, r: 12, t: 26, b: 40 };
  const xs = groups.flatMap((g) => g.x.filter((v, i) => Number.isFinite(v) && Number.isFinite(g.y[i]))).sort((a, b) => a - b);
  const ys = groups.flatMap((g) => g.y.filter((v, i) => Number.isFinite(v) && Number.isFinite(g.x[i]))).sort((a, b) => a - b);
  if (!xs.length) return `<svg width="${W}" height="60"><text x="8" y="20">${esc(xName)} / ${esc(yName)}: no values</text></svg>`;
  const pad = (lo: number, hi: number) => (hi > lo ? [lo - (hi - lo) * 0.03, hi + (hi - lo) * 0.03] : [lo - 1, hi + 1]);
  const [x0, x1] = pad(quantile(xs, 0.005), quantile(xs, 0.995));
  const [y0, y1] = pad(quantile(ys, 0.005), quantile(ys, 0.995));
  const iw = W - P.l - P.r, ih = H - P.t - P.b;
  const sx = (v: number) => P.l + ((Math.min(Math.max(v, x0), x1) - x0) / (x1 - x0)) * iw;
  const sy = (v: number) => P.t + ih - ((Math.min(Math.max(v, y0), y1) - y0) / (y1 - y0)) * ih;
  const total = groups.reduce((a, g) => a + g.x.length, 0);
  const stride = Math.max(1, Math.ceil(total / maxPoints));
  let drawn = 0;
  const dots = groups.map((g) => {
    const out: string[] = [];
    for (let i = 0; i < g.x.length; i += stride) {
      if (!Number.isFinite(g.x[i]) || !Number.isFinite(g.y[i])) continue;
      out.push(`<circle cx="${sx(g.x[i]).toFixed(1)}" cy="${sy(g.y[i]).toFixed(1)}" r="2.6"/>`);
      drawn++;
    }
    return `<g class="pts" data-group="${esc(g.label)}" fill="${g.color}" fill-opacity="0.65">${out.join('')}</g>`;
  }).join('');
  const zero = [x0 < 0 && x1 > 0 ? `<line x1="${sx(0)}" y1="${P.t}" x2="${sx(0)}" y2="${P.t + ih}" stroke="#bbb" stroke-dasharray="3 3"/>` : '',
    y0 < 0 && y1 > 0 ? `<line x1="${P.l}" y1="${sy(0)}" x2="${P.l + iw}" y2="${sy(0)}" stroke="#bbb" stroke-dasharray="3 3"/>` : ''].join('');
  const legend = groups.map((g, i) => `<circle cx="${P.l + 10 + i * 110}" cy="12" r="4" fill="${g.color}"/><text x="${P.l + 18 + i * 110}" y="16" font-size="11">${esc(g.label)} (${g.x.length})</text>`).join('');
  return `<svg class="scatter" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(xName)} against ${esc(yName)}">${legend}
<rect x="${P.l}" y="${P.t}" width="${iw}" height="${ih}" fill="none" stroke="#555"/>${zero}${dots}
<text x="${P.l + iw / 2}" y="${H - 8}" font-size="12" text-anchor="middle">${esc(xName)}</text>
<text x="14" y="${P.t + ih / 2}" font-size="12" text-anchor="middle" transform="rotate(-90 14 ${P.t + ih / 2})">${esc(yName)}</text>
<text x="${P.l}" y="${P.t + ih + 14}" font-size="10">${fmt(x0, 2)}</text><text x="${P.l + iw}" y="${P.t + ih + 14}" font-size="10" text-anchor="end">${fmt(x1, 2)}</text>
<text x="${P.l - 4}" y="${P.t + ih}" font-size="10" text-anchor="end">${fmt(y0, 2)}</text><text x="${P.l - 4}" y="${P.t + 10}" font-size="10" text-anchor="end">${fmt(y1, 2)}</text>
${stride > 1 ? `<text x="${W - P.r}" y="${P.t + ih + 28}" font-size="10" text-anchor="end">every ${stride}th point drawn (${drawn} of ${total})</text>` : ''}</svg>`;
}

const SCORE_VIEWS: { name: string; get: (s: ScoreFields) => number }[] = [
  { name: 'g_fwd', get: (s) => mainSignals(s, 'gain').fwd },
  { name: 'g_rev', get: (s) => mainSignals(s, 'gain').rev },
  { name: 'fwd_logp', get: (s) => (typeof s.fwd_logp === 'number' ? s.fwd_logp : NaN) },
  { name: 'rev_logp', get: (s) => (typeof s.rev_logp === 'number' ? s.rev_logp : NaN) },
  { name: 'ifd', get: (s) => (typeof s.ifd === 'number' ? s.ifd : NaN) },
  { name: 'rifd', get: (s) => (typeof s.rifd === 'number' ? s.rifd : NaN) },
  { name: 'cosine', get: (s) => (typeof s.cosine === 'number' ? s.cosine : NaN) },
];

function median(v: number[]): number {
  const s = v.filter(Number.isFinite).sort((a, b) => a - b);
  return quantile(s, 0.5);
}

function evalTable(r: EvalReport): string {
  const rows = r.scores.map((s) => `<tr><td>${esc(s.name)}</td><td>${s.direction === 'up' ? '↑' : '↓'}</td><td>${fmt(s.auc)}</td></tr>`).join('');
  const rules = r.rules.map((x) => x.error ? `<tr><td>${esc(x.name)}</td><td colspan="6">${esc(x.error)}</td></tr>`
    : `<tr><td>${esc(x.name)}</td><td>${fmt(x.auc)}</td><td>${x.kept}</td><td>${fmt(x.precision)}</td><td>${fmt(x.recall)}</td><td>${fmt(x.kept_neg)}</td><td>${esc(x.at)}</td></tr>`).join('');
  return `<div class="row"><table class="eval-scores"><caption>AUC per score (${r.positives} positive, ${r.negatives} negative)</caption><tr><th>score</th><th>dir</th><th>AUC</th></tr>${rows}</table>
<table class="eval-rules"><caption>rules: AUC of their order; precision / recall at their keep decision</caption><tr><th>rule</th><th>AUC</th><th>kept</th><th>precision</th><th>recall</th><th>neg kept</th><th>at</th></tr>${rules}</table></div>`;
}

export function buildReport(o: ReportInput): string {
  const { scores, labels } = o;
  const n = scores.length;
  const decision = applyFilter(scores, o.filter);
  const labelled = !!labels && labels.some(Boolean) && labels.some((l) => !l);
  const split = <T,>(v: T[], pred: (i: number) => boolean) => v.filter((_, i) => pred(i));
  const hist = SCORE_VIEWS.map((sv) => {
    const v = scores.map(sv.get);
    if (!v.some(Number.isFinite)) return '';
    const series = labelled
      ? [{ label: `${o.labelField} true`, color: COLORS.pos, values: split(v, (i) => labels![i]) }, { label: `${o.labelField} false`, color: COLORS.neg, values: split(v, (i) => !labels![i]) }]
      : [{ label: 'all', color: COLORS.all, values: v }];
    return histogramSvg(sv.name, series);
  }).join('\n');
  const ruleHist = histogramSvg(`rule score (${String(decision.applied.rule)})`, labelled
    ? [{ label: 'true', color: COLORS.pos, values: split(decision.score, (i) => labels![i]) }, { label: 'false', color: COLORS.neg, values: split(decision.score, (i) => !labels![i]) }]
    : [{ label: 'all', color: COLORS.all, values: decision.score }]);
  const gf = scores.map((s) => mainSignals(s, 'gain').fwd), gr = scores.map((s) => mainSignals(s, 'gain').rev);
  const by = (pred: (i: number) => boolean) => ({ x: split(gf, pred), y: split(gr, pred) });
  const scatter = scatterSvg('g_fwd = log p(y|x) − log p(y)', 'g_rev = log p(x|y) − log p(x)', labelled
    ? [{ label: `${o.labelField} true`, color: COLORS.pos, ...by((i) => labels![i]) }, { label: `${o.labelField} false`, color: COLORS.neg, ...by((i) => !labels![i]) }]
    : [{ label: 'kept', color: COLORS.kept, ...by((i) => decision.keep[i]) }, { label: 'dropped', color: COLORS.dropped, ...by((i) => !decision.keep[i]) }]);

  let groupsHtml = '';
  if (o.groups) {
    const idx = new Map<string, number[]>();
    o.groups.forEach((g, i) => { if (!idx.has(g)) idx.set(g, []); idx.get(g)!.push(i); });
    const rows = [...idx.entries()].sort((a, b) => b[1].length - a[1].length).map(([g, ii]) => {
      const kept = ii.filter((i) => decision.keep[i]).length;
      const med = (f: (s: ScoreFields) => number) => fmt(median(ii.map((i) => f(scores[i]))));
      const pos = labelled ? `<td>${fmt(ii.filter((i) => labels![i]).length / ii.length, 2)}</td>` : '';
      return `<tr><td>${esc(g)}</td><td>${ii.length}</td>${pos}<td>${kept}</td><td>${fmt(kept / ii.length, 2)}</td><td>${med((s) => mainSignals(s, 'gain').fwd)}</td><td>${med((s) => mainSignals(s, 'gain').rev)}</td><td>${med((s) => (typeof s.cosine === 'number' ? s.cosine : NaN))}</td><td>${med((s) => (typeof s.ifd === 'number' ? s.ifd : NaN))}</td></tr>`;
    }).join('');
    groupsHtml = `<h2>By ${esc(o.groupField ?? 'group')}</h2><table class="groups"><tr><th>${esc(o.groupField ?? 'group')}</th><th>pairs</th>${labelled ? `<th>share ${esc(o.labelField ?? 'label')}</th>` : ''}<th>kept</th><th>kept share</th><th>median g_fwd</th><th>median g_rev</th><th>median cosine</th><th>median ifd</th></tr>${rows}</table>`;
  }
  const evalHtml = labelled ? `<h2>Evaluation against '${esc(o.labelField ?? 'label')}'</h2>${evalTable(evaluate(scores, labels!))}` : '';
  const applied = appliedParams(decision.applied, 4).map(([k, v]) => `${esc(k)}=${esc(v)}`).join(' ');
  const problems = o.problems?.length ? `<p class="warn">${o.problems.length} record(s) left out: ${o.problems.slice(0, 5).map(esc).join('; ')}${o.problems.length > 5 ? ' …' : ''}</p>` : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>${esc(o.title)} — concord report</title>
<style>
body{font:14px/1.4 system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px;color:#222;background:#fff}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.meta{color:#555}.grid{display:flex;flex-wrap:wrap;gap:8px}.row{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start}
svg{background:#fafafa;border:1px solid #eee;font-family:inherit}table{border-collapse:collapse;font-variant-numeric:tabular-nums}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}td:first-child,th:first-child{text-align:left}caption{text-align:left;font-weight:600;padding:4px 0}
.warn{color:#b45309}
</style></head><body>
<h1>${esc(o.title)}</h1>
<p class="meta">${n} scored pairs · rule ${esc(String(decision.applied.rule))}: ${decision.kept} kept, ${decision.dropped} dropped (${applied})${labelled ? ` · labels from '${esc(o.labelField!)}': ${labels!.filter(Boolean).length} true, ${labels!.filter((l) => !l).length} false` : ''}</p>${problems}
<h2>Score distributions</h2><div class="grid">${hist}${ruleHist}</div>
<h2>Forward against reverse</h2>${scatter}
${groupsHtml}
${evalHtml}
<p class="meta">Generated by concord report. Self-contained: no scripts, no external requests.</p>
</body></html>
`;
}
