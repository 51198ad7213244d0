// How a scorer is composed from its parts: models (loaded, or by name through a loader), the
// reverse model, the sentence encoder, the chat format, the verify twins, and the identity a resumed
// run must match. Browser-safe: it reaches no loader of its own. The loaders are passed in by the
// caller — src/pipeline/create.ts (Node: createScorer, the composition root, loads by name and
// path) or src/pipeline/index.ts's browserScorer (models and encoder given as objects).

import { nodeBuiltin } from '../env.js';
import { UsageError } from '../errors.js';
import type { DeviceChoice } from '../gpu/device.js';
import type { GpuRuntime } from '../gpu/runtime.js';
import type { LanguageModel } from '../models/lm.js';
import type { LoadProgress } from '../models/weight-upload.js';
import { createScorerFromModels, type CosineMode, type Scorer, type ScorerOptions, type TextEmbedder } from './scorer.js';
import { resolveChatTemplate, type ChatFormat } from './chat-template.js';

export interface CreateScorerOptions extends Omit<ScorerOptions, 'model' | 'reverseModel' | 'verify' | 'cosine' | 'embedder' | 'chat'> {
  /** A loaded model, or a name/path for loadModel ('default' = stories15M). */
  model: LanguageModel | string;
  /** A separate y → x model (loaded or by name); else the forward model scores both directions. */
  reverseModel?: LanguageModel | string | null;
  /** For models given by name (default 'auto'; a GpuRuntime shares that device). */
  device?: DeviceChoice | GpuRuntime;
  /**
   * 'auto' (default): the sentence encoder when it can be had and the model runs on WebGPU (or
   * `embedModel` is given), else the LM's mean hidden states; 'embed' demands the encoder; 'lm'
   * the hidden states; 'off' no cosine.
   */
  cosine?: 'auto' | CosineMode;
  /** The sentence encoder: loaded, or a name/path for loadEmbedder (default 'minilm'). */
  embedModel?: TextEmbedder | string;
  /**
   * The model's own Jinja chat template ('auto': chat_template.jinja or tokenizer_config.json's
   * chat_template, when it has one), 'none' (the default unless `system` is given), a .jinja
   * file, or a format already resolved (chatFormatFromTemplate).
   */
  chatTemplate?: string | ChatFormat | null;
  /** A system prompt for the chat template (implies chatTemplate 'auto'). */
  system?: string;
  /** Branch, tag or commit of a model id resolved in the local Hugging Face cache (the forward model, by name). */
  revision?: string;
  /** Models loaded by name onto WebGPU: called as their tensors stream to the GPU (the CLI prints it on a terminal). */
  onLoadProgress?: (p: LoadProgress) => void;
  /**
   * Re-score sampled batches on the CPU twin. With models given by name, the twins are loaded
   * on 'cpu-twin' (their weights rounded through f16 where the GPU model stores f16); with loaded
   * models, pass the twins in `model`/`reverseModel`.
   */
  verify?: ScorerOptions['verify'] | { batches: number; tol?: number } | null;
  /** What the set-up chose and why (device, cosine source), one line each. */
  log?: (line: string) => void;
}

/** A scorer with the models it loaded and what identifies its scores. */
export interface ConfiguredScorer extends Scorer {
  /** The forward model, then the reverse model when there is one. */
  readonly models: LanguageModel[];
  readonly device: { backend: string; name: string; reason: string | null };
  /** Everything that changes the scores (models, templates, passes, lengths, fields, cosine, entropy; --signals add theirs), for resume checks. */
  readonly identity: Record<string, unknown>;
  /** Free what createScorer loaded (models given as objects are left to their owner). */
  dispose(): void;
}

/** Loads a model by name or path (src/models loadModel, or a test's stand-in). */
export type ModelLoadFn = (spec: string, o: { device: DeviceChoice | GpuRuntime; f16?: boolean; revision?: string; onProgress?: (p: LoadProgress) => void }) => Promise<LanguageModel>;

/** A sentence encoder as the scorer uses it (src/encoder's Embedder fits). */
export interface LoadedEncoder { embed(texts: string[]): Promise<Float32Array[]>; readonly device: string; readonly deviceName: string; dispose(): void }
/** Loads a sentence encoder by name or path onto a GPU runtime or the CPU (src/encoder loadEmbedder). */
export type EncoderLoadFn = (spec: string, o: { device: GpuRuntime | 'cpu' }) => Promise<LoadedEncoder>;

/** How models and the encoder given by name are loaded; absent: they must be given as objects. */
export interface ScorerLoaders { loadModel?: ModelLoadFn; loadEmbedder?: EncoderLoadFn }

const needLoader = (what: string, spec: string): never => {
  throw new UsageError(`createScorer: ${what} '${spec}' is given by name, and this build has no loader for it (in a browser, pass a loaded object; in Node, use createScorer from 'concord-align')`);
};

const describe = (m: LanguageModel, label: string): string => {
  const reason = m.deviceReason;
  return `concord: ${label} ${m.config.name} on ${m.deviceName}${reason ? ` — ${reason}` : ''}`;
};

