/**
 * `capibara serve`: a local ONNX model (`--model DIR`), or the pipeline a config file
 * describes (`--config FILE`), behind the OpenAI-compatible server, until SIGINT / SIGTERM.
 * @module
 * @internal
 */
import { statSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { OnnxCausalLM } from '../llm/index';
import { CapibaraMetrics } from '../metrics/index';
import { buildPipeline, ChatTemplate, loadPipelineConfig, type ServerConfig } from '../pipeline/index';
import { type CompletionsServer, type CompletionsServerOptions, createCompletionsServer, createPipelineServer } from '../serve/index';
import * as v from '../validate';
import { int, UsageError } from './args';

/** The options of `capibara serve` as commander parses them (all strings). */
export interface ServeFlags {
  model?: string;
  config?: string;
  port?: string;
  host?: string;
  threads?: string;
  name?: string;
  apiKey?: string;
  maxQueue?: string;
  maxPrompts?: string;
  maxRequestTokens?: string;
  headersTimeout?: string;
  requestTimeout?: string;
}

interface ServePlan {
  dir: string | undefined;
  config: string | undefined;
  port: number | undefined;
  host: string | undefined;
  threads: number | undefined;
  name: string | undefined;
  server: Partial<CompletionsServerOptions>;
}

/** Checks the flags (exit 2 on a bad one) before anything is loaded. */
export function servePlan(f: ServeFlags): ServePlan {
  if (f.model === undefined && f.config === undefined) throw new UsageError('serve needs --model DIR or --config FILE');
  if (f.model !== undefined && f.config !== undefined) throw new UsageError('serve takes --model DIR or --config FILE, not both');
  if (f.model !== undefined && !isDirectory(f.model)) throw new UsageError(`--model: no folder at ${f.model}`);
  if (f.config !== undefined && f.threads !== undefined) throw new UsageError('--threads is for --model; a config sets threads per expert');
  if (f.host !== undefined) v.nonEmptyString('--host', f.host);
  if (f.name !== undefined) v.nonEmptyString('--name', f.name);
  const apiKey = f.apiKey ?? (process.env['CAPIBARA_API_KEY'] || undefined);
  if (apiKey !== undefined) v.nonEmptyString('--api-key', apiKey);
  const server: Partial<CompletionsServerOptions> = {};
  const set = <K extends keyof CompletionsServerOptions>(k: K, x: CompletionsServerOptions[K] | undefined) => {
    if (x !== undefined) server[k] = x;
  };
  set('apiKey', apiKey);
  set('maxQueue', int('--max-queue', f.maxQueue, 0, 1_000_000));
  set('maxPromptsPerRequest', int('--max-prompts', f.maxPrompts, 1, 1_000_000));
  set('maxTokensPerRequest', int('--max-request-tokens', f.maxRequestTokens, 1, 2 ** 31 - 1));
  set('headersTimeoutMs', int('--headers-timeout', f.headersTimeout, 1, 2 ** 31 - 1));
  set('requestTimeoutMs', int('--request-timeout', f.requestTimeout, 1, 2 ** 31 - 1));
  return {
    dir: f.model,
    config: f.config,
    port: int('--port', f.port, 0, 65535),
    host: f.host,
    threads: int('--threads', f.threads, 1, 256),
    name: f.name,
    server,
  };
}

/** Loads, listens, waits for a signal, closes. Resolves with the exit code. */
export async function serve(p: ServePlan): Promise<number> {
  let server: CompletionsServer;
  let release: () => Promise<void>;
  let port: number;
  let host: string;
  let what: string;
  if (p.dir !== undefined) {
    let model: OnnxCausalLM;
    try {
      // OnnxCausalLM loads ONNX Runtime only in load(), so `--help` and argument errors stay cheap.
      model = await OnnxCausalLM.load(p.dir, p.threads === undefined ? {} : { threads: p.threads });
    } catch (err) {
      process.stderr.write(`capibara serve: cannot load the model in ${p.dir}: ${(err as Error).message ?? String(err)}\n`);
      return 1;
    }
    const name = p.name ?? basename(resolve(p.dir));
    server = createCompletionsServer(model, { model: name, chatTemplate: ChatTemplate.fromModelDir(p.dir), ...p.server });
    release = () => model.close();
    port = p.port ?? 8000;
    host = p.host ?? '127.0.0.1';
    what = `model ${name}`;
  } else {
    let cfg: ServerConfig;
    try {
      const { config, baseDir } = await loadPipelineConfig(p.config!);
      const metrics = new CapibaraMetrics({ defaultMetrics: true });
      const built = await buildPipeline(config, { baseDir, metrics });
      cfg = built.server;
      const { host: h, port: pt, ...rest } = cfg;
      const name = p.name ?? cfg.model ?? 'capibara';
      server = createPipelineServer(built.pipeline, { ...rest, model: name, metrics, ...p.server });
      release = () => built.close();
      port = p.port ?? pt ?? 8000;
      host = p.host ?? h ?? '127.0.0.1';
      what = `pipeline ${name} (experts: ${built.pipeline.expertIds.join(', ')})`;
    } catch (err) {
      // A bad config is a usage error: it names the key.
      if (err instanceof TypeError || err instanceof RangeError) throw new UsageError(`--config ${p.config}: ${err.message}`);
      process.stderr.write(`capibara serve: ${(err as Error).message ?? String(err)}\n`);
      return 1;
    }
  }
  try {
    await server.listen(port, host);
  } catch (err) {
    process.stderr.write(`capibara serve: cannot listen on ${host}:${port}: ${(err as Error).message}\n`);
    await server.close();
    await release();
    return 1;
  }
  process.stdout.write(`capibara serve: ${what} on ${server.url}\n`);
  const signal = await new Promise<NodeJS.Signals>((done) => {
    process.once('SIGINT', () => done('SIGINT'));
    process.once('SIGTERM', () => done('SIGTERM'));
  });
  // A second signal while closing means: stop now.
  const force = () => process.exit(1);
  process.once('SIGINT', force).once('SIGTERM', force);
  process.stdout.write(`capibara serve: ${signal}, closing\n`);
  await server.close();
  await release();
  return 0;
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}
