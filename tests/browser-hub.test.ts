// The browser demo loads a model by Hub id (web/hub.ts over src/hub/memory.ts), in headless
// Chromium (Debian's /usr/bin/chromium via playwright-core, as tests/browser.test.ts), against the
// local Hub of tests/helpers/hub-server.ts on another origin (its CORS answers):
//  1. `?hub=tiny/qwen&endpoint=<local Hub>`: a sharded Qwen2-style tiny model (index + 2 shards)
//     is fetched through the API and /resolve (the shards from the CDN origin), scored on WebGPU,
//     and the sample set's scores equal `concord score --model <the same folder>` within the
//     browser test's tolerance (1e-4); a reload scores again having asked only the model API
//     (no /resolve, no CDN request: the Cache API held every file).
//  2. Every family the CLI loads (the 9 fixture families of tests/fixtures/hf, and the tiny GPT-2
//     and bf16 Mistral) loads by id in the page and scores three pairs on the page's CPU path as
//     the Node engine does on the folder.
//  3. A missing repo, a gated one and a repo without safetensors weights: one-line errors in the page.

import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel } from '../src/models/index.js';
import { browserScorer, type PairScores } from '../src/pipeline/index.js';
import { parseRecords } from '../web/engine.js';
import { serveStatic, type StaticServer } from './e2e/static-server.js';
import { setupCli } from './helpers/cli.js';
import { FakeHub } from './helpers/hub-server.js';
import { scratchDir } from './helpers/scratch.js';
import { buildTinyModel } from './helpers/tiny-models.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const CHROMIUM = process.env.CONCORD_CHROMIUM ?? '/usr/bin/chromium';
const SAMPLE = join(root, 'data', 'sample-pairs.jsonl');
const FIX = join(root, 'tests', 'fixtures', 'hf');
const QUIET = ['--no-sandbox', '--headless=new', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-default-apps'];
const WEBGPU = ['--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-angle=swiftshader'];
const TOL = 1e-4;
const QUANTITIES = ['fwd_logp', 'rev_logp', 'y_logp', 'x_logp'] as const;
const COMMIT = (i: number) => i.toString(16).padStart(40, 'c');

interface PagePair { index: number; scores?: PairScores; error?: string }

const hub = new FakeHub();
const scratch = scratchDir('concord-browser-hub-');
let server: StaticServer;
let browser: Browser;
let qwenDir: string;
const familyDirs = new Map<string, string>();

const filesOf = (dir: string): Map<string, Buffer> => new Map(readdirSync(dir).filter((n) => statSync(join(dir, n)).isFile() && n !== 'reference.json').map((n) => [n, readFileSync(join(dir, n))]));

beforeAll(async () => {
  const vite = join(dirname(createRequire(import.meta.url).resolve('vite/package.json')), 'bin', 'vite.js');
  execFileSync(process.execPath, [vite, 'build', '--config', 'web/vite.config.ts', '--logLevel', 'error'], { cwd: root, stdio: 'pipe' });
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM} (apt-get install chromium; or set CONCORD_CHROMIUM)`);
  await hub.start();
  // maxSeqLen 128 truncates the longer sample pairs, as in tests/browser.test.ts.
  qwenDir = buildTinyModel('hf-qwen2', join(scratch, 'qwen'), { seed: 11, dim: 32, hiddenDim: 64, nLayers: 2, nHeads: 4, nKvHeads: 2, maxSeqLen: 128 }).path;
  const files = filesOf(qwenDir);
  expect([...files.keys()]).toContain('model.safetensors.index.json');
  files.set('README.md', Buffer.from('# not downloaded\n'));
  hub.add('tiny/qwen', COMMIT(1), files);
  hub.add('tiny/gated', COMMIT(2), files, { gated: true });
  hub.add('tiny/binonly', COMMIT(3), new Map([['config.json', files.get('config.json')!], ['pytorch_model.bin', Buffer.alloc(8)]]));
  let i = 10;
  for (const f of readdirSync(FIX).sort()) familyDirs.set(f, join(FIX, f));
  familyDirs.set('tiny-gpt2', buildTinyModel('hf-gpt2', join(scratch, 'gpt2'), { seed: 12 }).path);
  familyDirs.set('tiny-mistral-bf16', buildTinyModel('hf-mistral', join(scratch, 'mistral'), { seed: 13 }).path);
  for (const [name, dir] of familyDirs) hub.add(`fam/${name}`, COMMIT(i++), filesOf(dir));
  server = await serveStatic({ '/': join(root, 'web-dist') });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: [...WEBGPU, ...QUIET] });
}, 180_000);

afterAll(async () => {
  await browser?.close().catch(() => {});
  await server?.close();
  await hub.stop();
});

async function openPage(query: string): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  page.on('pageerror', (e) => console.error(`page error: ${e.message}`));
  await page.goto(`${server.url}/${query}`);
  await page.waitForFunction(() => (window as unknown as { concordDemo?: { probe: unknown } }).concordDemo?.probe, null, { timeout: 30_000 });
  return page;
}

async function setPairs(page: Page, text: string): Promise<void> {
  await page.fill('#data-text', text);
  await page.dispatchEvent('#data-text', 'input');
}

/** Run, and the pairs, or the page's one-line error. */
async function run(page: Page, button: '#run-gpu' | '#run-cpu', timeout = 280_000): Promise<{ pairs?: PagePair[]; error?: string; info: string }> {
  await page.evaluate(() => { document.body.dataset.state = 'idle'; });
  await page.click(button);
  await page.waitForFunction(() => ['done', 'error'].includes(document.body.dataset.state ?? ''), null, { timeout });
  const info = (await page.textContent('#run-info')) ?? '';
  if ((await page.evaluate(() => document.body.dataset.state)) === 'error') return { error: (await page.textContent('#run-error')) ?? '', info };
  return { pairs: await page.evaluate(() => (window as unknown as { concordDemo: { pairs: PagePair[] } }).concordDemo.pairs), info };
}

/** Largest |page − reference| over the four quantities of every pair; token counts exact. */
function worstDiff(got: PagePair[], want: PairScores[], label: string): number {
  expect(got.length).toBe(want.length);
  let worst = 0;
  got.forEach((p, i) => {
    expect(p.error, `${label} pair ${i}`).toBeUndefined();
    expect([p.scores!.x_tokens, p.scores!.y_tokens, p.scores!.truncated], `${label} pair ${i} tokens`).toEqual([want[i].x_tokens, want[i].y_tokens, want[i].truncated]);
    for (const q of QUANTITIES) worst = Math.max(worst, Math.abs(p.scores![q] - want[i][q]));
  });
  return worst;
}

const count = (what: 'api' | 'resolve' | 'cdn') => hub.log.filter((l) => l.method !== 'OPTIONS' && (what === 'cdn' ? l.server === 'cdn' : l.server === 'hub' && (what === 'api' ? l.url.startsWith('/api/') : l.url.includes('/resolve/')))).length;

describe('the browser demo loads a model by Hub id', () => {
  it('fetches it from the local Hub, scores on WebGPU as `concord score` does on the folder; a reload downloads nothing', async () => {
    const c = setupCli('concord-browser-hub-cli-');
    writeFileSync(c.p('pairs.jsonl'), readFileSync(SAMPLE));
    const sc = await c.run(['score', 'pairs.jsonl', '-o', 'scored.jsonl', '--model', qwenDir, '--device', 'cpu', '--cosine', 'off'], {}, { fake: false });
    expect(sc.code, sc.stderr).toBe(0);
    const cli = c.lines('scored.jsonl').map((l) => l.scores as PairScores);

    hub.log = [];
    const page = await openPage(`?hub=tiny/qwen&endpoint=${encodeURIComponent(hub.url)}&encoder=off`);
    const probe = await page.evaluate(() => (window as unknown as { concordDemo: { probe: { ok: boolean; error?: string } } }).concordDemo.probe);
    if (!probe.ok) throw new Error(`headless Chromium has no WebGPU adapter (${probe.error})`);
    expect(await page.inputValue('#hub-id')).toBe('tiny/qwen');
    await setPairs(page, readFileSync(SAMPLE, 'utf8'));
    const first = await run(page, '#run-gpu');
    if (first.error) throw new Error(`the page's run failed: ${first.error}`);
    expect(first.info).toContain('Qwen2ForCausalLM (tiny/qwen@main=cccccccccccc)');
    expect(first.info).toContain('webgpu');
    const worst = worstDiff(first.pairs!, cli, 'webgpu');
    console.log(`browser (Hub id, WebGPU) vs concord score (folder, cpu): max |diff| = ${worst.toExponential(2)} over ${cli.length} pairs`);
    expect(worst).toBeLessThanOrEqual(TOL);
    expect(first.pairs!.some((p) => p.scores?.truncated)).toBe(true);
    // What was fetched: the API (modelInfo, pathsInfo), each needed file once, the LFS shards from the CDN; not the README.
    const needed = [...filesOf(qwenDir).keys()];
    expect(count('api')).toBe(2);
    expect(count('resolve')).toBe(needed.length);
    expect(count('cdn')).toBe(needed.filter((f) => f.endsWith('.safetensors')).length);
    expect(hub.log.some((l) => l.url.includes('README'))).toBe(false);
    // Progress: a status line per downloaded file as its bytes arrive, then what was loaded.
    const statuses = async () => page.evaluate(() => (window as unknown as { concordDemo: { statusLog: string[] } }).concordDemo.statusLog);
    const log1 = await statuses();
    for (const f of needed) expect(log1.some((l) => l.startsWith(`downloading tiny/qwen/${f}: `)), f).toBe(true);
    expect(log1).toContain(`tiny/qwen@main=cccccccccccc: ${needed.length} files, ${(needed.reduce((a, f) => a + statSync(join(qwenDir, f)).size, 0) / 1e6).toFixed(1)} MB (${needed.length} downloaded)`);

    // A reload: the same scores, and only the model API was asked (where main points).
    hub.log = [];
    await page.reload();
    await page.waitForFunction(() => (window as unknown as { concordDemo?: { probe: unknown } }).concordDemo?.probe, null, { timeout: 30_000 });
    const three = readFileSync(SAMPLE, 'utf8').trim().split('\n').slice(0, 3).join('\n');
    await setPairs(page, three);
    const again = await run(page, '#run-gpu');
    if (again.error) throw new Error(`the page's second run failed: ${again.error}`);
    expect(worstDiff(again.pairs!, cli.slice(0, 3), 'reload')).toBeLessThanOrEqual(TOL);
    expect(hub.log.filter((l) => l.method !== 'OPTIONS').map((l) => `${l.method} ${l.url.split('?')[0]}`)).toEqual(['GET /api/models/tiny/qwen/revision/main']);
    const log2 = await statuses();
    expect(log2.some((l) => l.startsWith('downloading'))).toBe(false);
    expect(log2.some((l) => l.endsWith('(all from the browser cache)'))).toBe(true);
    await page.close();
  }, 600_000);

  it('every family the CLI loads loads by id in the page and scores as the Node engine does (page CPU path)', async () => {
    const recs = parseRecords(readFileSync(SAMPLE, 'utf8')).records.slice(0, 3);
    const page = await openPage(`?endpoint=${encodeURIComponent(hub.url)}&encoder=off`);
    await page.check('input[name=model][value=hub]');
    await setPairs(page, recs.map((r) => JSON.stringify(r)).join('\n'));
    for (const [name, dir] of familyDirs) {
      const model = await loadModel(dir, { device: 'cpu-twin' });
      const scorer = await browserScorer({ model, cosine: 'off' });
      const want: PairScores[] = [];
      for await (const r of scorer.score(recs)) want.push(r.scores!);
      model.dispose();
      await page.fill('#hub-id', `fam/${name}`);
      const got = await run(page, '#run-cpu', 120_000);
      if (got.error) throw new Error(`${name}: ${got.error}`);
      const worst = worstDiff(got.pairs!, want, name);
      console.log(`${name}: page (Hub id, CPU) vs Node (folder): max |diff| = ${worst.toExponential(2)}`);
      expect(worst, name).toBeLessThanOrEqual(TOL);
    }
    await page.close();
  }, 600_000);

  it('a missing repo, a gated one, no safetensors: one-line errors in the page', async () => {
    const page = await openPage(`?hub=tiny/absent&endpoint=${encodeURIComponent(hub.url)}&encoder=off`);
    await setPairs(page, readFileSync(SAMPLE, 'utf8').trim().split('\n')[0]);
    const cases: [string, RegExp][] = [
      ['tiny/absent', /^tiny\/absent@main: 404 — no model tiny\/absent on http:\/\/127\.0\.0\.1:\d+ \(a private repo also answers 404 to a page without a token\)$/],
      ['tiny/absent@v2', /^tiny\/absent@v2: 404 — no model tiny\/absent/],
      ['tiny/gated', /^tiny\/gated: 401 — tiny\/gated is gated or private: the page sends no token/],
      ['tiny/binonly', /^tiny\/binonly has neither model\.safetensors nor model\.safetensors\.index\.json \(pytorch \.bin weights are not supported\)$/],
      ['not a repo', /^"not a repo" is not a Hub model id/],
    ];
    for (const [id, re] of cases) {
      await page.fill('#hub-id', id);
      const r = await run(page, '#run-cpu', 60_000);
      expect(r.error, id).toMatch(re);
      expect(r.error, id).not.toContain('\n');
    }
    await page.close();
  }, 180_000);
});
