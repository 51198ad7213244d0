// The composition root (Node): the one place that builds a scorer's models and encoder by name or
// path. Its imports of the loaders are static, so the import graph shows what a scorer is made of:
//
//   import { createScorer } from 'concord-align';   (src/index.ts re-exports this module's createScorer)
//   const scorer = await createScorer({ model: 'default', device: 'auto', onProgress: (p) => ... });
//   for await (const r of scorer.score(pairs)) console.log(r.index, r.scores ?? r.error);
//
// `pairs` is any sync or async iterable of records (Alpaca objects, {messages}, {conversations});
// results come back in input order, one per record, with `scores` or a one-line `error`. Call
// score() once at a time per scorer. A browser builds from loaded objects with browserScorer
// (src/pipeline/index.ts), which does not reach these Node-only loaders.

import { nodeBuiltin, settings } from '../env.js';
import { loadEmbedder } from '../encoder/index.js';
import { loadModel } from '../models/index.js';
import { composeScorer, type ConfiguredScorer, type CreateScorerOptions, type ModelLoadFn, type ScorerLoaders } from './compose.js';

/** The CONCORD_TEST_MODEL_MODULE hook: a module whose loadModel(spec, {device}) stands in for src/models (tests). */
async function testModelLoader(file: string): Promise<ModelLoadFn> {
  const url = nodeBuiltin<typeof import('node:url')>('url');
  const path = nodeBuiltin<typeof import('node:path')>('path');
  // A file named at run time: the one import that cannot be static.
  return ((await import(/* @vite-ignore */ url.pathToFileURL(path.resolve(file)).href)) as { loadModel: ModelLoadFn }).loadModel;
}

/** The loaders a Node scorer uses: src/models' loadModel (or the test hook) and src/encoder's loadEmbedder. */
export async function nodeLoaders(): Promise<Required<ScorerLoaders>> {
  const hook = settings.testModelModule;
  return {
    loadModel: hook ? await testModelLoader(hook) : (spec, o) => loadModel(spec, o),
    loadEmbedder: (spec, o) => loadEmbedder(spec, o),
  };
}

/**
 * The one way to build a scorer: models by name, path or object, the reverse model, the encoder,
 * the chat format, the verify twins — and the identity a resumed run must match.
 */
export async function createScorer(o: CreateScorerOptions): Promise<ConfiguredScorer> {
  return composeScorer(o, await nodeLoaders());
}

export type { ConfiguredScorer, CreateScorerOptions } from './compose.js';
