/**
 * Chat templates: the Jinja template of a model's `tokenizer_config.json` (`chat_template`),
 * rendered with `@huggingface/jinja` (the implementation transformers.js uses), turning chat
 * messages into the text a raw-completions {@link Generator} continues.
 * @module
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Template as JinjaTemplate } from '@huggingface/jinja' with { 'resolution-mode': 'require' };
import * as v from '../validate';

/**
 * One message of a chat, as OpenAI's chat completions send it (tool-free).
 *
 * @example
 * ```ts
 * const messages: ChatMessage[] = [
 *   { role: 'system', content: 'Answer in one sentence.' },
 *   { role: 'user', content: 'Why is the sky blue?' },
 * ];
 * ```
 */
export interface ChatMessage {
  /** Who speaks: the instructions, the user, or the model. */
  role: 'system' | 'user' | 'assistant';
  /** The text. */
  content: string;
}

/**
 * Options of {@link ChatTemplate}.
 *
 * @example
 * ```ts
 * const opts: ChatTemplateOptions = { bosToken: '<s>', eosToken: '</s>' };
 * ```
 */
export interface ChatTemplateOptions {
  /** The tokenizer's `bos_token`, passed to the template as `bos_token`; default `''`. */
  bosToken?: string;
  /** The tokenizer's `eos_token`, passed to the template as `eos_token`; default `''`. */
  eosToken?: string;
}

const ROLES = ['system', 'user', 'assistant'] as const;

// The package's CommonJS build (its typings are declared as an ES module).
let Template: typeof JinjaTemplate | undefined;
function jinja(): typeof JinjaTemplate {
  Template ??= (require('@huggingface/jinja') as { Template: typeof JinjaTemplate }).Template;
  return Template;
}

/**
 * The template used when a model ships none: each message as `role: content` on its own
 * line, then `assistant:` when a generation prompt is asked for. Plain text any base model can
 * continue; a chat-tuned model should be served with its own template.
 */
const FALLBACK_SOURCE =
  "{% for message in messages %}{{ message['role'] + ': ' + message['content'] + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ 'assistant:' }}{% endif %}";

/**
 * A chat template: Jinja source rendered by `@huggingface/jinja` with `messages`,
 * `add_generation_prompt`, `bos_token` and `eos_token`, as transformers'
 * `apply_chat_template(messages, tokenize=False)` does (tools are not passed).
 *
 * The backends this package serves ({@link OnnxCausalLM}, an OpenAI-compatible
 * `/v1/completions` server) add the tokenizer's BOS token to a text prompt themselves, so a BOS
 * token the template writes at the very start is removed from the rendered text: the model sees
 * one BOS, not two.
 *
 * @example
 * ```ts
 * import { ChatTemplate } from '@capibara/core';
 * const template = ChatTemplate.fromModelDir('./models/qwen3-0.6b');
 * const prompt = template.render([{ role: 'user', content: 'Hi' }]);
 * ```
 */
export class ChatTemplate {
  /**
   * The fallback template's Jinja source: each message as `role: content` on its own line, then `assistant:`.
   *
   * @example
   * ```ts
   * new ChatTemplate(ChatTemplate.FALLBACK_SOURCE).render([{ role: 'user', content: 'Hi' }]); // 'user: Hi\nassistant:'
   * ```
   */
  static readonly FALLBACK_SOURCE = FALLBACK_SOURCE;

  /**
   * The Jinja source.
   *
   * @example
   * ```ts
   * console.log(template.source.length);
   * ```
   */
  readonly source: string;
  /**
   * `true` when the model had no `chat_template` and {@link ChatTemplate.FALLBACK_SOURCE} is used.
   *
   * @example
   * ```ts
   * if (template.isFallback) console.warn('the model has no chat template');
   * ```
   */
  readonly isFallback: boolean;
  readonly #template: JinjaTemplate;
  readonly #bos: string;
  readonly #eos: string;

  /**
   * Parses a template.
   *
   * @param source Jinja source, such as `tokenizer_config.json`'s `chat_template`.
   * @param options The special tokens the template may write.
   * @throws TypeError / RangeError for a bad argument; SyntaxError naming the template's error when it does not parse.
   *
   * @example
   * ```ts
   * const t = new ChatTemplate("{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}<|assistant|>");
   * ```
   */
  constructor(source: string, options: ChatTemplateOptions = {}) {
    v.nonEmptyString('source', source);
    const o = v.options<ChatTemplateOptions>('options', options, ['bosToken', 'eosToken']);
    this.#bos = o.bosToken === undefined ? '' : v.string('options.bosToken', o.bosToken);
    this.#eos = o.eosToken === undefined ? '' : v.string('options.eosToken', o.eosToken);
    this.source = source;
    this.isFallback = source === FALLBACK_SOURCE;
    try {
      this.#template = new (jinja())(source);
    } catch (err) {
      throw new SyntaxError(`The chat template does not parse: ${(err as Error).message}`);
    }
  }

