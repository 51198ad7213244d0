// A Parquet file dropped on the demo page: its rows as JSONL text (the page works on text), read with
// hyparquet + hyparquet-compressors like the CLI, values converted the same way (src/formats).

import { parquetReadObjects } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import { toJsonValue, unflattenScores } from '../src/formats/parquet-values.js';

export const isParquetBytes = (head: Uint8Array): boolean => head.length >= 4 && head[0] === 0x50 && head[1] === 0x41 && head[2] === 0x52 && head[3] === 0x31;

export async function parquetToJsonl(buf: ArrayBuffer): Promise<{ text: string; rows: number }> {
  const rows = (await parquetReadObjects({ file: buf, compressors })) as Record<string, unknown>[];
  return { text: rows.map((r) => JSON.stringify(unflattenScores(toJsonValue(r) as Record<string, unknown>))).join('\n') + (rows.length ? '\n' : ''), rows: rows.length };
}
