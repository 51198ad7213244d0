// The front page and the reference stay true: every `concord …` command that README.md and docs/
// show parses (the CLI's own argument parser, CONCORD_DRY_RUN=1: a command stops once its flags
// parse), every `npm run X` names a script of package.json, every relative link (and its #anchor)
// resolves, the README stays ≤ 300 lines, and no path outside the repository is named.

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { ROOT, setupCli } from './helpers/cli.js';

const DOCS = ['README.md', ...fs.readdirSync(path.join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
const read = (f: string) => fs.readFileSync(path.join(ROOT, f), 'utf8');

/** Shell words of one command (quotes removed; `$VAR` left as is). */
function words(cmd: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|'([^']*)'|(\S+)/g;
  for (let m; (m = re.exec(cmd));) out.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2] ?? m[3]);
  return out;
}

/** Split a shell line on ; && || | outside quotes, and drop a trailing # comment. */
function segments(line: string): string[] {
  const segs: string[] = [];
  let cur = '', q = '';
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (q) { if (c === q) q = ''; cur += c; continue; }
    if (c === '"' || c === "'") { q = c; cur += c; continue; }
    if (c === '#' && (i === 0 || /\s/.test(line[i - 1]))) break;
    if (c === ';' || c === '|' || (c === '&' && line[i + 1] === '&')) { segs.push(cur); cur = ''; if (line[i + 1] === c) i++; continue; }
    cur += c;
  }
  segs.push(cur);
  return segs.map((s) => s.trim()).filter(Boolean);
}

/** A synopsis (placeholders, alternatives) rather than a command one can run. */
const isSynopsis = (s: string) => /[<>[\]…()]|\.\.\./.test(s);

interface Shown { file: string; line: number; text: string; argv?: string[]; npmScript?: string }

/** Commands in fenced shell blocks and in inline code spans. */
function shownCommands(file: string): Shown[] {
  const out: Shown[] = [];
  const lines = read(file).split('\n');
  let fence: string | null = null;
  const take = (text: string, line: number) => {
    for (let seg of segments(text)) {
      seg = seg.replace(/^(do|then|time)\s+/, '');
      const w = words(seg);
      while (w.length && /^[A-Z_][A-Z0-9_]*=/.test(w[0])) w.shift(); // VAR=value prefixes
      let argv: string[] | undefined;
      if (w[0] === 'concord') argv = w.slice(1);
      else if (w[0] === 'npx' && w[1] === 'concord') argv = w.slice(2);
      else if (w[0] === 'node' && w[1] === 'bin/concord.js') argv = w.slice(2);
      if (argv && !isSynopsis(seg)) out.push({ file, line, text: seg, argv });
      if (w[0] === 'npm' && (w[1] === 'run' || w[1] === 'start' || w[1] === 'test')) {
        out.push({ file, line, text: seg, npmScript: w[1] === 'run' ? w.slice(2).find((x) => !x.startsWith('-')) : w[1] });
      }
    }
  };
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i];
    const f = /^\s*(```+)(\w*)/.exec(l);
    if (f) { fence = fence ? null : f[2] || 'text'; continue; }
    if (fence && ['sh', 'bash', 'shell', 'text', ''].includes(fence)) {
      let text = l;
      while (text.endsWith('\\') && i + 1 < lines.length) text = text.slice(0, -1) + ' ' + lines[++i];
      take(text, i + 1);
    } else if (!fence) {
      for (const m of l.matchAll(/`((?:npx )?concord [^`]+|node bin\/concord\.js [^`]+|npm (?:run [\w:-]+|start|test)[^`]*)`/g)) take(m[1], i + 1);
    }
  }
  return out;
}

/** GitHub's anchor of a heading. */
const slug = (h: string) => h.trim().toLowerCase().replace(/<[^>]*>/g, '').replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-');

