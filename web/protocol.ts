// Messages between the page (main.ts) and the scoring worker (worker.ts).

import type { Device, ScoredPair, ScoreProgress } from './engine.js';

/** Where the model comes from. */
export type ModelSpec =
  /** A llama2.c checkpoint + tokenizer.bin served at these URLs (the default stories15M, or ?model=&tokenizer=). */
  | { kind: 'url'; name: string; model: string; tokenizer: string }
  /** The user's llama2.c files. */
  | { kind: 'llama2c-files'; name: string; model: File; tokenizer: File }
  /** The user's Hugging Face folder: [path within the folder, file]. */
  | { kind: 'hf-files'; name: string; files: [string, File][] };

export interface GpuProbe {
  ok: boolean;
  /** adapter description, e.g. 'swiftshader (google)' */
  adapter?: string;
  software?: boolean;
  features?: string[];
  error?: string;
}

export type ToWorker =
  | { type: 'probe' }
  | { type: 'score'; run: number; model: ModelSpec; device: Device; records: unknown[] };

export type FromWorker =
  | { type: 'probe'; probe: GpuProbe }
  | { type: 'status'; run: number; text: string }
  | { type: 'progress'; run: number; progress: ScoreProgress; total: number }
  | { type: 'partial'; run: number; pairs: ScoredPair[] }
  | { type: 'done'; run: number; pairs: ScoredPair[]; info: RunInfo }
  | { type: 'error'; run: number; message: string };

export interface RunInfo {
  model: string;
  deviceName: string;
  backend: Device;
  seconds: number;
  loadSeconds: number;
  pairsPerSecond: number;
  tokens: number;
}
