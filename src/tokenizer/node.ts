// Node's fs/path for modules that must also load in a browser bundle (the web demo imports the
// llama2.c and tokenizer modules for their byte-level parsers). A static `import 'node:fs'` breaks
// browser builds, so file-reading entry points fetch the built-ins lazily, only when called.

import type * as Fs from 'node:fs';
import type * as Path from 'node:path';

import { nodeBuiltin } from '../env.js';

export const nodeFs = (): typeof Fs => nodeBuiltin<typeof Fs>('fs');
export const nodePath = (): typeof Path => nodeBuiltin<typeof Path>('path');

/** True on little-endian hosts (model files are little-endian; typed arrays use host order). */
export const littleEndianHost = (): boolean => new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
