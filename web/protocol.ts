// Messages between the page (main.ts) and the scoring worker (worker.ts).

import type { Device, Proposal, ProposeSettings, ScoredPair, ScoreProgress } from './engine.js';

/** Where the model comes from. */
export type ModelSpec =
  /** A llama2.c checkpoint + tokenizer.bin served at these URLs (the default stories15M, or ?model=&tokenizer=). */
  | { kind: 'url'; name: string; model: string; tokenizer: string }
  /** The user's llama2.c files. */
  | { kind: 'llama2c-files'; name: string; model: File; tokenizer: File }
  /** The user's Hugging Face folder: [path within the folder, file]. */
  | { kind: 'hf-files'; name: string; files: [string, File][] }
  /** A model by Hub id ('Org/Name' or 'Org/Name@revision') from an endpoint (the Hub or a mirror), via web/hub.ts. */
  | { kind: 'hub'; name: string; spec: string; endpoint: string };

/** The sentence encoder for the cosine (the CLI's --cosine auto): an ONNX folder served at this URL
 *  (model_q4.onnx + its external data, tokenizer.json, tokenizer_config.json, config.json). */
export interface EncoderSpec { name: string; base: string }

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
  | { type: 'score'; run: number; model: ModelSpec; encoder: EncoderSpec | null; device: Device; records: unknown[] }
  /** "propose instructions": k candidates for one response (a record or a bare text), scored */
  | { type: 'propose'; run: number; model: ModelSpec; encoder: EncoderSpec | null; device: Device; input: unknown; settings: ProposeSettings };

export type FromWorker =
  | { type: 'probe'; probe: GpuProbe }
  | { type: 'status'; run: number; text: string }
  | { type: 'progress'; run: number; progress: ScoreProgress; total: number }
  | { type: 'partial'; run: number; pairs: ScoredPair[] }
  | { type: 'done'; run: number; pairs: ScoredPair[]; info: RunInfo }
  | { type: 'proposed'; run: number; proposal: Proposal; info: ProposeInfo }
  | { type: 'error'; run: number; message: string };

export interface ProposeInfo {
  model: string;
  encoder: string | null;
  deviceName: string;
  backend: Device;
  loadSeconds: number;
}

export interface RunInfo {
  model: string;
  /** the sentence encoder and its device, or null (cosine off) */
  encoder: string | null;
  deviceName: string;
  backend: Device;
  seconds: number;
  loadSeconds: number;
  pairsPerSecond: number;
  tokens: number;
}
