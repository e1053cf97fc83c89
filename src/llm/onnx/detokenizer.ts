/**
 * Incremental detokenization: the text each new token adds, without decoding the whole
 * output every step, and without emitting half a UTF-8 character.
 * @module
 */

/** Decodes ids to text (special tokens skipped). */
export type DecodeFn = (ids: number[]) => string;

/** Tokens of prompt context kept in front of the output, so a decoder that treats the first token specially (SentencePiece's leading space) sees the output mid-text. */
const CONTEXT = 4;

/**
 * Tracks a window of ids: text already emitted ends at `#read`; `#prefix` starts the ids
 * decoded as context. A token's text is final once decoding the window ends in no
 * replacement character (byte-level tokens can split a character).
 */
export class Detokenizer {
  readonly #decode: DecodeFn;
  readonly #ids: number[];
  #prefix = 0;
  #read: number;
  #prefixText: string;
  /** Tokens whose text the last non-empty `push` returned (more than 1 when a character spanned tokens). */
  lastSpan = 0;

  constructor(decode: DecodeFn, promptIds: readonly number[]) {
    this.#decode = decode;
    this.#ids = promptIds.slice(-CONTEXT);
    this.#read = this.#ids.length;
    this.#prefixText = decode(this.#ids);
    // A prompt ending inside a character (its bytes split over byte tokens): those tokens are
    // left unread, so the output token that completes the character emits all of it — never
    // half a surrogate pair, never a dropped character.
    while (this.#read > 0 && this.#prefixText.endsWith('\uFFFD') && this.#ids.length - this.#read < 3) {
      this.#read--;
      this.#prefixText = decode(this.#ids.slice(0, this.#read));
    }
  }

  /** Appends one token; returns the text it completes ('' while a character is incomplete). */
  push(id: number): string {
    this.#ids.push(id);
    const text = this.#decode(this.#ids.slice(this.#prefix));
    if (text.length <= this.#prefixText.length || text.endsWith('\uFFFD')) return '';
    const delta = text.slice(this.#prefixText.length);
    this.lastSpan = this.#ids.length - this.#read;
    // The window slides: the newly final tokens become the context of the next ones.
    this.#prefix = this.#read;
    this.#read = this.#ids.length;
    this.#prefixText = this.#decode(this.#ids.slice(this.#prefix, this.#read));
    return delta;
  }

  /** Text of tokens still held back (an incomplete character at the end), decoded as it is. */
  flush(): string {
    const text = this.#decode(this.#ids.slice(this.#prefix));
    if (this.#read === this.#ids.length || text.length <= this.#prefixText.length) return '';
    this.#read = this.#ids.length;
    return text.slice(this.#prefixText.length);
  }
}
