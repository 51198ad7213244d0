// The string set of tests/tokenizer-real.test.ts: the 252 expert-written Self-Instruct tasks
// (tests/fixtures/self-instruct-expert.jsonl, Apache-2.0) and deterministic variants of them (runs of
// spaces and newlines, tabs, leading/trailing whitespace, case, emoji), code, emoji, CJK and other
// scripts.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { rng } from '../../src/util/rng.js';
import { fixturesDir } from './real-tokenizers.js';

const CODE = [
  'def fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n',
  'for (let i = 0; i < n; i++) {\n\tsum += xs[i] * 2;\n}',
  '#include <stdio.h>\nint main(void) { printf("%d\\n", 42); return 0; }',
  'SELECT name, COUNT(*) AS n FROM users WHERE age >= 18 GROUP BY name ORDER BY n DESC;',
  '<div class="row"><span id=\'a\'>&amp; &lt;b&gt;</span></div>',
  '{"key": [1, 2.5, -3e10, null, true], "nested": {"a": "b\\u00e9"}}',
  'fn main() -> Result<(), Box<dyn Error>> { let v: Vec<u8> = vec![0xff; 16]; Ok(()) }',
  '$ git commit -m "fix: handle \\r\\n line endings" && npm run build 2>&1 | tee log.txt',
  '    if x == None:\n        raise ValueError(f"bad {x!r}")\n\n\n# end',
  'matrix = [[1,2,3],[4,5,6]]  # 2x3\nprint(sum(map(sum, matrix)))',
  'x => x ** 2 >>> 1 | 0 && y !== undefined ?? z',
  'const re = /^(?:[a-z0-9._%+-]+)@(?:[a-z0-9-]+\\.)+[a-z]{2,}$/i;',
];

const SCRIPTS = [
  '你好，世界！今天天气很好。', '机器学习模型需要大量的数据来训练。', '日本語のテキストも試します：カタカナ、ひらがな、漢字。',
  '한국어 문장도 토큰화합니다.', 'Привет, как дела? Всё хорошо.', 'مرحبا بالعالم، كيف حالك؟', 'שלום עולם',
  'नमस्ते दुनिया, यह एक परीक्षण है।', 'สวัสดีครับ ยินดีต้อนรับ', 'Γειά σου Κόσμε', 'Ünïcödé çàfé naïve façade — “quotes” ‘single’ … €100 £5 ¥300',
  'e\u0301 vs é (combining vs precomposed), ﬁ ligature, Å vs Å', '𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕞𝕒𝕥𝕙 ∑∫∂√∞ ≤≥≠ ±×÷',
  'Emoji: 😀😃😄 👍🏽 👨‍👩‍👧‍👦 🇫🇷 ❤️ 🧑‍💻 ✨🔥', '🎉🎉🎉🎉🎉', 'Mixed 中文 and English and 😀 and عربى in one line.',
  'Zero\u200bwidth\u200bspace and\u00a0no-break\u00a0space and soft\u00adhyphen', 'Tab\tseparated\tvalues\t1\t2\t3',
  'Numbers: 3.14159 2,718 1e-9 0x1F 1234567890 ½ ¾ ² ³', '   ', '\n', '\n\n\n\n', ' \t \n \r\n ', 'a', '', '  leading', 'trailing  ',
];

const EMOJI = ['😀', '👍🏽', '👨‍👩‍👧‍👦', '🇯🇵', '❤️', '🧑‍💻', '✨🔥', '🙏', '🤖 ', ' 🎉🎉', '☕️', '🌍']; // ZWJ sequences, flags, skin tones, VS16

/** Deterministic variants of a real string: whitespace runs, newlines, tabs, case, joins. */
function variants(s: string, r: () => number): string[] {
  const words = s.split(' ');
  const pick = <T,>(xs: T[]) => xs[Math.floor(r() * xs.length)];
  const spaced = words.map((w) => w + (r() < 0.3 ? ' '.repeat(1 + Math.floor(r() * 5)) : '')).join(' ');
  const lined = words.map((w) => w + (r() < 0.2 ? pick(['\n', '\n\n', '\n\n\n', ' \n', '\r\n', '\t']) : '')).join(' ');
  return [
    s,
    spaced,
    lined,
    `  ${s}  `,
    `\n${s}\n\n`,
    s.toUpperCase(),
    s.toLowerCase().replace(/[.,!?]/g, ''),
    `${s} ${pick(SCRIPTS)}`,
    `${pick(EMOJI)}${s}${pick(EMOJI)}`,
  ];
}

export function stringSet(): string[] {
  const rows = readFileSync(join(fixturesDir, 'self-instruct-expert.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, string>);
  const r = rng(20260101);
  const out: string[] = [];
  for (const row of rows) {
    out.push(...variants(row.instruction, r));
    if (row.input.trim()) out.push(row.input, `${row.instruction}\n\n${row.input}`);
    out.push(row.output);
  }
  for (const c of CODE) out.push(c, c.replace(/\n/g, '\r\n'), c.replace(/ {4}/g, '\t'), `\`\`\`\n${c}\n\`\`\``);
  for (const s of SCRIPTS) out.push(s, s.repeat(3), ` ${s}`);
  return out;
}

export const STRINGS = stringSet();
