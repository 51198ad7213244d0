// In the GPU bundle (bench/gpu/bundle.ts), esbuild replaces this module with one that registers
// every shaders/**/*.wgsl file (registerShaders), so the bundle needs no shaders/ folder beside it.
// From the sources (tests, tsc) it does nothing: shaders are read from disk.
export {};
