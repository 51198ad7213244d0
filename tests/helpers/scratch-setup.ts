// vitest setup file (vitest.config.ts setupFiles): after each test file, remove its scratch folders.
import { afterAll } from 'vitest';
import { removeScratch } from './scratch.js';

afterAll(() => removeScratch());
