// The files of a model folder, wherever they are: on disk (Node: `folderFiles`) or in memory (the
// browser: `memoryFiles`, from a chosen folder or a Hub download). The Hugging Face loader
// (src/models/hf.ts), the safetensors reader (./safetensors.ts) and the tokenizer
// (src/tokenizer/hf.ts) read through this one interface, so the page and the CLI load a folder
// with the same code. No static Node imports: the folder side fetches node:fs only when called.

import { nodeFs, nodePath } from '../tokenizer/node.js';

/** Positioned reads of one file's bytes. */
export interface ByteReader {
  /** Copy bytes from `pos` into dst; returns how many were copied (0 at the end). */
  read(dst: Uint8Array, pos: number): number;
  close(): void;
}

/** One file's bytes: its name for messages, its size, and readers over it. */
export interface ByteSource {
  readonly name: string;
  readonly size: number;
  open(): ByteReader;
}

/** A model folder's files by their name inside it ('config.json', 'model-00001-of-00002.safetensors'). */
export interface ModelFiles {
  /** The folder as messages name it (a path, or 'Org/Name@rev' for a Hub download). */
  readonly dir: string;
  /** A file's name as messages give it (dir/name). */
  path(name: string): string;
  has(name: string): boolean;
  /** The file as UTF-8 text; errors name the file. */
  text(name: string): string;
  bytes(name: string): ByteSource;
}

/** Bytes held in memory as a ByteSource. */
export function memorySource(name: string, data: ArrayBuffer | Uint8Array): ByteSource {
  const all = data instanceof Uint8Array ? data : new Uint8Array(data);
  return {
    name,
    size: all.byteLength,
    open: () => ({
      read(dst: Uint8Array, pos: number): number {
        const n = Math.max(0, Math.min(dst.length, all.byteLength - pos));
        dst.set(all.subarray(pos, pos + n));
        return n;
      },
      close() {},
    }),
  };
}

/** A folder given as bytes by name (the page's chosen folder, a Hub download). */
export function memoryFiles(dir: string, files: ReadonlyMap<string, ArrayBuffer | Uint8Array>): ModelFiles {
  const path = (name: string) => `${dir}/${name}`;
  const get = (name: string) => {
    const b = files.get(name);
    if (!b) throw new Error(`${path(name)}: no such file`);
    return b;
  };
  return {
    dir,
    path,
    has: (name) => files.has(name),
    text: (name) => new TextDecoder().decode(get(name)),
    bytes: (name) => memorySource(path(name), get(name)),
  };
}

/** A file on disk as a ByteSource (Node only). */
export function fileSource(path: string): ByteSource {
  const fs = nodeFs();
  const size = fs.statSync(path).size;
  return {
    name: path,
    size,
    open(): ByteReader {
      const fd = fs.openSync(path, 'r');
      return {
        read: (dst, pos) => fs.readSync(fd, dst, 0, Math.min(dst.length, 1 << 30), pos),
        close: () => fs.closeSync(fd),
      };
    },
  };
}

/** A folder on disk (Node only). */
export function folderFiles(dir: string): ModelFiles {
  const fs = nodeFs();
  const { join } = nodePath();
  return {
    dir,
    path: (name) => join(dir, name),
    has: (name) => fs.existsSync(join(dir, name)),
    text: (name) => fs.readFileSync(join(dir, name), 'utf8'),
    bytes: (name) => fileSource(join(dir, name)),
  };
}
