// A sharded run on a real job engine: a single-node Slurm on this machine (tests/slurm/slurm-up.sh:
// munged, slurmctld and slurmd on localhost), examples/slurm/score.sbatch submitted as a job array
// of 4 tasks over 2,400 records scored by a tiny llama2.c model on the CPU path. One task is killed
// with SIGKILL mid-run (after its first checkpoints, before it finishes) and requeued with
// `scontrol requeue`; it resumes its shard from the checkpoint. `concord merge` then must give the
// single-process output byte for byte (scored records and the errors file). Resubmitting the whole
// array afterwards skips every (complete) shard.
//
// Runs when slurm-wlm and munge are installed; CONCORD_REQUIRE_SLURM=1 (.ci/run sets it) makes
// their absence a failure instead of a skip.

import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { makeTinyModel } from './helpers/tiny-models.js';
import { scratchDir } from './helpers/scratch.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const BIN = path.join(ROOT, 'bin', 'concord.js');
const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const haveSlurm = ['slurmctld', 'slurmd', 'sbatch', 'scontrol', 'munged'].every(has);
const required = process.env.CONCORD_REQUIRE_SLURM === '1';

let tmp = '';
let slurmDir = '';
let env: NodeJS.ProcessEnv = {};
let jobId = '';
const N = 2400;

