/**
 * Text into index terms: the tokenizer and light English stemmer that BM25, the hashed embedder
 * and the routing profiles share.
 * @module
 */
import * as v from '../validate';

// A small English stopword list: function words that carry no topic. Negations ('no', 'not') are
// kept on purpose, so that a query saying "not" favours texts that say it too.
const STOPWORDS = new Set([
  'a', 'an', 'and', 'are', 'as', 'at', 'be', 'been', 'but', 'by', 'for', 'from', 'had', 'has', 'have',
  'he', 'her', 'his', 'i', 'if', 'in', 'into', 'is', 'it', 'its', 'me', 'my', 'of', 'on', 'or', 'our',
  'she', 'so', 'such', 'than', 'that', 'the', 'their', 'them', 'then', 'there', 'these', 'they', 'this',
  'those', 'to', 'us', 'was', 'we', 'were', 'which', 'will', 'with', 'you', 'your',
]);

// Han and Hiragana are written without spaces: each character becomes its own token (as Lucene's
// StandardTokenizer does), otherwise a whole sentence would be one token. Other words start with a
// letter or digit and go on through letters, digits and marks (\p{M}), so that Devanagari or Bengali
// words are not cut apart at their vowel signs while an emoji's lone variation selector is no word.
const WORD = /[\p{sc=Han}\p{sc=Hiragana}]|(?![\p{sc=Han}\p{sc=Hiragana}])[\p{L}\p{N}](?:(?![\p{sc=Han}\p{sc=Hiragana}])[\p{L}\p{M}\p{N}])*/gu;
// An apostrophe inside a word is dropped ("don't" → "dont", "user's" → "users" → "user").
const APOSTROPHE = /(?<=\p{L})['\u2019](?=\p{L})/gu;
const ASCII_WORD = /^[a-z]+$/;
const VOWEL = /[aeiouy]/;

/**
 * Splits text into the terms that {@link Bm25Index} indexes: NFKC-normalised, lower-cased,
 * split into words (a letter or digit, then letters, digits and combining marks; apostrophes
 * inside a word dropped), with each Han or Hiragana character a word of its own; English
 * stopwords removed, and words of at least three ASCII letters reduced by a light stemmer.
 * Numbers are kept as terms; emoji and punctuation are not. Other scripts written without
 * spaces (Thai, Lao, Khmer) are not segmented: a run of them is one term.
 *
 * The stemmer only strips what is safe to strip, in order: a plural or third-person `-s`
 * (`-ies` → `-y`, `-sses` → `-ss`, no change after `-ss`, `-us`, `-is`); then `-ing` or `-ed`
 * when a vowel stays before it (not `-eed`), undoubling a final double consonant other than
 * l, s, z; then `-ization`/`-isation` → `-iz`/`-is`; then a final `-e` (not `-ee`). A stem keeps
 * at least two letters. So "optimize", "optimizes", "optimized", "optimizing" and
 * "optimization" all become `optimiz`, and "running" becomes `run`; words in other
 * languages are left as they are.
 *
 * @param text - any text.
 * @returns the terms in order (repeats kept).
 *
 * @example
 * ```ts
 * tokenize("The caches were optimized, the user's 2 queries!"); // ['cach', 'optimiz', 'user', '2', 'query']
 * ```
 */
export function tokenize(text: string): string[] {
  v.string('text', text);
  const words = text.normalize('NFKC').toLowerCase().replace(APOSTROPHE, '').match(WORD);
  if (words === null) return [];
  const out: string[] = [];
  for (const w of words) {
    if (STOPWORDS.has(w)) continue;
    out.push(w.length >= 3 && ASCII_WORD.test(w) ? stem(w) : w);
  }
  return out;
}

/** The light English stemmer described on {@link tokenize}; `w` is lower-case ASCII letters. */
function stem(w: string): string {
  // Plural / third person.
  if (w.endsWith('ies') && w.length >= 5) w = `${w.slice(0, -3)}y`;
  else if (w.endsWith('sses')) w = w.slice(0, -2);
  else if (w.endsWith('s') && !/(?:ss|us|is)$/.test(w) && w.length >= 4) w = w.slice(0, -1);
  // Verb endings: only when what stays still has a vowel ("string", "bring", "red" stay).
  const suffix = w.endsWith('ing') ? 3 : w.endsWith('ed') && !w.endsWith('eed') ? 2 : 0;
  if (suffix > 0) {
    const base = w.slice(0, -suffix);
    if (base.length >= 2 && VOWEL.test(base)) {
      w = base;
      // "running" → "run", "stopped" → "stop"; not "falling", "missed", "buzzed", nor "adding" → "ad".
      const last = w.charCodeAt(w.length - 1);
      if (w.length >= 4 && last === w.charCodeAt(w.length - 2) && !/[aeioulsz]/.test(w[w.length - 1] ?? '')) {
        w = w.slice(0, -1);
      }
    }
  }
  if (w.endsWith('ization') || w.endsWith('isation')) w = w.slice(0, -5);
  // Final silent e, so "cache" meets "caches"/"cached"/"caching" at "cach".
  if (w.endsWith('e') && !w.endsWith('ee') && w.length >= 3) w = w.slice(0, -1);
  return w;
}

