#!/usr/bin/env node
/**
 * The `capibara` command, parsed by commander: `serve`, `bench`, `demo`, `calibrate`, `memory`
 * (`import`, `query`) and `think`, each with `--help`.
 * Exit codes: 0 done, 1 failure (a model that does not load, a port that cannot be bound, a
 * bad capture file), 2 bad arguments (the reason, then the command's usage, on stderr).
 * @module
 * @internal
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, CommanderError } from 'commander';
import { ROOT, UsageError } from './args';
import { bench } from './bench';
import { calibrate, type CalibrateFlags } from './calibrate';
import { demo, type DemoFlags } from './demo';
import { type ImportFlags, importFiles, query, type QueryFlags } from './memory';
import { serve, type ServeFlags, servePlan } from './serve';
import { think, type ThinkFlags } from './think';

function version(): string {
  return (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
}

/** The program; `run` holds the chosen command's work, run after parsing. */
function program(): { cli: Command; run: { work?: () => Promise<number>; command?: Command } } {
  const run: { work?: () => Promise<number>; command?: Command } = {};
  const cli = new Command('capibara')
    .description('Inference-time optimizations for LLM services: serve a model or a pipeline, run the benchmarks, the demo, DuoAttention calibration, MemAgent files and multi-round thinking.')
    .version(version(), '-v, --version')
    .exitOverride()
    .configureOutput({ writeErr: () => undefined, outputError: () => undefined })
    .helpOption('-h, --help', 'show this help');
  const action = <A extends unknown[]>(f: (...args: A) => Promise<number>) =>
    function (this: Command, ...args: A) {
      run.command = this;
      run.work = () => f(...args);
    };

  cli
    .command('serve')
    .description("Serve a local ONNX model, or the pipeline of a config file, over OpenAI's API (chat, completions, /metrics) until SIGINT or SIGTERM.")
    .option('--model <dir>', 'model folder (model.onnx, config.json, tokenizer.json)')
    .option('--config <file>', 'capibara.config.json: experts, routing, memory, budgets, thinking, server')
    .option('--port <n>', 'TCP port; 0 picks a free one (default 8000, or the config)')
    .option('--host <host>', 'interface to bind; 0.0.0.0 for every interface (set an API key then) (default 127.0.0.1)')
    .option('--threads <n>', "ONNX Runtime threads (--model; default: ONNX Runtime's)")
    .option('--name <name>', "model name clients send (default: the folder's name, or the config's)")
    .option('--api-key <key>', "require 'Authorization: Bearer KEY' (default: $CAPIBARA_API_KEY, else none)")
    .option('--max-queue <n>', 'requests that may wait while an expert generates; more get 503 (default 16)')
    .option('--max-prompts <n>', 'prompts one request may carry; more get 400 (default 16)')
    .option('--max-request-tokens <n>', 'tokens one request may ask for, prompts x max_tokens (default 65536)')
    .option('--headers-timeout <ms>', 'time a client has to send its headers; then 408 (default 10000)')
    .option('--request-timeout <ms>', 'time a client has to send its whole request; then 408 (default 30000)')
    .action(action(async (f: ServeFlags) => serve(servePlan(f))));

  cli
    .command('bench')
    .description('Run the benchmarks (each in a fresh process), printing each table as soon as it is measured, with a progress bar and ETA; results go to bench/results/.')
    .argument('[filters...]', 'run only the bench/*.bench.mjs files whose names contain one of these')
    .option('--quick', 'a short smoke run')
    .action(action(async (filters: string[], f: { quick?: boolean }) => bench(filters, f.quick === true)));

  cli
    .command('demo')
    .description('Run the pipeline end to end: routing, memory, budgets, thinking and metrics, on two experts over the tiny local model, memory in a temporary SQLite file and in-process budgets (or on --config).')
    .option('--config <file>', 'run on the pipeline of this config instead')
    .option('--max-tokens <n>', 'tokens per answer (default 16)')
    .option('--json', 'print each trace as JSON')
    .action(action(async (f: DemoFlags) => demo(f)));

  cli
    .command('calibrate')
    .description('Choose DuoAttention retrieval heads on a Llama-family model (--model DIR --text FILE) or from saved captures: safetensors files with q, k, v of one layer and text each (__metadata__.layer); writes full_attention_heads.tsv and config.json.')
    .argument('[captures...]', 'capture files (or --model and --text)')
    .option('--model <dir>', 'a Hugging Face model folder (config.json, model.safetensors, tokenizer.json) to capture q, k, v on')
    .option('--text <files...>', 'calibration text files (with --model), each longer than sink + recent tokens')
    .option('--out <dir>', 'where the pattern files go (required)')
    .option('--sink <n>', 'sink tokens of a streaming head (default 64)')
    .option('--recent <n>', 'recent tokens of a streaming head (default 256)')
    .option('--ratio <r>', 'share of KV heads kept as retrieval heads, in [0, 1] (default 0.5)')
    .option('--method <m>', 'output-error, attention-mass or both (default output-error)')
    .option('--last-queries <n>', 'score only the last N query positions of each capture')
    .option('--layers <n>', 'layers of the model (default: the highest layer captured + 1)')
    .option('--threads <n>', 'kernel threads (default: every core)')
    .action(action(async (files: string[], f: CalibrateFlags) => calibrate(files, f)));

  const memory = cli.command('memory').description('MemAgent files: import text files, query them.');
  memory
    .command('import')
    .description('Store text files in a MemAgent file, chunked by paragraphs, with a progress bar.')
    .argument('<files...>', 'text files')
    .option('--db <file>', 'the MemAgent SQLite file (required; created if missing)')
    .option('--user <id>', 'owner of the memories (the scope the pipeline reads for that user)')
    .option('--type <type>', 'episodic, semantic, procedural, working or long_term (default semantic)')
    .option('--priority <p>', 'low, medium, high or critical (default medium)')
    .option('--tags <a,b>', 'tags of every chunk')
    .option('--chunk-chars <n>', 'most characters per chunk (default 2000)')
    .action(action(async (files: string[], f: ImportFlags) => importFiles(files, f)));
  memory
    .command('query')
    .description('Retrieve the memories best matching a text, with their scores.')
    .argument('<text>', 'what to look for')
    .option('--db <file>', 'the MemAgent SQLite file (required; opened read-only)')
    .option('--user <id>', "only this user's memories")
    .option('--top-k <n>', 'most results (default 5)')
    .option('--max-tokens <n>', 'token budget of the results')
    .option('--json', 'print the RetrievalResult as JSON')
    .action(action(async (text: string, f: QueryFlags) => query(text, f)));

  cli
    .command('think')
    .description('One multi-round thinking session (Think Twice), printing each round as it ends, then the majority answer.')
    .argument('<problem>', 'the question')
    .option('--config <file>', "think with the config's default expert")
    .option('--model <dir>', 'think with a local ONNX model (default: the tiny test model)')
    .option('--base-url <url>', 'think with an OpenAI-compatible /v1/completions server')
    .option('--remote-model <name>', 'the model name that server expects (with --base-url)')
    .option('--rounds <n>', 'most rounds (default 3)')
    .option('--mode <mode>', 'analytical, creative, critical, intuitive, systematic or adaptive')
    .option('--max-thinking-tokens <n>', 'thinking tokens per round (default 64)')
    .option('--answer-tokens <n>', 'answer tokens per round (default 16)')
    .option('--budget <n>', 'tokens the whole session may spend')
    .option('--temperature <t>', 'sampling temperature (default 0)')
    .option('--store <file>', 'keep the session in this SQLite file (resumable)')
    .action(action(async (problem: string, f: ThinkFlags) => think(problem, f)));
  return { cli, run };
}

