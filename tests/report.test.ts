// concord report (src/report): the page for a synthetic labelled, grouped scored file, opened in
// headless Chromium (Debian's /usr/bin/chromium through playwright-core): every chart and table
// there, no request beyond the file itself, a screenshot in test-artifacts/report/. Also the
// eval and report commands end to end through the CLI's main().

import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { main } from '../src/cli/main.js';
import { buildReport } from '../src/report/index.js';
import { randn, rng } from './helpers/gpu.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const artifacts = join(root, 'test-artifacts', 'report');
const CHROMIUM = process.env.CONCORD_CHROMIUM ?? '/usr/bin/chromium';
const dir = mkdtempSync(join(tmpdir(), 'concord-report-test-'));
let browser: Browser | null = null;
afterAll(async () => { await browser?.close(); rmSync(dir, { recursive: true, force: true }); });

/** 120 pairs from two sources; true pairs have higher gains and cosines than mismatched ones. */
function syntheticScored(): string[] {
  const r = rng(11);
  const z = randn(r, 120 * 3);
  return Array.from({ length: 120 }, (_, i) => {
    const label = i % 3 !== 0;
    const source = i % 2 ? 'alpaca' : 'self-instruct';
    const gf = (label ? 0.4 : -0.1) + 0.3 * z[3 * i], gr = (label ? 0.6 : 0) + 0.4 * z[3 * i + 1];
    const cosine = (label ? 0.55 : 0.12) + 0.12 * z[3 * i + 2];
    const scores = { fwd_logp: -3 + gf, y_logp: -3, rev_logp: -4 + gr, x_logp: -4, ifd: Math.exp(-gf), rifd: Math.exp(-gr), cosine, cosine_source: 'embed:all-MiniLM-L6-v2' };
    return JSON.stringify({ id: i, instruction: `q${i} <b>`, input: '', output: `a${i}`, source, label, scores });
  });
}
const scoredFile = join(dir, 'scored.jsonl');
writeFileSync(scoredFile, syntheticScored().join('\n') + '\n');

async function capture(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [], err: string[] = [];
  const o = vi.spyOn(console, 'log').mockImplementation((...a) => { out.push(a.join(' ')); });
  const e = vi.spyOn(console, 'error').mockImplementation((...a) => { err.push(a.join(' ')); });
  const w = vi.spyOn(process.stderr, 'write').mockImplementation((s) => { err.push(String(s)); return true; });
  try {
    return { code: await main(args), out: out.join('\n'), err: err.join('') };
  } finally {
    o.mockRestore(); e.mockRestore(); w.mockRestore();
  }
}

