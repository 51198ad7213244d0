// Node's fs/path for modules that must also load in a browser bundle (the web demo imports the
// llama2.c and tokenizer modules for their byte-level parsers). A static `import 'node:fs'` breaks
// browser builds, so file-reading entry points fetch the built-ins lazily, only when called.

import type * as Fs from 'node:fs';
import type * as Path from 'node:path';

type BuiltinGetter = (id: string) => unknown;

function builtin<T>(id: string): T {
  const get = (globalThis as { process?: { getBuiltinModule?: BuiltinGetter } }).process?.getBuiltinModule;
  if (!get) throw new Error(`reading files needs Node.js >= 20.16 (process.getBuiltinModule); in a browser, use the *FromBytes / parse* functions`);
  return get(id) as T;
}

export const nodeFs = (): typeof Fs => builtin<typeof Fs>('node:fs');
export const nodePath = (): typeof Path => builtin<typeof Path>('node:path');

/** True on little-endian hosts (model files are little-endian; typed arrays use host order). */
export const littleEndianHost = (): boolean => new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
