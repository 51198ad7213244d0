// The Hub client's settings, read from the environment the way huggingface_hub reads them, so one
// shell configures concord and the Python tools alike:
//   HF_ENDPOINT            the Hub or a mirror (default https://huggingface.co)
//   HF_TOKEN               an access token for gated and private repos (HUGGING_FACE_HUB_TOKEN, the
//                          older name, after it; else the file HF_TOKEN_PATH or <HF_HOME>/token that
//                          `huggingface-cli login` writes)
//   HF_HUB_OFFLINE=1       no network at all: the cache or a clear error
//   HF_HUB_ETAG_TIMEOUT    seconds to wait for a metadata answer (default 10)
//   HF_HUB_DOWNLOAD_TIMEOUT seconds a download may stall before it is given up (default 10)
// and one of concord's own, from src/env.ts settings (process.env, not `env`):
//   CONCORD_HUB_MAX_FILE_GB  the largest file concord downloads (default 64; the Hub's own limit is 50 GB)

import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { settings } from '../env.js';
import { checkEndpoint, HubError } from './names.js';

export interface HubSettings {
  endpoint: string;
  token: string | undefined;
  /** Where the token came from, for messages ('HF_TOKEN', a token file, or undefined). */
  tokenFrom: string | undefined;
  offline: boolean;
  metaTimeoutMs: number;
  stallTimeoutMs: number;
  maxFileBytes: number;
}

const truthy = (v: string | undefined): boolean => !!v && ['1', 'on', 'yes', 'true'].includes(v.trim().toLowerCase());

function seconds(env: NodeJS.ProcessEnv, name: string, dflt: number): number {
  const v = env[name];
  if (v === undefined || v === '') return dflt * 1000;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0 || n > 86400) throw new HubError(`${name} must be a number of seconds in (0, 86400] (got ${JSON.stringify(v)})`);
  return n * 1000;
}

function endpoint(env: NodeJS.ProcessEnv): string {
  return checkEndpoint(env.HF_ENDPOINT || 'https://huggingface.co');
}

function token(env: NodeJS.ProcessEnv): { token?: string; from?: string } {
  for (const name of ['HF_TOKEN', 'HUGGING_FACE_HUB_TOKEN']) {
    const t = env[name]?.trim();
    if (t) return { token: t, from: name };
  }
  const home = env.HF_HOME ? resolve(env.HF_HOME) : join(env.XDG_CACHE_HOME ? resolve(env.XDG_CACHE_HOME) : join(homedir(), '.cache'), 'huggingface');
  const file = env.HF_TOKEN_PATH ? resolve(env.HF_TOKEN_PATH) : join(home, 'token');
  try {
    const t = existsSync(file) ? readFileSync(file, 'utf8').trim() : '';
    if (t && /^[\x21-\x7e]{1,512}$/.test(t)) return { token: t, from: 'the token file' };
  } catch {
    // an unreadable token file is the same as none
  }
  return {};
}

export function hubSettings(env: NodeJS.ProcessEnv = process.env): HubSettings {
  let maxGb: number;
  try {
    maxGb = settings.hubMaxFileGb;
  } catch (e) {
    throw new HubError((e as Error).message);
  }
  const t = token(env);
  return {
    endpoint: endpoint(env),
    token: t.token,
    tokenFrom: t.from,
    offline: truthy(env.HF_HUB_OFFLINE),
    metaTimeoutMs: seconds(env, 'HF_HUB_ETAG_TIMEOUT', 10),
    stallTimeoutMs: seconds(env, 'HF_HUB_DOWNLOAD_TIMEOUT', 10),
    maxFileBytes: Math.floor(maxGb * 2 ** 30),
  };
}