const WORDS = ['cat', 'dog', 'sun', 'rain', 'ball', 'tree', 'park', 'red', 'big', 'happy', 'Lily', 'played', 'with', 'the', 'little', 'girl'];
function record(i: number): string {
  if (i % 401 === 7) return '{"instruction": "broken'; // bad lines: the errors file must merge too
  const w = (n: number, s: number) => Array.from({ length: n }, (_, k) => WORDS[(i * 7 + k * s) % WORDS.length]).join(' ');
  return JSON.stringify({ id: i, instruction: `story ${w(2 + (i % 5), 3)}`, input: i % 3 === 0 ? w(2, 5) : '', output: w(3 + ((i * 11) % 13), 2) });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function sh(cmd: string, args: string[], extra: Record<string, string> = {}): string {
  const r = spawnSync(cmd, args, { env: { ...env, ...extra }, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.status}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** JobState of each array task of the job ('0' → 'RUNNING', …). */
function taskStates(): Map<string, string> {
  const out = sh('scontrol', ['show', 'job', jobId, '-o']);
  const m = new Map<string, string>();
  for (const line of out.split('\n')) {
    const task = /ArrayTaskId=(\S+)/.exec(line)?.[1];
    const state = /JobState=(\S+)/.exec(line)?.[1];
    if (task && state) m.set(task, state);
  }
  return m;
}

/** The concord process of one array task of our job (found by its Slurm environment). */
function taskPid(task: number): number | null {
  for (const p of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const cmd = fs.readFileSync(`/proc/${p}/cmdline`, 'utf8');
      if (!cmd.includes('concord.js')) continue;
      const e = fs.readFileSync(`/proc/${p}/environ`, 'utf8').split('\0');
      if (e.includes(`SLURM_ARRAY_JOB_ID=${jobId}`) && e.includes(`SLURM_ARRAY_TASK_ID=${task}`)) return Number(p);
    } catch { /* gone */ }
  }
  return null;
}

async function until<T>(what: string, f: () => T | null | undefined | false, timeoutMs: number, everyMs = 100): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}

describe.skipIf(!haveSlurm && !required)('Slurm job array: kill one task mid-run, requeue, merge', () => {
  beforeAll(() => {
    if (!haveSlurm) throw new Error('CONCORD_REQUIRE_SLURM=1 but slurm-wlm / munge are not installed (apt-get install slurm-wlm munge)');
    const built = path.join(ROOT, 'dist', 'src', 'cli', 'merge.js');
    if (!fs.existsSync(built) || fs.statSync(built).mtimeMs < fs.statSync(path.join(ROOT, 'src', 'cli', 'merge.ts')).mtimeMs) {
      const r = spawnSync(process.execPath, [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'], { cwd: ROOT, encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`build failed:\n${r.stdout}\n${r.stderr}`);
    }
    tmp = scratchDir('concord-slurm-');
    fs.writeFileSync(path.join(tmp, 'in.jsonl'), Array.from({ length: N }, (_, i) => record(i)).join('\n') + '\n');
    makeTinyModel('llama2c', path.join(tmp, 'model'), { dim: 16, hiddenDim: 32, nLayers: 1, nHeads: 2, nKvHeads: 2, maxSeqLen: 64 });
    slurmDir = path.join(tmp, 'slurm');
    const up = spawnSync(path.join(ROOT, 'tests', 'slurm', 'slurm-up.sh'), [slurmDir], { encoding: 'utf8' });
    if (up.status !== 0) throw new Error(`slurm-up.sh failed:\n${up.stdout}\n${up.stderr}`);
    env = { ...process.env, SLURM_CONF: path.join(slurmDir, 'slurm.conf') };
    delete env.CONCORD_TEST_MODEL_MODULE;
  });

  afterAll(() => {
    if (jobId) spawnSync('scancel', [jobId], { env });
    if (slurmDir) spawnSync(path.join(ROOT, 'tests', 'slurm', 'slurm-down.sh'), [slurmDir]);
  });

  test('4 array tasks over 2,400 records; SIGKILL + scontrol requeue of one; merged output = single-process output, byte for byte', async () => {
    const model = path.join(tmp, 'model', 'model.bin');
    // The TypeScript twin (slower than onnxruntime's CPU path) and small windows (the checkpoint's
    // in-order prefix moves window by window) leave time to kill a task mid-run.
    const scoreArgs = ['--model', model, '--device', 'cpu-twin', '--cosine', 'off', '--quiet', '--window', '16'];
    const input = path.join(tmp, 'in.jsonl');
    const outDir = path.join(tmp, 'out');

    // The reference: one process over the whole input (run alongside the array).
    const single = spawn(process.execPath, [BIN, 'score', input, '-o', path.join(tmp, 'single.jsonl'), ...scoreArgs], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let singleErr = '';
    single.stderr!.on('data', (d) => { singleErr += d; });
    const singleDone = new Promise<number | null>((res) => single.on('close', res));

    // The shipped example, as a user submits it (no GPUs here: --gres=none, one CPU per task).
    jobId = sh('sbatch', [
      '--parsable', '--gres=none', '--cpus-per-task=1', '--array=0-3', `--output=${path.join(tmp, 'task-%a.log')}`,
      path.join(ROOT, 'examples', 'slurm', 'score.sbatch'),
    ], {
      INPUT: input, OUT_DIR: outDir, CONCORD: `${process.execPath} ${BIN}`,
      CONCORD_ARGS: [...scoreArgs, '--checkpoint-every', '20'].join(' '),
    }).trim().split(';')[0];
    expect(jobId).toMatch(/^\d+$/);

    // Task 1: wait for its checkpoints, then SIGKILL it before it finishes.
    const progress = path.join(outDir, 'shard-1-of-4.jsonl.progress.json');
    const manifest = path.join(outDir, 'shard-1-of-4.manifest.json');
    const doneBefore = await until('task 1 to checkpoint', () => {
      if (!fs.existsSync(progress)) return null;
      try { const u = JSON.parse(fs.readFileSync(progress, 'utf8')).position.units as number; return u >= 40 ? u : null; } catch { return null; }
    }, 180_000, 50);
    const pid = await until('task 1 process', () => taskPid(1), 10_000, 20);
    process.kill(pid, 'SIGKILL');
    expect(fs.existsSync(manifest)).toBe(false); // killed mid-run: the shard is not complete
    expect(doneBefore).toBeLessThan(600);
    await until('task 1 to end after the kill', () => ['FAILED', 'CANCELLED', 'COMPLETED', 'NODE_FAIL'].includes(taskStates().get('1') ?? '') || null, 60_000, 200);
    expect(taskStates().get('1')).toBe('FAILED');

    // Requeue it (Slurm delays a requeued job's start by default; start it now). slurmd refuses to
    // relaunch a job id it killed moments ago ("already killed, do not launch"): give it a moment,
    // and requeue again if the relaunch was refused.
    const requeue = () => {
      sh('scontrol', ['requeue', `${jobId}_1`]);
      sh('scontrol', ['update', `jobid=${jobId}_1`, 'StartTime=now']);
    };
    await new Promise((r) => setTimeout(r, 2000));
    requeue();
    let requeues = 1, lastRequeue = Date.now();

    await until('all 4 tasks to complete', () => {
      const s = taskStates();
      const t1 = s.get('1');
      if ((t1 === 'FAILED' || t1 === 'PENDING') && Date.now() - lastRequeue > 15_000 && requeues < 4) {
        try { requeue(); } catch { /* not requeueable in this state yet */ }
        requeues++;
        lastRequeue = Date.now();
      }
      const bad = [...s].filter(([, st]) => st === 'FAILED' || st === 'CANCELLED');
      if (bad.length && !(bad.length === 1 && bad[0][0] === '1')) throw new Error(`tasks failed: ${JSON.stringify([...s])}`);
      return s.size === 4 && [...s.values()].every((st) => st === 'COMPLETED') ? s : null;
    }, 300_000, 500);
    const log1 = fs.readFileSync(path.join(tmp, 'task-1.log'), 'utf8');
    expect(log1).toContain('(resuming its checkpoint)');
    expect(log1).toMatch(/resuming .*shard-1-of-4\.jsonl: \d+ records already done/);

    expect(await singleDone, singleErr).toBe(0);
    const merge = spawnSync(process.execPath, [BIN, 'merge', outDir, '-o', path.join(tmp, 'merged.jsonl')], { env, encoding: 'utf8' });
    expect(merge.status, merge.stderr).toBe(0);
    const a = fs.readFileSync(path.join(tmp, 'single.jsonl'));
    const b = fs.readFileSync(path.join(tmp, 'merged.jsonl'));
    expect(a.length).toBeGreaterThan(0);
    expect(b.equals(a)).toBe(true);
    expect(a.toString().trim().split('\n')).toHaveLength(N - 6); // 6 bad lines (i % 401 === 7)
    expect(fs.readFileSync(path.join(tmp, 'merged.jsonl.errors.jsonl')).equals(fs.readFileSync(path.join(tmp, 'single.jsonl.errors.jsonl')))).toBe(true);

    // Resubmitting the whole array is safe: every task finds its shard complete and skips it.
    const shardBytes = fs.readFileSync(path.join(outDir, 'shard-0-of-4.jsonl'));
    jobId = sh('sbatch', [
      '--parsable', '--gres=none', '--cpus-per-task=1', '--array=0-3', `--output=${path.join(tmp, 'again-%a.log')}`,
      path.join(ROOT, 'examples', 'slurm', 'score.sbatch'),
    ], { INPUT: input, OUT_DIR: outDir, CONCORD: `${process.execPath} ${BIN}`, CONCORD_ARGS: scoreArgs.join(' ') }).trim().split(';')[0];
    await until('the resubmitted array to complete', () => {
      const st = taskStates();
      if ([...st.values()].some((x) => x === 'FAILED' || x === 'CANCELLED')) throw new Error(`resubmitted tasks failed: ${JSON.stringify([...st])}`);
      return st.size === 4 && [...st.values()].every((x) => x === 'COMPLETED') ? st : null;
    }, 120_000, 300);
    for (let i = 0; i < 4; i++) expect(fs.readFileSync(path.join(tmp, `again-${i}.log`), 'utf8')).toMatch(new RegExp(`shard ${i}/4 .* is complete .*; skipping`));
    expect(fs.readFileSync(path.join(outDir, 'shard-0-of-4.jsonl')).equals(shardBytes)).toBe(true);
  });
});
