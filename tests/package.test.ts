// The package as a user gets it: `npm pack`, install the tarball into an empty folder (tarballs from
// the npm cache `npm ci` filled, metadata from the registry), `import … from 'concord-align'` there, score two pairs with
// a tiny model on the CPU, and run the installed `concord` binary.

import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, expect, test } from 'vitest';
import { makeTinyModel } from './helpers/tiny-models.js';

const ROOT = path.resolve(__dirname, '..');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'concord-pack-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const npm = (args: string[], cwd: string): string =>
  execFileSync('npm', [...args, '--no-audit', '--no-fund', '--loglevel=error'], { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

test('npm pack → install in a scratch folder → import from "concord-align" and run the bin', async () => {
  if (!fs.existsSync(path.join(ROOT, 'dist', 'src', 'index.js'))) execFileSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'ignore' });
  // --ignore-scripts: `prepare` (fetch models, build) has run already; the tarball is dist/ as built.
  const tgz = npm(['pack', '--ignore-scripts', '--pack-destination', dir], ROOT).trim().split('\n').pop()!;
  const app = path.join(dir, 'app');
  fs.mkdirSync(app);
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'scratch', private: true, type: 'module' }));
  npm(['install', '--prefer-offline', path.join(dir, tgz)], app);
  expect(fs.existsSync(path.join(app, 'node_modules', 'concord-align', 'dist', 'src', 'index.js'))).toBe(true);
  expect(fs.existsSync(path.join(app, 'node_modules', 'concord-align', 'src'))).toBe(false); // built files only

  const model = makeTinyModel('llama2c', path.join(dir, 'tiny'));
  fs.writeFileSync(path.join(app, 'use.mjs'), `
import { createScorer, applyFilter, EXIT, settings, loadEmbedder } from 'concord-align';
const scorer = await createScorer({ model: ${JSON.stringify(model)}, device: 'cpu', cosine: 'off' });
const out = [];
for await (const r of scorer.score([{ instruction: 'Tell a story.', output: 'Once upon a time there was a cat.' }, { instruction: 'x' }])) out.push(r);
scorer.dispose();
const keep = applyFilter([out[0].scores, out[0].scores], { rule: 'ifd', keepFraction: 0.5 }).keep;
console.log(JSON.stringify({ n: out.length, fwd: out[0].scores?.fwd_logp, error: out[1].error, keep, exit: EXIT.usage, frozen: Object.isFrozen(settings), enc: typeof loadEmbedder }));
`);
  const res = JSON.parse(execFileSync(process.execPath, ['use.mjs'], { cwd: app, encoding: 'utf8' }).trim().split('\n').pop()!);
  expect(res.n).toBe(2);
  expect(res.fwd).toBeLessThan(0);
  expect(res.error).toMatch(/output/);
  expect(res.keep).toHaveLength(2);
  expect(res.exit).toBe(2);
  expect(res.frozen).toBe(true);
  expect(res.enc).toBe('function');

  // The installed binary: help exits 0, a bad flag exits 2 with one line.
  const bin = path.join(app, 'node_modules', '.bin', 'concord');
  expect(execFileSync(bin, ['--help'], { encoding: 'utf8' })).toContain('concord score');
  let code = 0, err = '';
  try { execFileSync(bin, ['score', '--bogus'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }); } catch (e) { code = (e as { status: number }).status; err = String((e as { stderr: string }).stderr); }
  expect(code).toBe(2);
  expect(err.trim().split('\n')).toEqual(['concord score: unknown flag --bogus (concord score --help)']);
}, 240_000);
