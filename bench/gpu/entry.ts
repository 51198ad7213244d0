// The bundle's entry point (.gpu/concord-gpu.mjs): shaders first, then the subcommand.
import './shaders-bundled.js';
import { run } from './main.js';

await run(process.argv.slice(2));
