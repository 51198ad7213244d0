// The terminal progress reporter of the file jobs: a bar with pairs/s and ETA on a TTY, plain lines
// every 10 s when stderr is a pipe or a file, nothing with --quiet.

export interface ProgressState {
  done: number;
  errors: number;
  tokens: number;
  elapsedMs: number;
}

export function formatDuration(s: number): string {
  if (!Number.isFinite(s)) return '?';
  if (s < 60) return `${Math.round(s)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/**
 * A progress bar with pairs/s and ETA on a TTY (redrawn at most 10×/s), plain lines every
 * `intervalMs` (default 10 s) when stderr is a pipe or file; nothing with quiet.
 */
export class ProgressReporter {
  private lastDraw = 0;
  private drawn = false;
  private readonly tty: boolean;

  constructor(
    private readonly o: { total: number | null; offset?: number; quiet?: boolean; label?: string; stream?: NodeJS.WriteStream; intervalMs?: number },
  ) {
    this.tty = !!(o.stream ?? process.stderr).isTTY;
  }

  private line(p: ProgressState): string {
    const s = p.elapsedMs / 1000;
    const rate = s > 0 ? p.done / s : 0;
    const done = p.done + (this.o.offset ?? 0);
    const total = this.o.total;
    const eta = total !== null && rate > 0 ? formatDuration((total - done) / rate) : '?';
    const tok = s > 0 ? p.tokens / s : 0;
    const err = p.errors ? `  ${p.errors} errors` : '';
    if (total !== null && this.tty) {
      const w = 24, f = Math.min(w, Math.round((done / Math.max(1, total)) * w));
      return `${this.o.label ?? 'scoring'} [${'#'.repeat(f)}${'.'.repeat(w - f)}] ${done}/${total}  ${rate.toFixed(1)} pairs/s  ${Math.round(tok)} tok/s  ETA ${eta}${err}`;
    }
    return `${this.o.label ?? 'scoring'}: ${done}${total !== null ? `/${total}` : ''} pairs  ${rate.toFixed(1)} pairs/s  ${Math.round(tok)} tok/s  ETA ${eta}${err}`;
  }

  update(p: ProgressState): void {
    if (this.o.quiet) return;
    const now = Date.now();
    const stream = this.o.stream ?? process.stderr;
    if (this.tty) {
      if (now - this.lastDraw < 100) return;
      stream.write(`\r\x1b[2K${this.line(p)}`);
      this.drawn = true;
    } else {
      if (now - this.lastDraw < (this.o.intervalMs ?? 10_000)) return;
      if (this.lastDraw === 0) { this.lastDraw = now; return; } // first line after one interval
      stream.write(this.line(p) + '\n');
    }
    this.lastDraw = now;
  }

  end(p: ProgressState): void {
    if (this.o.quiet) return;
    const stream = this.o.stream ?? process.stderr;
    if (this.tty) stream.write(`\r\x1b[2K${this.line(p)}\n`);
    else if (this.drawn || p.elapsedMs > (this.o.intervalMs ?? 10_000)) stream.write(this.line(p) + '\n');
  }
}
