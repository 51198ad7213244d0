// The browser demo: `npm run demo:web` (dev server), `npm run build:web` (static files in web-dist/).
// Kept apart from vitest.config.ts. The page imports the engine straight from src/ and kernels/;
// WGSL files are bundled as text (worker.ts registers them). The default model and the sample
// pairs are served from the repository by the dev server and copied next to the page by the build.

import { copyFileSync, existsSync, mkdirSync, statSync, createReadStream } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig, type Plugin } from 'vite';

const webDir = dirname(fileURLToPath(import.meta.url));
const root = resolve(webDir, '..');
const outDir = join(root, 'web-dist');

/** URL path under the page → file in the repository. Missing files are left out (the page says so). */
const STATIC: Record<string, string> = {
  'models/stories15M/model.bin': join(root, 'models/stories15M/model.bin'),
  'models/stories15M/tokenizer.bin': join(root, 'models/stories15M/tokenizer.bin'),
  'data/sample-pairs.jsonl': join(root, 'data/sample-pairs.jsonl'),
  // The CLI's default sentence encoder (--cosine auto), run on WebGPU in the page.
  ...Object.fromEntries(['model_q4.onnx', 'model_q4.onnx_data', 'tokenizer.json', 'tokenizer_config.json', 'config.json']
    .map((f) => [`models/all-MiniLM-L6-v2/${f}`, join(root, 'models/all-MiniLM-L6-v2', f)])),
};

function repoFiles(): Plugin {
  return {
    name: 'concord-repo-files',
    configureServer(server) {
      server.middlewares.use((req, res, next) => {
        const path = decodeURIComponent((req.url ?? '').split('?')[0]).replace(/^\/+/, '');
        const file = STATIC[path];
        if (!file || !existsSync(file)) return next();
        res.setHeader('Content-Type', path.endsWith('.jsonl') ? 'application/x-ndjson' : path.endsWith('.json') ? 'application/json' : 'application/octet-stream');
        res.setHeader('Content-Length', String(statSync(file).size));
        createReadStream(file).pipe(res);
      });
    },
    closeBundle() {
      for (const [path, file] of Object.entries(STATIC)) {
        if (!existsSync(file)) {
          this.warn(`${file} is missing: the page will not offer it`);
          continue;
        }
        const dst = join(outDir, path);
        mkdirSync(dirname(dst), { recursive: true });
        copyFileSync(file, dst);
      }
    },
  };
}

export default defineConfig({
  root: webDir,
  base: './',
  // The page reads no env; keep vite from looking for .env files in web/.
  envDir: false,
  plugins: [repoFiles()],
  worker: { format: 'es' },
  server: { fs: { allow: [root] } },
  build: {
    outDir,
    emptyOutDir: true,
    target: 'es2022',
    // The engine is ~200 kB with the tokenizer library; one chunk per entry is fine.
    chunkSizeWarningLimit: 2000,
  },
});
