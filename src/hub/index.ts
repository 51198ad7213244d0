// Hugging Face Hub downloads into the shared cache (Node only). See docs/hub.md.
export { ensureHubModel, ttyProgress, type HubModel, type HubModelOptions } from './download.js';
export { HubError, checkRevision, isCommit, isRepoId, isRevisionName, isRepoFileName, splitModelSpec } from './names.js';
export { hubSettings, type HubSettings } from './settings.js';
export { HubNetworkError, MAX_REDIRECTS } from './http.js';
export type { BlobProgress } from './blob.js';