  /**
   * The special tokens the template is rendered with.
   *
   * @example
   * ```ts
   * const custom = new ChatTemplate(mySource, ChatTemplate.fromModelDir(dir).specialTokens);
   * ```
   */
  get specialTokens(): Required<ChatTemplateOptions> {
    return { bosToken: this.#bos, eosToken: this.#eos };
  }

  /**
   * The template of a parsed `tokenizer_config.json`: its `chat_template` (a string, or the
   * list of named templates, of which `default` is taken), with its `bos_token` and
   * `eos_token`; the fallback template when it has none.
   *
   * @param config The parsed file.
   * @returns The template.
   *
   * @example
   * ```ts
   * const t = ChatTemplate.fromTokenizerConfig(JSON.parse(readFileSync('tokenizer_config.json', 'utf8')));
   * ```
   */
  static fromTokenizerConfig(config: Record<string, unknown>): ChatTemplate {
    if (config === null || typeof config !== 'object' || Array.isArray(config)) throw v.typeError('config', 'a tokenizer_config.json object', config);
    const options = { bosToken: tokenText(config['bos_token']), eosToken: tokenText(config['eos_token']) };
    const raw = config['chat_template'];
    let source: unknown = raw;
    if (Array.isArray(raw)) source = (raw as Array<{ name?: unknown; template?: unknown }>).find((t) => t?.name === 'default')?.template;
    if (source === undefined || source === null) return new ChatTemplate(FALLBACK_SOURCE, options);
    if (typeof source !== 'string' || source === '') throw v.typeError('config.chat_template', "a Jinja string or a list of { name, template } with a 'default'", raw);
    return new ChatTemplate(source, options);
  }

  /**
   * The template of a model folder: its `tokenizer_config.json` (see
   * {@link ChatTemplate.fromTokenizerConfig}), or a `chat_template.jinja` file beside it, which
   * newer exports use; the fallback template when there is neither.
   *
   * @param dir The model folder.
   * @returns The template.
   * @throws Error naming the file when it is not valid JSON.
   *
   * @example
   * ```ts
   * const t = ChatTemplate.fromModelDir('./models/tiny');
   * ```
   */
  static fromModelDir(dir: string): ChatTemplate {
    v.nonEmptyString('dir', dir);
    let config: Record<string, unknown> = {};
    const path = join(dir, 'tokenizer_config.json');
    let text: string | undefined;
    try {
      text = readFileSync(path, 'utf8');
    } catch {
      // No tokenizer_config.json: the fallback (or chat_template.jinja) applies.
    }
    if (text !== undefined) {
      try {
        config = JSON.parse(text) as Record<string, unknown>;
      } catch (err) {
        throw new Error(`${path} is not valid JSON: ${(err as Error).message}`);
      }
    }
    if (config['chat_template'] === undefined) {
      try {
        config = { ...config, chat_template: readFileSync(join(dir, 'chat_template.jinja'), 'utf8') };
      } catch {
        // Neither: the fallback.
      }
    }
    return ChatTemplate.fromTokenizerConfig(config);
  }

  /**
   * Renders `messages` into the prompt text.
   *
   * @param messages The chat, checked: each `{ role: 'system' | 'user' | 'assistant', content: string }`.
   * @param options `addGenerationPrompt` (default `true`) ends the text where the assistant's reply begins.
   * @returns The text to continue.
   * @throws TypeError / RangeError naming the bad message field (`messages[1].role`); Error
   * with the template's message when rendering fails (a template's `raise_exception`).
   *
   * @example
   * ```ts
   * const prompt = template.render([{ role: 'user', content: 'Hello' }]);
   * const r = await model.generate(prompt, { maxTokens: 64 });
   * ```
   */
  render(
    messages: readonly ChatMessage[],
    options: {
      /** End with the assistant's turn opened; default `true`. */
      addGenerationPrompt?: boolean;
    } = {},
  ): string {
    checkMessages('messages', messages);
    const o = v.options<{ addGenerationPrompt?: boolean }>('options', options, ['addGenerationPrompt']);
    const add = o.addGenerationPrompt === undefined ? true : v.boolean('options.addGenerationPrompt', o.addGenerationPrompt);
    let text: string;
    try {
      text = this.#template.render({
        messages: messages.map((m) => ({ role: m.role, content: m.content })),
        add_generation_prompt: add,
        bos_token: this.#bos,
        eos_token: this.#eos,
      });
    } catch (err) {
      throw new Error(`The chat template failed to render: ${(err as Error).message}`);
    }
    return this.#bos !== '' && text.startsWith(this.#bos) ? text.slice(this.#bos.length) : text;
  }
}

/** A special token in tokenizer_config.json: a string, or an AddedToken object `{ content }`. */
function tokenText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value !== null && typeof value === 'object' && typeof (value as { content?: unknown }).content === 'string') return (value as { content: string }).content;
  return '';
}

/** Checks a chat: a non-empty array of `{ role, content }`, naming the bad field. */
export function checkMessages(name: string, messages: unknown): ChatMessage[] {
  if (!Array.isArray(messages)) throw v.typeError(name, 'a non-empty array of messages', messages);
  if (messages.length === 0) throw v.rangeError(name, 'a non-empty array of messages', messages);
  messages.forEach((m: unknown, i) => {
    const at = `${name}[${i}]`;
    if (m === null || typeof m !== 'object' || Array.isArray(m)) throw v.typeError(at, 'a message object { role, content }', m);
    const msg = m as Record<string, unknown>;
    v.oneOf(`${at}.role`, msg['role'], ROLES);
    v.string(`${at}.content`, msg['content']);
  });
  return messages as ChatMessage[];
}
