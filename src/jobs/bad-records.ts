// How the file jobs report bad records: a `file:line: reason` line on stderr for the first few (held
// back until some record parses, so a file that is not JSONL at all gets one verdict instead of a
// line per record), a JSON line each in the errors file, and a cap on how many a job accepts
// (CONCORD_MAX_ERRORS, default 100000): past it the job stops with exit 3 rather than write an
// unbounded errors file from a stream of garbage.

import { settings } from '../env.js';
import { InputError } from '../errors.js';

/** --strict and a bad record (exit 3). */
export class StrictError extends InputError {}

/** Too many bad records (CONCORD_MAX_ERRORS): the job stops (exit 3). */
export class TooManyErrors extends InputError {}

/** The errors file of a job writing `output`, unless one is named: `<output>.errors.jsonl`. */
export const errorsPathFor = (output: string): string => `${output}.errors.jsonl`;

/** A line of an errors file: loc, line, message, error and the record. */
export function errorLine(r: { loc: string; error?: string; record?: unknown }): string {
  const line = Number(/:(\d+)$/.exec(r.loc)?.[1] ?? NaN);
  const o: Record<string, unknown> = { loc: r.loc, message: `${r.loc}: ${r.error}`, error: r.error };
  if (Number.isFinite(line)) o.line = line;
  if (r.record !== undefined) o.record = r.record;
  return JSON.stringify(o);
}

export class BadRecords {
  /** Bad records reported in this run. */
  count = 0;
  private held: string[] | null;
  private readonly max = settings.maxErrors;

  constructor(
    private readonly log: (l: string) => void,
    private readonly errorsPath: string,
    private readonly maxLines = 10,
    /** Hold messages back until a record parses (a fresh start; not when resuming). */
    holdBack = true,
    /** Bad records of an earlier (resumed) run, counted towards the cap. */
    private readonly before = 0,
  ) {
    this.held = holdBack ? [] : null;
  }

  say(l: string): void {
    if (this.held) this.held.push(l);
    else this.log(l);
  }

  /** A record parsed: print what was held back. */
  release(): void {
    if (!this.held) return;
    const h = this.held;
    this.held = null;
    for (const l of h) this.log(l);
  }

  /** One bad record: counted (TooManyErrors past the cap), its message printed while under maxLines. */
  report(msg: string): void {
    if (this.before + this.count >= this.max) {
      throw new TooManyErrors(`${this.errorsPath}: more than ${this.max} bad input records (the last: ${msg}); stopping (CONCORD_MAX_ERRORS raises the limit)`);
    }
    if (this.count < this.maxLines) this.say(msg);
    else if (this.count === this.maxLines) this.say(`... more errors in ${this.errorsPath}`);
    this.count++;
  }
}
