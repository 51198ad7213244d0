// The browser demo end to end, in headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core; no browser is downloaded). The page is built with Vite (web/vite.config.ts)
// and served from web-dist/ on 127.0.0.1 by a tiny server in this process.
//
//  1. WebGPU (SwiftShader): the sample set scored in the page with a tiny random llama2.c model
//     (the page loads it from bytes through web/model-source.ts and runs the WGSL kernels in a
//     worker) equals the Node engine's scores for the same files — loadModel(path, {device:
//     'cpu'}) + browserScorer — within 1e-4 per score; the keep-fraction control changes the kept
//     set without rescoring; the kept download holds the kept pairs. No adapter = a failed test.
//  2. No WebGPU (Chromium without the flags): the page says so, the WebGPU button is disabled,
//     and the CPU path — chosen with its button — gives the same scores.
//  3. The page's defaults are the CLI's: the tiny model with the MiniLM sentence encoder (on
//     WebGPU in the page, on onnxruntime in `concord score`) and the rule auto → fused give the
//     same keep decisions as `concord score` + `concord filter` on the same file; the downloads are
//     the CLI's record shape, and the kept file goes through `concord filter` and `concord eval`.
//  4. CONCORD_DEMO_SCREENSHOT=1 (`npm run demo:screenshot`): the real stories15M on 10 sample
//     pairs, screenshot to docs/demo.png for the README (minutes on SwiftShader, so not in CI).
//
// Screenshots of 1 and 2 go to test-artifacts/browser/.

import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel, type LanguageModel } from '../src/models/index.js';
import { applyFilter, browserScorer, type PairScores } from '../src/pipeline/index.js';
import { parseRecords } from '../web/engine.js';
import { writeParquetRows } from '../src/io/parquet.js';
import { serveStatic, type StaticServer } from './e2e/static-server.js';
import { setupCli } from './helpers/cli.js';
import { makeTinyModel } from './helpers/tiny-models.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const artifacts = join(root, 'test-artifacts', 'browser');
const CHROMIUM = process.env.CONCORD_CHROMIUM ?? '/usr/bin/chromium';
const SAMPLE = join(root, 'data', 'sample-pairs.jsonl');

// Flags that give navigator.gpu a SwiftShader adapter in headless Chromium 156 without a GPU:
// --enable-unsafe-webgpu (WebGPU on Linux) with Vulkan enabled and ANGLE on SwiftShader. The rest
// keep Chromium off the (closed) network.
const QUIET = ['--no-sandbox', '--headless=new', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-default-apps'];
const WEBGPU = ['--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-angle=swiftshader'];

const TOL = 1e-4;
const QUANTITIES = ['fwd_logp', 'rev_logp', 'y_logp', 'x_logp'] as const;

interface PagePair { index: number; scores?: PairScores; g_fwd: number; g_rev: number; error?: string }

let server: StaticServer;
let tinyPath: string;
let nodeScores: PairScores[];
const browsers: Browser[] = [];

function buildPage(): void {
  const vite = join(dirname(createRequire(import.meta.url).resolve('vite/package.json')), 'bin', 'vite.js');
  execFileSync(process.execPath, [vite, 'build', '--config', 'web/vite.config.ts', '--logLevel', 'error'], { cwd: root, stdio: 'pipe' });
  if (!existsSync(join(root, 'web-dist', 'index.html'))) throw new Error('vite build wrote no web-dist/index.html');
}

async function launch(webgpu: boolean): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM} (apt-get install chromium; or set CONCORD_CHROMIUM)`);
  const b = await chromium.launch({ executablePath: CHROMIUM, args: [...(webgpu ? WEBGPU : []), ...QUIET] });
  browsers.push(b);
  return b;
}

async function openPage(b: Browser, query: string): Promise<Page> {
  const page = await b.newPage({ viewport: { width: 1400, height: 1000 }, acceptDownloads: true });
  page.on('pageerror', (e) => console.error(`page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error' && !m.text().includes('favicon') && !m.text().includes('404')) console.error(`page console: ${m.text()}`); });
  await page.goto(`${server.url}${query}`);
  await page.waitForFunction(() => (window as unknown as { concordDemo?: { probe: unknown } }).concordDemo?.probe, null, { timeout: 30_000 });
  return page;
}

