/**
 * How many terminal columns text takes, so that the live view cuts and pads lines by what the
 * terminal shows rather than by code points: a CJK character or an emoji takes two columns, a
 * combining mark, a zero-width joiner or a variation selector none. A line measured in code
 * points came out wider than the terminal, wrapped, and the view's redraw (which moves the cursor
 * up one row per line) then left broken frames behind. Pure.
 *
 * The rules are those terminals follow (after wcwidth and Unicode's East Asian Width):
 * - a grapheme cluster that is an emoji shown as one — a code point with emoji presentation, one
 *   followed by U+FE0F, a keycap, a flag (a pair of regional indicators), a ZWJ sequence — is 2;
 * - East Asian Wide and Fullwidth code points (CJK ideographs, kana, Hangul syllables, fullwidth
 *   forms…) are 2;
 * - combining marks (Mn, Me), default-ignorable code points (ZWJ, ZWNJ, variation selectors,
 *   soft hyphen…), Hangul medial vowels and final consonants are 0;
 * - everything else printable is 1 (East Asian Ambiguous too: `…`, `█` and `·` are one column in
 *   the terminals the view is drawn in).
 * Control characters are not text: {@link printable} replaces them before anything is measured.
 */

/** East Asian Wide (W) and Fullwidth (F) ranges that are not emoji, as [first, last] pairs. */
const WIDE: ReadonlyArray<readonly [number, number]> = [
  [0x1100, 0x115f], // Hangul Jamo initial consonants
  [0x2329, 0x232a], // angle brackets
  [0x2e80, 0x2e99], // CJK Radicals Supplement
  [0x2e9b, 0x2ef3],
  [0x2f00, 0x2fd5], // Kangxi Radicals
  [0x2ff0, 0x2fff], // Ideographic Description Characters
  [0x3000, 0x303e], // ideographic space, CJK Symbols and Punctuation
  [0x3041, 0x3096], // Hiragana
  [0x3099, 0x30ff], // Katakana
  [0x3105, 0x312f], // Bopomofo
  [0x3131, 0x318e], // Hangul Compatibility Jamo
  [0x3190, 0x31e5], // Kanbun, Bopomofo Extended, CJK Strokes
  [0x31ef, 0x321e], // Katakana Phonetic Extensions, Enclosed CJK
  [0x3220, 0x3247],
  [0x3250, 0x4dbf], // Enclosed CJK, CJK Compatibility, CJK Extension A
  [0x4e00, 0xa48c], // CJK Unified Ideographs, Yi Syllables
  [0xa490, 0xa4c6], // Yi Radicals
  [0xa960, 0xa97c], // Hangul Jamo Extended-A
  [0xac00, 0xd7a3], // Hangul Syllables
  [0xf900, 0xfaff], // CJK Compatibility Ideographs
  [0xfe10, 0xfe19], // Vertical Forms
  [0xfe30, 0xfe52], // CJK Compatibility Forms, Small Form Variants
  [0xfe54, 0xfe66],
  [0xfe68, 0xfe6b],
  [0xff01, 0xff60], // Fullwidth Forms
  [0xffe0, 0xffe6],
  [0x16fe0, 0x16fe4], // Ideographic Symbols and Punctuation
  [0x16ff0, 0x16ff1],
  [0x17000, 0x18cd5], // Tangut, Khitan
  [0x18d00, 0x18d08],
  [0x1aff0, 0x1b2fb], // Kana Extended, Kana Supplement, Nushu
  [0x1f200, 0x1f202], // Enclosed Ideographic Supplement
  [0x1f210, 0x1f23b],
  [0x1f240, 0x1f248],
  [0x1f250, 0x1f251],
  [0x1f260, 0x1f265],
  [0x20000, 0x2fffd], // CJK Extensions B–F, Compatibility Supplement
  [0x30000, 0x3fffd], // CJK Extensions G–H
];

const ZERO_WIDTH = /^[\p{Mn}\p{Me}\p{Default_Ignorable_Code_Point}\u1160-\u11ff\ud7b0-\ud7ff]$/u;
const EMOJI_PRESENTATION = /\p{Emoji_Presentation}/u;
const EMOJI = /^\p{Emoji}/u;
const KEYCAP_OR_VS16 = /[\ufe0f\u20e3]/;
/**
 * C0 and C1 controls and DEL: they move the cursor or change the terminal, and take no column; and
 * the bidirectional embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069), which
 * reorder what follows them on the line (a note could show other text than it holds).
 */
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g; // eslint-disable-line no-control-regex
const PRINTABLE_ASCII = /^[\u0020-\u007e]*$/;

let graphemes: Intl.Segmenter | undefined;

function isWide(codePoint: number): boolean {
  if (codePoint < 0x1100) return false;
  let low = 0;
  let high = WIDE.length - 1;
  while (low <= high) {
    const mid = (low + high) >> 1;
    const [first, last] = WIDE[mid] as readonly [number, number];
    if (codePoint < first) high = mid - 1;
    else if (codePoint > last) low = mid + 1;
    else return true;
  }
  return false;
}

