// Issue 21: the file jobs (src/jobs) and the record I/O layer (src/io) have no function over 120
// lines, and nothing outside src/io reads JSONL or sniffs formats by itself. Parsed with the
// TypeScript compiler API: every function, method, arrow function and accessor is measured from its
// first to its last line.

import * as fs from 'node:fs';
import * as path from 'node:path';
import ts from 'typescript';
import { expect, test } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '..');
const MAX = 120;

/** Every function-like node of a source text with its line count. */
export function functionLengths(file: string, text = fs.readFileSync(file, 'utf8')): { name: string; lines: number }[] {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const out: { name: string; lines: number }[] = [];
  const visit = (n: ts.Node) => {
    if (ts.isFunctionLike(n) && (n as ts.FunctionLikeDeclaration).body) {
      const a = sf.getLineAndCharacterOfPosition(n.getStart(sf)).line;
      const b = sf.getLineAndCharacterOfPosition(n.getEnd()).line;
      const nm = (n as ts.FunctionLikeDeclaration).name;
      out.push({ name: `${path.relative(ROOT, file)}:${a + 1} ${nm ? nm.getText(sf) : '(anonymous)'}`, lines: b - a + 1 });
    }
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return out;
}

const tsFiles = (dir: string): string[] => fs.readdirSync(dir).filter((f) => f.endsWith('.ts')).map((f) => path.join(dir, f));

test('the measure sees a long function (and a short arrow inside it)', () => {
  const body = Array.from({ length: 130 }, (_, i) => `  const x${i} = ${i};`).join('\n');
  const got = functionLengths('/x.ts', `function long() {\n${body}\n  const f = () => 1;\n}\n`);
  expect(got.find((g) => g.name.endsWith('long'))!.lines).toBe(133);
  expect(got.some((g) => g.lines === 1)).toBe(true);
});

test(`no function over ${MAX} lines in the file jobs (src/jobs) and the record I/O layer (src/io)`, () => {
  const files = [...tsFiles(path.join(ROOT, 'src', 'jobs')), ...tsFiles(path.join(ROOT, 'src', 'io'))];
  expect(files.length).toBeGreaterThan(8);
  const long = files.flatMap((f) => functionLengths(f)).filter((f) => f.lines > MAX);
  expect(long).toEqual([]);
});

test('the old input abstractions are gone: no JSONL parsing or format sniffing outside src/io', () => {
  for (const gone of ['src/pipeline/files.ts', 'src/pipeline/node-io.ts', 'src/formats/records.ts']) expect(fs.existsSync(path.join(ROOT, gone))).toBe(false);
  const offenders: string[] = [];
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) { if (p !== path.join(ROOT, 'src', 'io')) walk(p); continue; }
      if (!e.name.endsWith('.ts')) continue;
      const t = fs.readFileSync(p, 'utf8');
      if (/\bInputSet\b|\bopenInput\(|createGunzip|fzstd|'PAR1'|node:readline/.test(t)) offenders.push(path.relative(ROOT, p));
    }
  };
  walk(path.join(ROOT, 'src'));
  expect(offenders).toEqual([]);
});