async function chooseEmbedder(o: CreateScorerOptions, lm: LanguageModel, loaders: ScorerLoaders): Promise<{ cosine: CosineMode; embedder: TextEmbedder | null; note?: string }> {
  const mode = o.cosine ?? 'auto';
  if (mode === 'off' || mode === 'lm') return { cosine: mode, embedder: null };
  if (o.embedModel && typeof o.embedModel !== 'string') return { cosine: 'embed', embedder: o.embedModel };
  const spec = o.embedModel;
  const name = spec ?? 'minilm';
  try {
    const loadEmbedder = loaders.loadEmbedder ?? ((s: string) => needLoader('the encoder', s));
    const rt = lm.runtime ?? null;
    const enc = await loadEmbedder(name, { device: rt ?? 'cpu' });
    // auto on the CPU path: the encoder on onnxruntime adds ~0.4× the LM's time (data/sample-pairs,
    // stories15M), but its CPU twin several times the LM's: with the twin, auto takes the LM's hidden states.
    if (mode === 'auto' && !spec && enc.device === 'cpu' && /twin/i.test(enc.deviceName)) {
      enc.dispose();
      return { cosine: 'lm', embedder: null, note: "concord: cosine from the LM's mean hidden states (the encoder would run on its CPU twin, several times slower than the LM; --cosine embed to use it anyway)" };
    }
    const path = nodeBuiltin<typeof import('node:path')>('path');
    const label = name.toLowerCase() === 'minilm' ? 'all-MiniLM-L6-v2' : path.basename(name.replace(/[\\/]+$/, ''));
    return { cosine: 'embed', embedder: { embed: (t) => enc.embed(t), name: label, dispose: () => enc.dispose() } };
  } catch (e) {
    if (mode === 'embed' || spec) throw new UsageError(`--embed-model ${name}: ${(e as Error).message}`);
    return { cosine: 'lm', embedder: null, note: `concord: no sentence encoder (${(e as Error).message}); cosine from the LM's mean hidden states` };
  }
}

/**
 * Build a scorer from `o` with these loaders: models by name, path or object, the reverse model,
 * the encoder, the chat format, the verify twins — and the identity a resumed run must match.
 * Callers go through createScorer (Node, src/pipeline/create.ts) or browserScorer (index.ts).
 */
export async function composeScorer(o: CreateScorerOptions, loaders: ScorerLoaders): Promise<ConfiguredScorer> {
  const say = o.log ?? (() => {});
  const device = o.device ?? 'auto';
  const owned: LanguageModel[] = [];
  const load = async (m: LanguageModel | string, on: DeviceChoice | GpuRuntime, f16?: boolean): Promise<LanguageModel> => {
    if (typeof m !== 'string') return m;
    const loadModel = loaders.loadModel ?? ((s: string) => needLoader('the model', s));
    const lm = await loadModel(m, { device: on, f16, revision: m === o.model ? o.revision : undefined, onProgress: o.onLoadProgress });
    owned.push(lm);
    return lm;
  };
  const model = await load(o.model, device);
  say(describe(model, 'model'));
  // The reverse model shares the forward model's device (one GPU runtime per process).
  const rt = model.runtime ?? null;
  const reverseModel = o.reverseModel ? await load(o.reverseModel, rt ?? device) : null;
  if (reverseModel) say(describe(reverseModel, 'reverse model'));
  let chat: ChatFormat | null = null;
  if (o.chatTemplate && typeof o.chatTemplate !== 'string') chat = o.chatTemplate;
  else if (o.chatTemplate !== undefined || o.system !== undefined) {
    const r = resolveChatTemplate(o.chatTemplate ?? (o.system !== undefined ? 'auto' : 'none'), model.tokenizer, { model: model.config.name, system: o.system });
    say(`concord: ${r.note}`);
    chat = r.format;
  }
  const cos = await chooseEmbedder(o, model, loaders);
  if (cos.note) say(cos.note);

  let verify: ScorerOptions['verify'] = null;
  if (o.verify && o.verify.batches > 0) {
    if ('model' in o.verify) verify = o.verify;
    else {
      if (typeof o.model !== 'string') throw new UsageError('createScorer: verify with a loaded model needs verify.model (its CPU twin)');
      // f16 GPU weights are checked against a twin with the same f16-rounded weights, so the f32
      // tolerance measures the kernels, not the storage format.
      const f16 = model.f16 ?? false;
      verify = {
        ...o.verify,
        model: await load(o.model, 'cpu-twin', f16),
        reverseModel: typeof o.reverseModel === 'string' ? await load(o.reverseModel, 'cpu-twin', f16) : undefined,
      };
    }
  }
  if (o.injectDeviation) say(`concord: injectDeviation=${o.injectDeviation}: perturbing every primary log-prob (test hook)`);

  const scorer = createScorerFromModels({ ...o, model, reverseModel, verify, chat, cosine: cos.cosine, embedder: cos.embedder });
  const identity = {
    model: [typeof o.model === 'string' ? o.model : model.config.name, model.config.name, ...(o.revision ? [o.revision] : [])],
    reverse: reverseModel ? [typeof o.reverseModel === 'string' ? o.reverseModel : reverseModel.config.name, reverseModel.config.name] : null,
    templates: scorer.templates, passes: scorer.passes, maxLen: scorer.maxLen, overlong: o.overlong ?? 'truncate', fields: o.fields ?? {},
    cosine: scorer.cosineSource,
    // The entropy columns (y_entropy, x_entropy, upd) are numbers or null by this switch.
    entropy: o.entropy ?? true,
    // A chat format that strips x and y changes the tokens (its template strings alone may not show it).
    strip: chat?.stripContent ?? null,
  };
  const reason = model.deviceReason ?? null;
  return Object.assign(scorer, {
    models: [model, ...(reverseModel ? [reverseModel] : [])],
    device: { backend: model.backend, name: model.deviceName, reason },
    identity,
    dispose() {
      for (const m of owned) m.dispose();
      cos.embedder?.dispose?.();
    },
  });
}