/** Columns of one code point on its own (a cluster's emoji rule comes first; see below). */
export function codePointWidth(codePoint: number): 0 | 1 | 2 {
  if (codePoint < 0x20 || (codePoint >= 0x7f && codePoint < 0xa0)) return 0;
  if (codePoint < 0x300) return codePoint === 0xad ? 0 : 1; // U+00AD soft hyphen: default-ignorable
  const char = String.fromCodePoint(codePoint);
  if (ZERO_WIDTH.test(char)) return 0;
  if (isWide(codePoint) || EMOJI_PRESENTATION.test(char)) return 2;
  return 1;
}

/** Columns of one grapheme cluster (what a reader sees as one character). */
function clusterWidth(cluster: string): number {
  // An emoji shown as one picture: emoji presentation, or an emoji made one by U+FE0F, a keycap,
  // a flag, a ZWJ sequence — all one double-width cell, however many code points.
  if (EMOJI_PRESENTATION.test(cluster) || (KEYCAP_OR_VS16.test(cluster) && EMOJI.test(cluster))) return 2;
  let width = 0;
  for (const char of cluster) width += codePointWidth(char.codePointAt(0) as number);
  return width;
}

const isHighSurrogate = (code: number) => code >= 0xd800 && code <= 0xdbff;

/** Code units handed to the segmenter in one piece while a long text is walked; see {@link clusters}. */
const WINDOW = 256;

/**
 * The text's grapheme clusters, one at a time, in time linear in the text. V8's segmenter is not:
 * each segment it hands out costs time (and, while it is kept, memory) in proportion to the whole
 * input, so a long text is segmented a window at a time. A window's last cluster may go on past
 * its end, so it is left to the next window, which starts where that cluster starts (a cluster
 * boundary depends on nothing after it but the next code point). A window is never cut inside a
 * surrogate pair, and a cluster longer than a window (a letter with a thousand combining marks)
 * doubles the window until it ends inside it.
 */
function* clusters(text: string): Generator<string> {
  graphemes ??= new Intl.Segmenter(undefined, { granularity: 'grapheme' });
  let start = 0;
  let size = WINDOW;
  while (start < text.length) {
    let end = start + size;
    if (end >= text.length) {
      for (const { segment } of graphemes.segment(start === 0 ? text : text.slice(start))) yield segment;
      return;
    }
    if (isHighSurrogate(text.charCodeAt(end - 1))) end--;
    let held: string | undefined;
    let passed = 0;
    for (const { segment } of graphemes.segment(text.slice(start, end))) {
      if (held !== undefined) {
        yield held;
        passed += held.length;
      }
      held = segment;
    }
    if (passed === 0) size *= 2;
    else {
      start += passed;
      size = WINDOW;
    }
  }
}

/**
 * How much of a line {@link fitColumns} reads for `width` columns (UTF-16 code units): no
 * character takes less than a column but zero-width ones, so nothing past it can be shown, and a
 * line longer than it is always cut. A progress note of 64 KiB redrawn ten times a second is
 * measured by this much of it, not the whole.
 */
export function fitLookahead(width: number): number {
  return Math.max(0, width) * 4 + 64;
}

/** The first `length` code units of a text, one fewer where that would split a surrogate pair. */
export function headOf(text: string, length: number): string {
  if (text.length <= length) return text;
  return text.slice(0, length > 0 && isHighSurrogate(text.charCodeAt(length - 1)) ? length - 1 : length);
}

/** The text with control characters (escape sequences, tabs, carriage returns) made visible. */
export function printable(text: string): string {
  return text.replace(CONTROL, (c) => (c === '\t' ? ' ' : '?'));
}

/**
 * Terminal columns of a text without control characters.
 *
 * @example
 * stringWidth('abc');   // 3
 * stringWidth('日本語'); // 6
 * stringWidth('👍🏽');    // 2
 * stringWidth('é');     // 1 (e + U+0301)
 */
export function stringWidth(text: string): number {
  if (PRINTABLE_ASCII.test(text)) return text.length;
  let width = 0;
  for (const cluster of clusters(text)) width += clusterWidth(cluster);
  return width;
}

/**
 * Cuts a line to at most `width` columns, marking a cut with `…`; never splits a character (a
 * double-width one that would straddle the edge goes whole). Control characters are made
 * printable first.
 */
export function fitColumns(line: string, width: number): string {
  const head = headOf(line, fitLookahead(width));
  const cut = head.length < line.length;
  const text = printable(head);
  if (PRINTABLE_ASCII.test(text)) {
    if (!cut && text.length <= width) return text;
    return width <= 1 ? text.slice(0, Math.max(0, width)) : `${text.slice(0, width - 1)}…`;
  }
  if (!cut && stringWidth(text) <= width) return text;
  const room = width <= 1 ? width : width - 1;
  let used = 0;
  let kept = '';
  for (const cluster of clusters(text)) {
    const w = clusterWidth(cluster);
    if (used + w > room) break;
    kept += cluster;
    used += w;
  }
  return width <= 1 ? kept : `${kept}…`;
}

/** Pads a text with spaces to `width` columns (as `padEnd` does for code units). */
export function padEndColumns(text: string, width: number): string {
  const missing = width - stringWidth(text);
  return missing > 0 ? `${text}${' '.repeat(missing)}` : text;
}
