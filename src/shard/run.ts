// One shard of a sharded `concord score` run: where it writes, whether it is already done
// (skip), whether it was interrupted (resume from its checkpoint), and its manifest once finished.

import * as fs from 'node:fs';
import * as path from 'node:path';
import type { RecordInput, RecordRange } from '../io/inputs.js';
import { scoreTarget } from '../io/record-writer.js';
import { ResumeError, progressPathFor } from '../jobs/checkpoint.js';
import { writeFileAtomic } from '../io/writers.js';
import type { ScoreSummary } from '../jobs/score.js';
import {
  ShardError, digestFile, manifestNames, manifestStale, readManifest, runId, shardPaths,
  type ManifestInput, type ShardManifest, type ShardSpec,
} from './index.js';

export interface ShardRunPlan {
  output: string;
  errors: string;
  resume: boolean;
  range: RecordRange;
}

export class ShardRun {
  private range: RecordRange | null = null;
  private id = '';
  private inputsM: ManifestInput[] = [];
  private paths: ReturnType<typeof shardPaths>;
  private optionsHash = '';

  constructor(
    readonly o: {
      spec: ShardSpec; outDir: string; format: 'jsonl' | 'parquet'; inputs: RecordInput; inputSpec: string; split?: string;
      /** The score arguments without the shard flags. */
      argv: string[]; log: (s: string) => void;
    },
  ) {
    this.paths = shardPaths(o.outDir, o.spec.i, o.spec.n, o.format);
  }

  get manifestPath(): string { return this.paths.manifest; }

  /** Decide what this shard does: null = already complete (skip), else where to score and whether to resume. */
  async plan(optionsHash: string): Promise<ShardRunPlan | null> {
    const { spec, inputs, log } = this.o;
    this.optionsHash = optionsHash;
    const counts = await inputs.recordCounts();
    const total = counts.reduce((s, n) => s + n, 0);
    this.range = { start: Math.floor((spec.i * total) / spec.n), end: Math.floor(((spec.i + 1) * total) / spec.n) };
    this.inputsM = inputs.fingerprints().map((f, k) => ({ ...f, name: inputs.files[k].name, format: inputs.files[k].format, records: counts[k] }));
    this.id = runId(this.inputsM, optionsHash, spec.n, this.o.format);
    fs.mkdirSync(this.o.outDir, { recursive: true });
    const label = `shard ${spec.i}/${spec.n} (records ${this.range.start}..${this.range.end - 1} of ${total}; ${spec.source})`;
    for (const f of manifestNames(this.o.outDir)) {
      if (f === path.basename(this.paths.manifest)) continue; // this shard's own: below
      const other = readManifest(path.join(this.o.outDir, f));
      if (other.run_id !== this.id) {
        throw new ResumeError(`${path.join(this.o.outDir, f)} belongs to another run (run ${other.run_id}, this one ${this.id}: other inputs, options or n); use another --out-dir, or delete ${this.o.outDir}'s shard files to redo the run`);
      }
    }
    if (fs.existsSync(this.paths.manifest)) {
      const m = readManifest(this.paths.manifest);
      const why = manifestStale(m, this.id, this.o.outDir, this.range);
      if (!why) {
        log(`concord: ${label} is complete (${this.paths.manifest}); skipping`);
        return null;
      }
      if (m.run_id !== this.id) {
        throw new ResumeError(`${this.paths.manifest}: ${why} (run ${m.run_id}, this one ${this.id}); use another --out-dir, or delete ${this.o.outDir}'s shard files to redo the run`);
      }
      log(`concord: ${this.paths.manifest}: ${why}; scoring the shard again`);
      fs.rmSync(this.paths.manifest, { force: true });
    }
    const target = scoreTarget(this.paths.output, this.paths.errors);
    const resume = fs.existsSync(progressPathFor(target.scoreTo));
    log(`concord: ${label} → ${this.paths.output}${resume ? ' (resuming its checkpoint)' : ''}`);
    return { output: this.paths.output, errors: this.paths.errors, resume, range: this.range };
  }

  /** After the shard's output is committed: its manifest, atomically. */
  finish(summary: ScoreSummary): ShardManifest {
    const r = this.range!;
    const c = summary.counts;
    if (c.records !== r.end - r.start) {
      throw new ShardError(`shard ${this.o.spec.i}/${this.o.spec.n}: ${c.records} records done but its range holds ${r.end - r.start} (the input holds fewer records than were counted: a file changed while the shard ran, or a Parquet footer's row count disagrees with its data)`);
    }
    const m: ShardManifest = {
      concord_shard_manifest: 1,
      run_id: this.id,
      inputs: this.inputsM,
      input_spec: this.o.inputSpec,
      split: this.o.split ?? null,
      options_hash: this.optionsHash,
      total_records: this.inputsM.reduce((s, f) => s + f.records, 0),
      shard: { i: this.o.spec.i, n: this.o.spec.n, start: r.start, end: r.end, source: this.o.spec.source },
      counts: { records: c.records, scored: c.scored, errors: c.errors },
      output: { ...digestFile(this.paths.output), format: this.o.format },
      errors: fs.existsSync(this.paths.errors) ? digestFile(this.paths.errors) : null,
      argv: this.o.argv,
      finished_at: new Date().toISOString(),
    };
    writeFileAtomic(this.paths.manifest, JSON.stringify(m, null, 2) + '\n');
    return m;
  }
}

export const defaultShardFormat = (inputs: RecordInput): 'jsonl' | 'parquet' =>
  inputs.files.every((f) => f.format === 'parquet') ? 'parquet' : 'jsonl';
