// Device set-up: the Dawn toggles concord gives dawn.node's create() (a pure composition of the
// defaults, CONCORD_DAWN_ENABLE / CONCORD_DAWN_DISABLE and CONCORD_DAWN_FLAGS), and on the real
// adapter (lavapipe in CI) that the device comes up with them and `concord doctor` reports them,
// the subgroup sizes and the subgroup-matrix configurations.

import { describe, expect, test } from 'vitest';
import { formatDoctor, formatMatrixConfigs } from '../src/cli/doctor.js';
import { dawnCreateFlags, DEFAULT_DAWN_DISABLE, DEFAULT_DAWN_ENABLE, requestGpu, requireGpuFromEnv, subgroupInfo } from '../src/gpu/device.js';
import { UsageError } from '../src/errors.js';
import { setupCli } from './helpers/cli.js';

describe('dawnCreateFlags', () => {
  test('defaults: f16 on NVIDIA and unsafe APIs enabled, timestamp quantisation disabled', () => {
    const r = dawnCreateFlags({});
    expect(r.flags).toEqual([
      'enable-dawn-features=allow_unsafe_apis,vulkan_enable_f16_on_nvidia',
      'disable-dawn-features=timestamp_quantization',
    ]);
    expect(r.toggles).toEqual({ enabled: ['allow_unsafe_apis', 'vulkan_enable_f16_on_nvidia'], disabled: ['timestamp_quantization'] });
    expect(DEFAULT_DAWN_ENABLE).toEqual(r.toggles.enabled);
    expect(DEFAULT_DAWN_DISABLE).toEqual(r.toggles.disabled);
  });

  test('CONCORD_DAWN_ENABLE / _DISABLE replace the defaults; none empties a list (and drops its flag)', () => {
    expect(dawnCreateFlags({ enable: 'dump_shaders', disable: 'none' })).toEqual({
      flags: ['enable-dawn-features=dump_shaders'], toggles: { enabled: ['dump_shaders'], disabled: [] },
    });
    expect(dawnCreateFlags({ enable: 'none', disable: 'none' })).toEqual({ flags: [], toggles: { enabled: [], disabled: [] } });
    expect(dawnCreateFlags({ enable: ' a_b , c1 ,', disable: 'none' }).toggles.enabled).toEqual(['a_b', 'c1']);
  });

  test('CONCORD_DAWN_FLAGS is appended: its toggle lists merge (later wins), other flags pass through', () => {
    const r = dawnCreateFlags({ extra: 'adapter=NVIDIA  enable-dawn-features=dump_shaders,timestamp_quantization disable-dawn-features=allow_unsafe_apis verbose=1' });
    expect(r.toggles).toEqual({ enabled: ['vulkan_enable_f16_on_nvidia', 'dump_shaders', 'timestamp_quantization'], disabled: ['allow_unsafe_apis'] });
    expect(r.flags).toEqual([
      'adapter=NVIDIA', 'verbose=1',
      'enable-dawn-features=vulkan_enable_f16_on_nvidia,dump_shaders,timestamp_quantization',
      'disable-dawn-features=allow_unsafe_apis',
    ]);
  });

  test('bad settings are usage errors naming the variable', () => {
    expect(() => dawnCreateFlags({ enable: 'Allow-Unsafe' })).toThrow(UsageError);
    expect(() => dawnCreateFlags({ enable: 'Allow-Unsafe' })).toThrow(/CONCORD_DAWN_ENABLE: 'Allow-Unsafe' is not a Dawn toggle name/);
    expect(() => dawnCreateFlags({ enable: 'x', disable: 'x' })).toThrow(/'x' is both enabled .* and disabled/);
    expect(() => dawnCreateFlags({ extra: 'verbose' })).toThrow(/CONCORD_DAWN_FLAGS: 'verbose' is not a key=value flag/);
  });
});

