// `npm run gpu:rehearse [-- --full]`: the GPU machine's run, here. Copies the bundle (.gpu) alone
// into an empty temp folder and runs `bash .gpu/run.sh --short` there under `env -i`: no
// node_modules, no project sources, and a PATH of /usr/bin + /usr/sbin links WITHOUT node, npm, npx
// and xz (so run.sh's own Node and Python's lzma path are what runs), on Mesa lavapipe
// (VK_DRIVER_FILES / VK_ICD_FILENAMES), with Debian's python3-torch (/usr/bin/python3) standing in
// for the GPU machine's PyTorch; where transformers is absent the peer script uses its torch
// fallback forward and says so. Exit code: run.sh's.

import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Mesa lavapipe's ICD file: lvp_icd.x86_64.json (Mesa's name) or lvp_icd.json (Debian's backports package). */
export const LAVAPIPE_ICD = ['/usr/share/vulkan/icd.d/lvp_icd.x86_64.json', '/usr/share/vulkan/icd.d/lvp_icd.json'].find((p) => existsSync(p)) ?? '/usr/share/vulkan/icd.d/lvp_icd.x86_64.json';
const HIDDEN = new Set(['node', 'nodejs', 'npm', 'npx', 'corepack', 'xz', 'unxz', 'xzcat', 'lzma', 'unlzma', 'lzcat']);

export interface RehearsalResult { code: number; dir: string; out: string; log: string; report: Record<string, unknown> | null }

/** A folder of links to /usr/bin and /usr/sbin tools, minus Node and xz. */
function sandboxPath(dir: string): string {
  const bin = join(dir, 'sandbox-bin');
  mkdirSync(bin, { recursive: true });
  for (const d of ['/usr/sbin', '/usr/bin']) {
    for (const f of readdirSync(d)) {
      if (HIDDEN.has(f) || existsSync(join(bin, f))) continue;
      try { symlinkSync(join(d, f), join(bin, f)); } catch { /* races with dpkg: skip */ }
    }
  }
  return bin;
}

export function rehearse(bundle: string, opts: { short?: boolean; extraEnv?: Record<string, string>; timeoutMs?: number } = {}): RehearsalResult {
  if (!existsSync(join(bundle, 'run.sh'))) throw new Error(`${bundle}/run.sh not found: run npm run gpu:bundle first`);
  if (!existsSync(LAVAPIPE_ICD)) throw new Error(`${LAVAPIPE_ICD} not found: the rehearsal runs on Mesa lavapipe (apt-get install mesa-vulkan-drivers)`);
  if (!existsSync('/usr/bin/python3')) throw new Error('/usr/bin/python3 not found (apt-get install python3-torch)');
  const dir = mkdtempSync(join(tmpdir(), 'concord-gpu-rehearsal-'));
  cpSync(bundle, join(dir, '.gpu'), { recursive: true });
  const out = join(dir, 'out');
  const env: Record<string, string> = {
    PATH: sandboxPath(dir), HOME: dir, TMPDIR: dir, OUT: out, LANG: 'C.UTF-8',
    VK_DRIVER_FILES: LAVAPIPE_ICD, VK_ICD_FILENAMES: LAVAPIPE_ICD,
    CONCORD_PYTHON: '/usr/bin/python3',
    // Mesa's on-disk shader cache is the stand-in driver's, not the bundle's: keep the user's, so
    // lavapipe does not recompile every WGSL pipeline with LLVM on each rehearsal (tens of seconds
    // each on a loaded 2-core machine). The GPU machine's driver has its own cache.
    XDG_CACHE_HOME: process.env.XDG_CACHE_HOME ?? join(process.env.HOME ?? '/root', '.cache'),
    ...opts.extraEnv,
  };
  const args = ['-i', ...Object.entries(env).map(([k, v]) => `${k}=${v}`), 'bash', join(dir, '.gpu', 'run.sh'), ...(opts.short === false ? [] : ['--short'])];
  console.error(`gpu:rehearse: env -i … bash ${join(dir, '.gpu', 'run.sh')}${opts.short === false ? '' : ' --short'} (in ${dir})`);
  const r = spawnSync('env', args, { cwd: dir, stdio: ['ignore', 'inherit', 'inherit'], timeout: opts.timeoutMs });
  const code = r.status ?? 1;
  const reports = existsSync(out) ? readdirSync(out).filter((f) => /^gpu-.*\.json$/.test(f)) : [];
  const report = reports.length ? JSON.parse(readFileSync(join(out, reports[0]), 'utf8')) as Record<string, unknown> : null;
  const log = existsSync(join(out, 'log')) ? readFileSync(join(out, 'log'), 'utf8') : '';
  return { code, dir, out, log, report };
}

const isMain = process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1];
if (isMain) {
  let root = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(root, 'package.json'))) root = dirname(root);
  const r = rehearse(join(root, '.gpu'), { short: !process.argv.includes('--full') });
  console.error(`gpu:rehearse: run.sh exited ${r.code}; results in ${r.out}${r.report ? `; every row valid: ${r.report.allValid}` : '; no report written'}`);
  process.exit(r.code);
}
