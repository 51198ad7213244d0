// `concord download`: what a first scoring run would download of a Hub model, now — e.g. on a login
// node before a job whose compute nodes have no network (HF_HUB_OFFLINE=1 there). src/hub does the
// work; docs/hub.md.

import { ensureHubModel } from '../hub/download.js';
import { splitModelSpec } from '../hub/names.js';
import { command, EXIT, log, parseFlags, UsageError } from './common.js';

export const DOWNLOAD_HELP = `concord download <Org/Name[@rev][:FILE.gguf]> [--revision R] [--gguf-file NAME] [--json]

Downloads what concord reads of a Hugging Face Hub model (config, tokenizer and chat-template
files, the safetensors weights; or only --gguf-file) into the Hugging Face cache, as a first run
with --model Org/Name would, and prints the snapshot folder (the GGUF file with --gguf-file).
A second call downloads nothing. HF_ENDPOINT, HF_TOKEN, HF_HUB_CACHE/HF_HOME as in docs/hub.md.
  --revision REV      branch, tag or commit (default main; Org/Name@REV says the same)
  --gguf-file NAME    one GGUF file of the repo instead of config + safetensors (Org/Name:NAME says
                      the same)
  --json              {"path", "commit", "revision", "downloaded", "requests"}`;

export const downloadCommand = command('download', DOWNLOAD_HELP, async (argv) => {
  const { values: v, positionals } = parseFlags(argv, { revision: { type: 'string' }, 'gguf-file': { type: 'string' }, json: { type: 'boolean' } }, true);
  if (positionals.length !== 1) throw new UsageError(`expected one model id (Org/Name), got ${positionals.length}`);
  const { id, revision: atRev, file } = splitModelSpec(positionals[0]);
  if (file !== undefined && v['gguf-file'] !== undefined && file !== v['gguf-file']) throw new UsageError(`'${positionals[0]}' names the file '${file}' but --gguf-file says '${v['gguf-file']}'; give one`);
  if (atRev !== undefined && v.revision !== undefined && atRev !== v.revision) throw new UsageError(`'${positionals[0]}' names revision '${atRev}' but --revision says '${v.revision}'; give one`);
  const ggufFile = v['gguf-file'] ?? file;
  if (ggufFile === '') throw new UsageError('--gguf-file needs a file name');
  const m = await ensureHubModel(id, { revision: atRev ?? v.revision, ggufFile });
  if (v.json) console.log(JSON.stringify({ path: m.path, commit: m.commit, revision: m.revision, downloaded: m.downloaded, requests: m.requests }));
  else {
    log(`concord: ${id}@${m.revision} is commit ${m.commit}; ${m.downloaded.length ? `downloaded ${m.downloaded.length} file(s)` : 'nothing to download'}`);
    console.log(m.path);
  }
  return EXIT.ok;
});