describe('subgroupInfo', () => {
  test('copies dawn.node-style getter objects into plain configs; absent fields read as null / []', () => {
    class Cfg { get M() { return 8; } get N() { return 8; } get K() { return 16; } get componentType() { return 'f16'; } get resultComponentType() { return 'f32'; } }
    const info = { subgroupMinSize: 32, subgroupMaxSize: 32, subgroupMatrixConfigs: [new Cfg()] } as unknown as GPUAdapterInfo;
    const s = subgroupInfo(info);
    expect(s).toEqual({ subgroupMinSize: 32, subgroupMaxSize: 32, subgroupMatrixConfigs: [{ M: 8, N: 8, K: 16, componentType: 'f16', resultComponentType: 'f32' }] });
    expect(JSON.parse(JSON.stringify(s.subgroupMatrixConfigs))).toEqual(s.subgroupMatrixConfigs);
    expect(formatMatrixConfigs(s.subgroupMatrixConfigs)).toBe('f16→f32 8×8×16');
    expect(subgroupInfo({} as GPUAdapterInfo)).toEqual({ subgroupMinSize: null, subgroupMaxSize: null, subgroupMatrixConfigs: [] });
    expect(formatMatrixConfigs([])).toBe('none');
  });
});

describe('on the adapter', async () => {
  let gpu: Awaited<ReturnType<typeof requestGpu>> | null = null;
  let error = '';
  try { gpu = await requestGpu(); } catch (e) { error = (e as Error).message; }
  if (!gpu && requireGpuFromEnv()) throw new Error(`CONCORD_REQUIRE_GPU=1 but no WebGPU adapter: ${error}`);

  test.skipIf(!gpu)('the device comes up with the default toggles, its subgroup sizes and the features the adapter offers', () => {
    const g = gpu!;
    expect(g.toggles).toEqual({ enabled: [...DEFAULT_DAWN_ENABLE], disabled: [...DEFAULT_DAWN_DISABLE] });
    // Every wanted feature the adapter offers is on the device.
    for (const f of ['shader-f16', 'subgroups', 'timestamp-query', 'chromium-experimental-subgroup-matrix']) {
      expect(g.features.includes(f), f).toBe(g.adapter.features.has(f));
    }
    if (g.adapter.features.has('subgroups')) {
      expect(g.subgroupMinSize).toBeGreaterThanOrEqual(1);
      expect(g.subgroupMaxSize).toBeGreaterThanOrEqual(g.subgroupMinSize!);
    }
    expect(Array.isArray(g.subgroupMatrixConfigs)).toBe(true);
  });

  test.skipIf(!gpu)('formatDoctor prints the toggles, subgroup sizes and matrix configurations', () => {
    const g = gpu!;
    const text = formatDoctor({
      runtime: { name: 'node', version: 'v0', platform: 'x', webgpuPackage: null }, driver: g.driverNote, adapter: g.info, adapterError: null,
      features: g.features, limits: {}, toggles: g.toggles, subgroupMinSize: g.subgroupMinSize, subgroupMaxSize: g.subgroupMaxSize,
      subgroupMatrixConfigs: g.subgroupMatrixConfigs, auto: { backend: 'cpu', reason: 'test' },
    });
    expect(text).toMatch(/^toggles   enabled allow_unsafe_apis, vulkan_enable_f16_on_nvidia; disabled timestamp_quantization$/m);
    expect(text).toMatch(/^subgroups size \d+–\d+$/m);
    expect(text).toMatch(new RegExp(`^subgroup matrix ${formatMatrixConfigs(g.subgroupMatrixConfigs)}$`, 'm'));
  });

  test.skipIf(!gpu)('concord doctor (child process) shows the toggles in force; the settings override them', async () => {
    const { run } = setupCli('concord-device-');
    const plain = await run(['doctor'], {}, { fake: false });
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stdout).toMatch(/^toggles   enabled allow_unsafe_apis, vulkan_enable_f16_on_nvidia; disabled timestamp_quantization$/m);
    expect(plain.stdout).toMatch(/^subgroups size \d+–\d+$/m);
    expect(plain.stdout).toMatch(/^subgroup matrix (none|\S+→\S+ \d+×\d+×\d+)/m);
    const off = await run(['doctor', '--json'], { CONCORD_DAWN_ENABLE: 'none', CONCORD_DAWN_FLAGS: 'disable-dawn-features=allow_unsafe_apis' }, { fake: false });
    const rep = JSON.parse(off.stdout);
    expect(rep.adapterError).toBeNull();
    expect(rep.toggles).toEqual({ enabled: [], disabled: ['timestamp_quantization', 'allow_unsafe_apis'] });
    expect(Array.isArray(rep.subgroupMatrixConfigs)).toBe(true);
  }, 120_000);
});
