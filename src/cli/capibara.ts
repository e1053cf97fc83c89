#!/usr/bin/env node
/**
 * The `capibara` command. `capibara serve --model DIR` serves a local ONNX model over
 * OpenAI's completions API (see createCompletionsServer).
 * Exit codes: 0 done, 1 failure (model load, port bind), 2 bad arguments.
 * @module
 * @internal
 */
import { readFileSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { OnnxCausalLM } from '../llm/index';
import { type CompletionsServerOptions, createCompletionsServer } from '../serve/index';
import * as v from '../validate';

const USAGE = `Usage:
  capibara serve --model DIR [options]   serve a local ONNX model over OpenAI's completions API
  capibara --help | --version

Options of serve:
  --model DIR      model folder (model.onnx, config.json, tokenizer.json)   required
  --port N         TCP port; 0 picks a free one                             default 8000
  --host HOST      interface to bind; 0.0.0.0 for every interface (set an   default 127.0.0.1
                   API key then: anyone who reaches the port can generate)
  --threads N      ONNX Runtime threads                                     default: ONNX Runtime's
  --name NAME      model name clients send                                  default: the folder's name
  --api-key KEY    require 'Authorization: Bearer KEY'                      default: $CAPIBARA_API_KEY, else none
  --max-queue N    requests that may wait while one generates (more: 503)   default 16
  --max-prompts N  prompts one request may carry (more: 400)                default 16
  --max-request-tokens N
                   tokens one request may ask for, prompts x max_tokens     default 65536
`;

const OPTIONS = {
  model: { type: 'string' },
  port: { type: 'string' },
  host: { type: 'string' },
  threads: { type: 'string' },
  name: { type: 'string' },
  'api-key': { type: 'string' },
  'max-queue': { type: 'string' },
  'max-prompts': { type: 'string' },
  'max-request-tokens': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'v' },
} as const;

interface ServeConfig {
  dir: string;
  port: number;
  host: string;
  threads: number | undefined;
  name: string;
  apiKey: string | undefined;
  maxQueue: number | undefined;
  maxPrompts: number | undefined;
  maxRequestTokens: number | undefined;
}

// OnnxCausalLM loads ONNX Runtime only in load(), so `--help` and argument errors stay cheap.
function loadModel(dir: string, threads: number | undefined): Promise<OnnxCausalLM> {
  return OnnxCausalLM.load(dir, threads === undefined ? {} : { threads });
}

class UsageError extends Error {}

async function main(argv: string[]): Promise<number> {
  let config: ServeConfig;
  try {
    const { values, positionals } = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
    if (values.help || values.version) {
      process.stdout.write(values.help ? USAGE : `${version()}\n`);
      return 0;
    }
    const [command, ...extra] = positionals;
    if (command === undefined) throw new UsageError('missing command');
    if (command !== 'serve') throw new UsageError(`unknown command '${command}'`);
    if (extra.length > 0) throw new UsageError(`unexpected argument '${extra[0]}'`);
    config = serveConfig(values);
  } catch (err) {
    // parseArgs reports unknown options and missing values with a TypeError; the validator with TypeError/RangeError.
    if (!(err instanceof UsageError || err instanceof TypeError || err instanceof RangeError)) throw err;
    process.stderr.write(`capibara: ${err.message}\n\n${USAGE}`);
    return 2;
  }
  return serve(config);
}

function serveConfig(values: { [K in keyof typeof OPTIONS]?: string | boolean }): ServeConfig {
  const str = (k: keyof typeof OPTIONS) => values[k] as string | undefined;
  const dir = str('model');
  if (dir === undefined) throw new UsageError('serve needs --model DIR');
  if (!isDirectory(dir)) throw new UsageError(`--model: no folder at ${dir}`);
  const int = (k: keyof typeof OPTIONS, min: number, max: number) => {
    const s = str(k);
    return s === undefined ? undefined : v.integer(`--${k}`, /^-?\d+$/.test(s) ? Number(s) : s, min, max);
  };
  const host = str('host') ?? '127.0.0.1';
  const name = str('name') ?? basename(resolve(dir));
  v.nonEmptyString('--host', host);
  v.nonEmptyString('--name', name);
  const apiKey = str('api-key') ?? (process.env['CAPIBARA_API_KEY'] || undefined);
  if (apiKey !== undefined) v.nonEmptyString('--api-key', apiKey);
  return { dir, port: int('port', 0, 65535) ?? 8000, host, threads: int('threads', 1, 256), name, apiKey,
    maxQueue: int('max-queue', 0, 1_000_000),
    maxPrompts: int('max-prompts', 1, 1_000_000),
    maxRequestTokens: int('max-request-tokens', 1, 2 ** 31 - 1),
  };
}

async function serve(c: ServeConfig): Promise<number> {
  let model: OnnxCausalLM;
  try {
    model = await loadModel(c.dir, c.threads);
  } catch (err) {
    process.stderr.write(`capibara serve: cannot load the model in ${c.dir}: ${(err as Error).message ?? String(err)}\n`);
    return 1;
  }
  const options: CompletionsServerOptions = { model: c.name };
  if (c.apiKey !== undefined) options.apiKey = c.apiKey;
  if (c.maxQueue !== undefined) options.maxQueue = c.maxQueue;
  if (c.maxPrompts !== undefined) options.maxPromptsPerRequest = c.maxPrompts;
  if (c.maxRequestTokens !== undefined) options.maxTokensPerRequest = c.maxRequestTokens;
  const server = createCompletionsServer(model, options);
  try {
    await server.listen(c.port, c.host);
  } catch (err) {
    process.stderr.write(`capibara serve: cannot listen on ${c.host}:${c.port}: ${(err as Error).message}\n`);
    await model.close();
    return 1;
  }
  process.stdout.write(`capibara serve: model ${c.name} on ${server.url}\n`);
  const signal = await new Promise<NodeJS.Signals>((done) => {
    process.once('SIGINT', () => done('SIGINT'));
    process.once('SIGTERM', () => done('SIGTERM'));
  });
  // A second signal while closing means: stop now.
  const force = () => process.exit(1);
  process.once('SIGINT', force).once('SIGTERM', force);
  process.stdout.write(`capibara serve: ${signal}, closing\n`);
  await server.close();
  await model.close();
  return 0;
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function version(): string {
  return (JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string }).version;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // Should anything still hold the event loop after a clean close, exit anyway.
    setTimeout(() => process.exit(code), 5000).unref();
  },
  (err: unknown) => {
    process.stderr.write(`capibara: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