describe('concord eval and report commands', () => {
  it('eval --json: AUCs, the auto rule resolves to fused, bad label values reported with file:line', async () => {
    const bad = join(dir, 'bad.jsonl');
    writeFileSync(bad, readFileSync(scoredFile, 'utf8') + JSON.stringify({ id: 'x', label: 'maybe', scores: {} }) + '\n');
    const r = await capture(['eval', bad, '--label', 'label', '--json']);
    expect(r.code).toBe(0);
    const rep = JSON.parse(r.out);
    expect(rep).toMatchObject({ n: 120, positives: 80, negatives: 40, left_out: 1 });
    expect(r.err).toContain('bad.jsonl:121');
    expect(rep.scores.find((s: { name: string }) => s.name === 'cosine').auc).toBeGreaterThan(0.95);
    expect(rep.rules.map((x: { name: string }) => x.name)).toContain('auto → fused');
    const table = await capture(['eval', scoredFile, '--label', 'source', '--positive', 'alpaca']);
    expect(table.out).toMatch(/g_rev\s+↑\s+0\.\d{3}/);
    expect((await capture(['eval', scoredFile])).code).toBe(2);
    expect((await capture(['eval', join(dir, 'nope.jsonl'), '--label', 'label'])).code).toBe(3);
  });

  it('filter without --rule: auto takes the fused rule on encoder cosines, main otherwise', async () => {
    const sum = join(dir, 'f.json');
    expect((await capture(['filter', scoredFile, '-o', join(dir, 'kept.jsonl'), '--summary', sum, '--quiet'])).code).toBe(0);
    expect(JSON.parse(readFileSync(sum, 'utf8')).applied).toMatchObject({ rule: 'fused', rule_requested: 'auto', thresholds: 'defaults' });
    const lmCos = join(dir, 'lm.jsonl');
    writeFileSync(lmCos, readFileSync(scoredFile, 'utf8').replaceAll('embed:all-MiniLM-L6-v2', 'lm-mean-hidden'));
    expect((await capture(['filter', lmCos, '-o', join(dir, 'kept2.jsonl'), '--summary', sum, '--quiet'])).code).toBe(0);
    expect(JSON.parse(readFileSync(sum, 'utf8')).applied).toMatchObject({ rule: 'main', rule_requested: 'auto', fwd_threshold: 0, rev_threshold: 0 });
  });

  it('select: usage errors before any model is loaded (exit 2), a missing file exit 3', async () => {
    expect((await capture(['select', scoredFile, '-o', join(dir, 's.jsonl')])).code).toBe(2); // no budget
    expect((await capture(['select', scoredFile, '-o', join(dir, 's.jsonl'), '--budget', '3', '--keep-fraction', '0.5'])).code).toBe(2);
    expect((await capture(['select', scoredFile, '-o', join(dir, 's.jsonl'), '--budget', '3', '--diversity', '1.5'])).code).toBe(2);
    expect((await capture(['select', scoredFile, '-o', join(dir, 's.jsonl'), '--budget', '3', '--rule', 'nope'])).code).toBe(2);
    expect((await capture(['select', join(dir, 'nope.jsonl'), '-o', join(dir, 's.jsonl'), '--budget', '3'])).code).toBe(3);
  });

  it('report writes one page', async () => {
    const out = join(dir, 'cli.html');
    const r = await capture(['report', scoredFile, '-o', out, '--group', 'source', '--label', 'label']);
    expect(r.code).toBe(0);
    const html = readFileSync(out, 'utf8');
    expect(html).toContain('By source');
    expect(html).not.toMatch(/(src|href)=["']https?:/);
    expect(html).toContain('<title>scored.jsonl — concord report</title>');
  });
});

describe('concord report in Chromium', () => {
  it.skipIf(!existsSync(CHROMIUM))('histograms, scatter, groups and eval table render; no external request; screenshot', async () => {
    const recs = readFileSync(scoredFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const html = buildReport({
      title: 'synthetic <scored> set', scores: recs.map((x) => x.scores), groups: recs.map((x) => x.source), groupField: 'source',
      labels: recs.map((x) => x.label), labelField: 'label', filter: { rule: 'auto' },
    });
    const file = join(dir, 'report.html');
    writeFileSync(file, html);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--headless=new', '--disable-background-networking', '--disable-component-update', '--no-first-run'] });
    const page = await browser.newPage({ viewport: { width: 1300, height: 900 } });
    const requests: string[] = [];
    page.on('request', (q) => requests.push(q.url()));
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(pathToFileURL(file).href);
    expect(await page.title()).toBe('synthetic <scored> set — concord report');
    expect(await page.locator('svg.hist').count()).toBe(8); // 7 scores + the rule's score
    expect(await page.locator('svg.hist[data-score="cosine"] rect').count()).toBeGreaterThan(30);
    expect(await page.locator('svg.scatter g.pts circle').count()).toBe(120);
    expect(await page.locator('svg.scatter g.pts[data-group="label true"] circle').count()).toBe(80);
    expect(await page.locator('table.groups tr').count()).toBe(3); // header + 2 sources
    expect(await page.locator('table.eval-rules tr', { hasText: 'auto → fused' }).count()).toBe(1);
    const box = await page.locator('svg.scatter').boundingBox();
    expect(box!.width).toBeGreaterThan(400);
    expect(requests).toEqual([pathToFileURL(file).href]);
    expect(errors).toEqual([]);
    mkdirSync(artifacts, { recursive: true });
    await page.screenshot({ path: join(artifacts, 'report.png'), fullPage: true });
    expect(existsSync(join(artifacts, 'report.png'))).toBe(true);
  }, 60_000);
});
