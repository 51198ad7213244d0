// The errors a user can cause, each with the exit code the CLI returns for it (README "Exit
// codes"). Library code throws these; src/cli/common.ts maps them to exit codes in one place.
// Anything else is an unexpected failure (exit 1).

export const EXIT = {
  ok: 0,
  /** an unexpected failure (a bug, a full disk, a lost device) */
  failure: 1,
  /** bad flags or options: an unknown flag, a bad value, a missing argument, a bad template or filter rule */
  usage: 2,
  /** input that stops the run: --strict at a bad record, an unreadable input file or JSON array */
  inputErrors: 3,
  /** --verify above tolerance, or a kernel benchmark failing validation */
  verifyFailed: 4,
  /** no GPU where one was required (--device webgpu, CONCORD_REQUIRE_GPU=1) */
  noGpu: 5,
  /** --resume impossible: the input or the scoring options changed since the checkpoint */
  resumeMismatch: 6,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** A user-facing error: its message is one line that says what to change. */
export class ConcordError extends Error {
  readonly exitCode: ExitCode = EXIT.failure;
  /** Whether the CLI should point at `--help` (a flag or option was wrong). */
  readonly pointsAtHelp: boolean = false;
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** Bad flags or options (exit 2). */
export class UsageError extends ConcordError {
  override readonly exitCode = EXIT.usage;
  override readonly pointsAtHelp: boolean = true;
}

/** Input that stops the run (exit 3). */
export class InputError extends ConcordError {
  override readonly exitCode = EXIT.inputErrors;
}

/** No WebGPU adapter where one was required (exit 5). */
export class GpuUnavailableError extends ConcordError {
  override readonly exitCode = EXIT.noGpu;
}

/** --resume cannot continue (exit 6). */
export class ResumeError extends ConcordError {
  override readonly exitCode = EXIT.resumeMismatch;
}

/**
 * A model's config.json, tokenizer or template files that cannot be taken as they are (exit 3):
 * a missing or invalid field, an unsupported architecture, a tokenizer that does not build. The
 * message names the file.
 */
export class ModelConfigError extends InputError {}

/**
 * A model checkpoint that cannot be loaded as it is (exit 3): a shard listed in the index that is
 * missing, a truncated shard, a dtype the loader cannot read, a tensor whose shape does not match
 * config.json. The message names the file and, where there is one, the tensor.
 */
export class ModelFileError extends InputError {
  constructor(message: string, readonly file: string, readonly tensor?: string) {
    super(message);
  }
}