describe('README and docs/', () => {
  const all = DOCS.flatMap(shownCommands);
  let results: { code: number; stderr: string }[] = [];

  beforeAll(() => {
    setupCli('concord-docs-'); // builds dist/ when older than the sources
    const argvs = all.filter((c) => c.argv).map((c) => c.argv!);
    const script = `
      const { main } = await import(${JSON.stringify(path.join(ROOT, 'dist', 'src', 'cli', 'main.js'))});
      const argvs = JSON.parse(process.argv[1]);
      const codes = [];
      for (const a of argvs) {
        const err = [];
        const orig = process.stderr.write.bind(process.stderr), log = console.log, error = console.error;
        process.stderr.write = (s) => { err.push(String(s)); return true; };
        console.log = () => {}; console.error = (...x) => err.push(x.join(' '));
        let code;
        try { code = await main(a); } catch (e) { code = -1; err.push(String(e && e.stack || e)); }
        process.stderr.write = orig; console.log = log; console.error = error;
        codes.push({ code, stderr: err.join('').slice(0, 500) });
      }
      process.stdout.write(JSON.stringify(codes));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script, JSON.stringify(argvs)], {
      cwd: ROOT, encoding: 'utf8', env: { ...process.env, CONCORD_DRY_RUN: '1' }, maxBuffer: 1 << 26,
    });
    if (r.status !== 0) throw new Error(`dry run failed: ${r.stderr}`);
    results = JSON.parse(r.stdout);
  });

  test('every concord command shown parses (CONCORD_DRY_RUN=1)', () => {
    const cmds = all.filter((c) => c.argv);
    console.log(`${cmds.length} concord commands in ${DOCS.length} files`);
    expect(cmds.length).toBeGreaterThan(20);
    expect(cmds.filter((c) => c.file === 'README.md').length).toBeGreaterThanOrEqual(9);
    const bad = cmds.map((c, i) => ({ c, r: results[i] })).filter(({ r }) => r.code !== 0)
      .map(({ c, r }) => `${c.file}:${c.line}: ${c.text} → exit ${r.code}: ${r.stderr.trim()}`);
    expect(bad).toEqual([]);
  });

  test('the dry run does catch a bad command', async () => {
    const r = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'concord.js'), 'filter', 'x.jsonl', '--bogus'], { encoding: 'utf8', env: { ...process.env, CONCORD_DRY_RUN: '1' } });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('unknown flag --bogus');
    const ok = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'concord.js'), 'filter', 'does-not-exist.jsonl', '-o', 'k.jsonl'], { encoding: 'utf8', env: { ...process.env, CONCORD_DRY_RUN: '1' } });
    expect(ok.status, ok.stderr).toBe(0); // parse only: the missing file is not opened
  });

  test('every npm script shown exists', () => {
    const scripts = JSON.parse(read('package.json')).scripts as Record<string, string>;
    const bad = all.filter((c) => c.npmScript && !(c.npmScript in scripts)).map((c) => `${c.file}:${c.line}: ${c.text}`);
    expect(all.some((c) => c.npmScript === 'start')).toBe(true);
    expect(bad).toEqual([]);
  });

  test('every relative link resolves (files and #anchors)', () => {
    const bad: string[] = [];
    for (const f of [...DOCS, 'ARCHITECTURE.md']) {
      const text = read(f).replace(/```[\s\S]*?```/g, '');
      for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        const target = m[1];
        if (/^(https?:|mailto:)/.test(target)) continue;
        const [file, anchor] = target.split('#');
        const abs = file ? path.resolve(ROOT, path.dirname(f), file) : path.join(ROOT, f);
        if (!abs.startsWith(ROOT + path.sep) && abs !== ROOT) { bad.push(`${f}: ${target} leaves the repository`); continue; }
        if (!fs.existsSync(abs)) { bad.push(`${f}: ${target} does not exist`); continue; }
        if (anchor && abs.endsWith('.md')) {
          const heads = fs.readFileSync(abs, 'utf8').replace(/```[\s\S]*?```/g, '').split('\n').filter((l) => /^#+ /.test(l)).map((l) => slug(l.replace(/^#+ /, '')));
          if (!heads.includes(anchor)) bad.push(`${f}: ${target}: no heading #${anchor}`);
        }
      }
    }
    expect(bad).toEqual([]);
  });

  test('README ≤ 300 lines; no path outside the repository', () => {
    expect(read('README.md').split('\n').length).toBeLessThanOrEqual(300);
    const bad: string[] = [];
    for (const f of DOCS) {
      read(f).split('\n').forEach((l, i) => {
        if (/\.\.\/shared|\/work\/|(^|[\s`(])\/tmp\/|\bshared\/(data|gpu|STYLE)/.test(l)) bad.push(`${f}:${i + 1}: ${l.trim()}`);
      });
    }
    expect(bad).toEqual([]);
  });
});