async function loadSample(page: Page): Promise<void> {
  const n = parseRecords(readFileSync(SAMPLE, 'utf8')).records.length;
  await page.click('#load-sample');
  await expect.poll(() => page.textContent('#data-note')).toContain(`${n} records`);
}

async function runAndWait(page: Page, button: '#run-gpu' | '#run-cpu', timeout: number, watch = false): Promise<PagePair[]> {
  const t0 = Date.now();
  await page.click(button);
  if (watch) {
    // While the worker scores, the page shows pairs/s and its main thread stays free.
    await expect.poll(() => page.textContent('#progress-text'), { timeout: 120_000 }).toMatch(/pairs\/s/);
    const frameMs = await page.evaluate(() => new Promise<number>((ok) => { const t = performance.now(); requestAnimationFrame(() => ok(performance.now() - t)); }));
    console.log(`while scoring: progress '${await page.textContent('#progress-text')}', a frame in ${frameMs.toFixed(0)} ms`);
    expect(frameMs).toBeLessThan(1000);
  }
  await page.waitForFunction(() => ['done', 'error'].includes(document.body.dataset.state ?? ''), null, { timeout });
  const state = await page.evaluate(() => document.body.dataset.state);
  if (state !== 'done') throw new Error(`the page's run failed: ${await page.textContent('#run-error')}`);
  console.log(`${button}: ${await page.textContent('#run-info')} (wall ${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  return page.evaluate(() => (window as unknown as { concordDemo: { pairs: PagePair[] } }).concordDemo.pairs);
}

/** Largest |browser − Node| over every score of every pair; token counts must match exactly. */
function compare(pagePairs: PagePair[], label: string): number {
  expect(pagePairs.length).toBe(nodeScores.length);
  let worst = 0, where = '';
  pagePairs.forEach((p, i) => {
    const n = nodeScores[i];
    expect(p.error, `pair ${i}`).toBeUndefined();
    const s = p.scores!;
    expect([s.x_tokens, s.y_tokens, s.truncated], `pair ${i} tokens`).toEqual([n.x_tokens, n.y_tokens, n.truncated]);
    const diffs: [string, number][] = [
      ...QUANTITIES.map((q) => [q, Math.abs(s[q] - n[q])] as [string, number]),
      ['g_fwd', Math.abs(p.g_fwd - (n.fwd_logp - n.y_logp))],
      ['g_rev', Math.abs(p.g_rev - (n.rev_logp - n.x_logp))],
    ];
    for (const [q, d] of diffs) {
      if (!(d <= worst)) { worst = d; where = `pair ${i} ${q}`; }
    }
  });
  console.log(`${label}: max |browser − node| = ${worst.toExponential(2)} (${where}) over ${pagePairs.length} pairs`);
  expect(worst).toBeLessThanOrEqual(TOL);
  return worst;
}

/** Move the mouse onto pair i's point; returns the pair the tooltip then shows. */
async function hoverPair(page: Page, i: number): Promise<number | null> {
  type Demo = { concordDemo: { pointPosition(i: number): { x: number; y: number } | null; tooltipPair: number | null } };
  const pos = await page.evaluate((k) => (window as unknown as Demo).concordDemo.pointPosition(k), i);
  if (!pos) throw new Error(`pair ${i} is not in the scatter`);
  await page.evaluate(([x, y]) => window.scrollTo(0, Math.max(0, y - 300)), [pos.x, pos.y]);
  const scrollY = await page.evaluate(() => window.scrollY);
  await page.mouse.move(pos.x, pos.y - scrollY);
  await expect.poll(() => page.evaluate(() => (window as unknown as Demo).concordDemo.tooltipPair)).not.toBeNull();
  return page.evaluate(() => (window as unknown as Demo).concordDemo.tooltipPair);
}

/**
 * A screenshot of the whole page that keeps the scatter's tooltip: the viewport is made as tall as
 * the page first (a fullPage screenshot resizes the page, and the charts redraw without it).
 */
async function shot(page: Page, path: string, hoverOn: number | null): Promise<void> {
  const height = await page.evaluate(() => document.documentElement.scrollHeight);
  await page.setViewportSize({ width: 1400, height });
  await page.waitForTimeout(200);
  if (hoverOn !== null) expect(await hoverPair(page, hoverOn)).toBe(hoverOn);
  await page.screenshot({ path });
}

async function keptCount(page: Page): Promise<number> {
  return Number(await page.getAttribute('#kept-summary', 'data-kept'));
}

beforeAll(async () => {
  if (!existsSync(SAMPLE)) throw new Error(`${SAMPLE} is missing`);
  mkdirSync(artifacts, { recursive: true });
  buildPage();
  // A tiny random llama2.c model (+ tokenizer.bin beside it): SwiftShader runs WGSL at well under
  // a GFLOP/s, so stories15M over the whole sample set would take many minutes. maxSeqLen 128
  // truncates the longer pairs, so the page's truncation is checked against Node's too.
  tinyPath = makeTinyModel('llama2c', join(artifacts, 'tiny'), { seed: 7, dim: 32, hiddenDim: 64, nLayers: 2, nHeads: 4, nKvHeads: 2, maxSeqLen: 128 });
  server = await serveStatic({ '/': join(root, 'web-dist'), '/tiny/': dirname(tinyPath) });

  // The reference: the Node engine on the same files (its own disk loaders, the CPU twin).
  const model: LanguageModel = await loadModel(tinyPath, { device: 'cpu-twin' });
  const scorer = await browserScorer({ model, cosine: 'off' });
  nodeScores = [];
  for await (const r of scorer.score(parseRecords(readFileSync(SAMPLE, 'utf8')).records)) {
    if (!r.scores) throw new Error(`node reference: pair ${r.index}: ${r.error}`);
    nodeScores.push(r.scores);
  }
  model.dispose();
});

afterAll(async () => {
  for (const b of browsers) await b.close().catch(() => {});
  await server?.close();
});

// encoder=off: the tests of the LM's scores leave the sentence encoder out (as --cosine off); the
// CLI-agreement test below runs the page's default, the encoder.
const tinyQuery = (encoder = false) => `?model=tiny/${encodeURIComponent(tinyPath.split('/').pop()!)}&tokenizer=tiny/tokenizer.bin&name=tiny-llama2c${encoder ? '' : '&encoder=off'}`;

async function downloadLines(page: Page, button: '#dl-kept' | '#dl-dropped'): Promise<{ text: string; lines: Record<string, any>[] }> {
  const [download] = await Promise.all([page.waitForEvent('download'), page.click(button)]);
  const text = readFileSync((await download.path())!, 'utf8');
  return { text, lines: text.trim() === '' ? [] : text.trim().split('\n').map((l) => JSON.parse(l)) };
}

describe('browser demo', () => {
  it('scores the sample set on WebGPU exactly like the Node engine; the filter control works without rescoring', async () => {
    const page = await openPage(await launch(true), tinyQuery());
    const probe = await page.evaluate(() => (window as unknown as { concordDemo: { probe: { ok: boolean; adapter?: string; error?: string } } }).concordDemo.probe);
    if (!probe.ok) throw new Error(`headless Chromium has no WebGPU adapter (${probe.error}); flags: ${WEBGPU.join(' ')}`);
    console.log(`browser WebGPU adapter: ${probe.adapter}`);
    expect(await page.isEnabled('#run-gpu')).toBe(true);

    await loadSample(page);
    const pairs = await runAndWait(page, '#run-gpu', 280_000, true);
    expect(await page.textContent('#run-info')).toContain('webgpu');
    compare(pairs, 'webgpu');
    expect(pairs.some((p) => p.scores?.truncated)).toBe(true);

    // The keep-fraction control: the kept set follows the slider, the scores stay as they are.
    await page.locator('#keep-fraction').fill('0.25');
    const k25 = await keptCount(page);
    await page.locator('#keep-fraction').fill('0.75');
    const k75 = await keptCount(page);
    expect(k25).toBeGreaterThan(0);
    expect(k75).toBeGreaterThan(k25);
    const node75 = applyFilter(nodeScores, { rule: 'main', signal: 'gain', keepFraction: 0.75 });
    expect(k75).toBe(node75.kept);
    const after = await page.evaluate(() => (window as unknown as { concordDemo: { pairs: PagePair[] } }).concordDemo.pairs);
    expect(after.map((p) => p.scores?.fwd_logp)).toEqual(pairs.map((p) => p.scores?.fwd_logp));

    // Explicit thresholds.
    await page.locator('#thr-fwd').fill('0');
    await page.locator('#thr-rev').fill('0');
    const node00 = applyFilter(nodeScores, { rule: 'main', signal: 'gain', fwdThreshold: 0, revThreshold: 0 });
    expect(await keptCount(page)).toBe(node00.kept);

    // Back to 75 %: the kept download holds exactly the kept pairs, with their scores.
    await page.locator('#keep-fraction').fill('0.75');
    const { lines } = await downloadLines(page, '#dl-kept');
    expect(lines.length).toBe(k75);
    expect(lines.every((l) => l.keep === true && typeof l.scores?.fwd_logp === 'number' && typeof l.filter_score === 'number' && !('concord' in l))).toBe(true);

    // The table sorts by a clicked column (descending first).
    await page.click('#pairs th[data-key=g_fwd]');
    const col = (await page.locator('#pairs tbody tr td:nth-child(4)').allTextContents()).map(Number);
    expect(col.length).toBe(25);
    expect(col).toEqual([...col].sort((a, b) => b - a));

    // Hovering a point shows that pair.
    await shot(page, join(artifacts, 'demo-tiny-webgpu.png'), 2);
  });

  it('without WebGPU says so and scores on the CPU only when asked', async () => {
    const page = await openPage(await launch(false), tinyQuery());
    await expect.poll(() => page.textContent('#gpu-status')).toContain('No WebGPU');
    expect(await page.isDisabled('#run-gpu')).toBe(true);
    await loadSample(page);
    const pairs = await runAndWait(page, '#run-cpu', 280_000);
    expect(await page.textContent('#run-info')).toContain('cpu');
    compare(pairs, 'cpu (in the browser)');
    await shot(page, join(artifacts, 'demo-tiny-cpu.png'), null);
  });

  it('a chosen Parquet file becomes the same records as its JSONL (hyparquet in the page)', async () => {
    const page = await openPage(await launch(false), tinyQuery());
    const recs = parseRecords(readFileSync(SAMPLE, 'utf8')).records as Record<string, unknown>[];
    mkdirSync(artifacts, { recursive: true });
    const pq = join(artifacts, 'sample-pairs.parquet');
    await writeParquetRows(pq, async function* () { yield* recs; });
    await page.setInputFiles('#data-file', pq);
    await expect.poll(() => page.textContent('#data-note')).toContain(`${recs.length} records · from Parquet sample-pairs.parquet`);
    const got = parseRecords(await page.inputValue('#data-text')).records as Record<string, unknown>[];
    // Parquet has a value (or null) in every column: compare the fields each record has.
    expect(got.map((g, i) => Object.fromEntries(Object.keys(recs[i]).map((k) => [k, g[k]])))).toEqual(recs);
  });

  it('agrees with the CLI on the same file with the defaults (MiniLM encoder, rule auto → fused); its downloads go to concord filter and eval', async () => {
    const c = setupCli('concord-browser-cli-');
    const file = c.p('pairs.jsonl');
    // 6 aligned and 2 misaligned sample pairs (SwiftShader runs the encoder at well under a GFLOP/s).
    writeFileSync(file, readFileSync(SAMPLE, 'utf8').trim().split('\n').slice(0, 8).join('\n') + '\n');
    const page = await openPage(await launch(true), tinyQuery(true));
    await page.fill('#data-text', readFileSync(file, 'utf8'));
    await page.dispatchEvent('#data-text', 'input');
    await runAndWait(page, '#run-gpu', 280_000);
    expect(await page.textContent('#run-info')).toContain('cosine all-MiniLM-L6-v2 on ');
    expect(await page.inputValue('#rule')).toBe('auto');
    expect(await page.getAttribute('#kept-summary', 'data-rule')).toBe('fused');
    const kept = await downloadLines(page, '#dl-kept');
    const dropped = await downloadLines(page, '#dl-dropped');
    expect(kept.lines.length + dropped.lines.length).toBe(8);

    // The CLI on the same file, with its defaults (--cosine auto, --rule auto).
    const sc = await c.run(['score', 'pairs.jsonl', '-o', 'scored.jsonl', '--model', tinyPath, '--device', 'cpu'], {}, { fake: false });
    expect(sc.code, sc.stderr).toBe(0);
    const fl = await c.run(['filter', 'scored.jsonl', '-o', 'cli-kept.jsonl', '--drop-out', 'cli-dropped.jsonl'], {}, { fake: false });
    expect(fl.code, fl.stderr).toBe(0);
    expect(fl.stderr).toContain('rule=fused');
    const cliKept = c.lines('cli-kept.jsonl'), cliDropped = c.lines('cli-dropped.jsonl');
    const ids = (ls: Record<string, any>[]) => ls.map((l) => l.id);
    expect(ids(kept.lines)).toEqual(ids(cliKept));
    expect(ids(dropped.lines)).toEqual(ids(cliDropped));
    console.log(`browser vs CLI (defaults): kept ${ids(kept.lines).join(',')}; dropped ${ids(dropped.lines).join(',')}`);
    // Same record shape, same scores (WebGPU vs onnxruntime: f32 both, different kernels).
    const all = [...kept.lines, ...dropped.lines], cliAll = [...cliKept, ...cliDropped];
    all.forEach((b, i) => {
      const cl = cliAll[i];
      expect(Object.keys(b)).toEqual(Object.keys(cl));
      expect(b.scores.cosine_source).toBe(cl.scores.cosine_source);
      expect(Math.abs(b.scores.cosine - cl.scores.cosine), `${b.id} cosine`).toBeLessThan(1e-3);
      expect(Math.abs(b.scores.fwd_logp - cl.scores.fwd_logp), `${b.id} fwd_logp`).toBeLessThan(TOL);
      expect(Math.abs(b.filter_score - cl.filter_score), `${b.id} filter_score`).toBeLessThan(1e-3);
      expect(b.keep).toBe(cl.keep);
    });

    // The browser's files go to the CLI as they are.
    writeFileSync(c.p('browser-kept.jsonl'), kept.text);
    writeFileSync(c.p('browser-all.jsonl'), kept.text + dropped.text);
    const again = await c.run(['filter', 'browser-kept.jsonl', '-o', 'again.jsonl'], {}, { fake: false });
    expect(again.code, again.stderr).toBe(0);
    expect(ids(c.lines('again.jsonl'))).toEqual(ids(kept.lines)); // fused's thresholds are absolute: a kept set stays kept
    // eval needs both labels: the kept file with the dropped one (the kept file alone holds only
    // aligned pairs when the filter did its job); report takes the kept file alone.
    const ev = await c.run(['eval', 'browser-all.jsonl', '--label', 'note', '--positive', 'aligned', '--json'], {}, { fake: false });
    expect(ev.code, ev.stderr).toBe(0);
    const rep = JSON.parse(ev.stdout);
    expect([rep.n, rep.left_out, rep.positives]).toEqual([8, 0, 6]);
    expect(rep.scores.map((x: { name: string }) => x.name)).toContain('cosine');
    const html = await c.run(['report', 'browser-kept.jsonl', '-o', 'kept.html'], {}, { fake: false });
    expect(html.code, html.stderr).toBe(0);
    expect(fs.readFileSync(c.p('kept.html'), 'utf8')).toContain(`${kept.lines.length} scored pairs`);
  });

  it.runIf(process.env.CONCORD_DEMO_SCREENSHOT === '1')('docs/demo.png: stories15M on 10 sample pairs (WebGPU)', async () => {
    const page = await openPage(await launch(true), '');
    const lines = readFileSync(SAMPLE, 'utf8').trim().split('\n');
    // The first 8 and two more: 6 aligned pairs and 4 mismatched ones (every fourth is).
    const picked = lines.filter((_, i) => i < 8 || i === 11 || i === 15);
    await page.fill('#data-text', picked.join('\n'));
    await page.dispatchEvent('#data-text', 'input');
    await runAndWait(page, '#run-gpu', 590_000);
    await page.locator('#keep-fraction').fill('0.5');
    mkdirSync(join(root, 'docs'), { recursive: true });
    await shot(page, join(root, 'docs', 'demo.png'), 1);
  }, 600_000);
});