/** The subcommand `argv` names (for its usage in an error), else the program. */
function commandOf(cli: Command, argv: string[]): Command {
  let cmd = cli;
  for (const a of argv) {
    if (a.startsWith('-')) continue;
    const sub = cmd.commands.find((c) => c.name() === a);
    if (sub === undefined) break;
    cmd = sub;
  }
  return cmd;
}

async function main(argv: string[]): Promise<number> {
  const { cli, run } = program();
  const usage = (cmd: Command, reason: string) => {
    process.stderr.write(`capibara: ${reason}\n\n${cmd.helpInformation()}`);
    return 2;
  };
  try {
    if (argv.length === 0) throw new UsageError('missing command');
    await cli.parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.exitCode === 0) return 0; // --help, --version
      const cmd = commandOf(cli, argv);
      // A command with subcommands and none given ('capibara memory') gets its help as the error.
      if (err.code === 'commander.help' || err.code === 'commander.helpDisplayed') return usage(cmd, `${cmd.name()} needs a subcommand`);
      return usage(cmd, err.message.replace(/^error: /, ''));
    }
    if (err instanceof UsageError) return usage(cli, err.message);
    throw err;
  }
  if (run.work === undefined) return usage(commandOf(cli, argv), 'missing command');
  try {
    return await run.work();
  } catch (err) {
    // The validator's TypeError/RangeError name the bad option (`--port`); UsageError says what is missing.
    if (err instanceof UsageError || err instanceof TypeError || err instanceof RangeError) return usage(run.command ?? cli, err.message);
    throw err;
  }
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
