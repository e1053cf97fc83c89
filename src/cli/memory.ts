/**
 * `capibara memory import` (text files into a MemAgent file, chunked by paragraphs, with a
 * progress bar) and `capibara memory query` (a retrieval, ranked, with its scores).
 * @module
 * @internal
 */
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { MemAgent, MemoryPriority, type MemoryScope, MemoryType } from '../memory/index';
import * as v from '../validate';
import { int, ms, UsageError } from './args';
import { ProgressBar } from './progress';

/** The options of `capibara memory import`. */
export interface ImportFlags {
  db?: string;
  user?: string;
  type?: string;
  priority?: string;
  tags?: string;
  chunkChars?: string;
}

/** The options of `capibara memory query`. */
export interface QueryFlags {
  db?: string;
  user?: string;
  topK?: string;
  maxTokens?: string;
  json?: boolean;
}

const PRIORITIES: Record<string, MemoryPriority> = { low: MemoryPriority.LOW, medium: MemoryPriority.MEDIUM, high: MemoryPriority.HIGH, critical: MemoryPriority.CRITICAL };

function db(f: { db?: string }): string {
  if (f.db === undefined) throw new UsageError('memory needs --db FILE (the MemAgent SQLite file)');
  return v.nonEmptyString('--db', f.db);
}

/** Paragraphs of `text`, packed into chunks of at most `max` characters (a longer paragraph is split at `max`). */
export function chunks(text: string, max: number): string[] {
  const out: string[] = [];
  let cur = '';
  for (const para of text.split(/\n\s*\n/).map((p) => p.trim()).filter((p) => p !== '')) {
    for (let i = 0; i < para.length; i += max) {
      const piece = para.slice(i, i + max);
      if (cur !== '' && cur.length + 2 + piece.length > max) {
        out.push(cur);
        cur = '';
      }
      cur = cur === '' ? piece : `${cur}\n\n${piece}`;
    }
  }
  if (cur !== '') out.push(cur);
  return out;
}

export async function importFiles(files: string[], f: ImportFlags): Promise<number> {
  const path = db(f);
  if (files.length === 0) throw new UsageError('memory import needs at least one file');
  const type = (f.type === undefined ? MemoryType.SEMANTIC : v.oneOf('--type', f.type, Object.values(MemoryType))) as MemoryType;
  const priority = f.priority === undefined ? MemoryPriority.MEDIUM : PRIORITIES[v.oneOf('--priority', f.priority, Object.keys(PRIORITIES))]!;
  const tags = f.tags === undefined ? [] : f.tags.split(',').map((t) => t.trim()).filter((t) => t !== '');
  const max = int('--chunk-chars', f.chunkChars, 64) ?? 2000;
  const scope: MemoryScope = f.user === undefined ? {} : { userId: v.nonEmptyString('--user', f.user) };
  const texts: Array<{ file: string; parts: string[] }> = [];
  for (const file of files) {
    try {
      texts.push({ file, parts: chunks(await readFile(file, 'utf8'), max) });
    } catch (err) {
      process.stderr.write(`capibara memory import: cannot read ${file}: ${(err as Error).message}\n`);
      return 1;
    }
  }
  const total = texts.reduce((a, t) => a + t.parts.length, 0);
  const memory = new MemAgent({ path, sweepIntervalMs: 0 });
  try {
    const bar = new ProgressBar('memory import', total);
    let done = 0;
    const before = memory.getMetrics().items;
    for (const { file, parts } of texts) {
      for (const [i, part] of parts.entries()) {
        await memory.storeMemory(part, type, priority, tags, { scope, metadata: { source: basename(file), chunk: i } });
        bar.update(++done);
      }
    }
    bar.finish();
    const m = memory.getMetrics();
    process.stdout.write(
      `capibara memory import: ${total} chunks from ${files.length} file${files.length === 1 ? '' : 's'} → ${m.items - before} new items (${m.merged} merged as duplicates); ` +
        `${m.items} items, ${m.tokensUsed} tokens in ${path} (${m.compression.ratio.toFixed(2)}× ${m.compression.codec})\n`,
    );
    return 0;
  } finally {
    await memory.close();
  }
}

export async function query(text: string, f: QueryFlags): Promise<number> {
  const path = db(f);
  v.nonEmptyString('query', text);
  const topK = int('--top-k', f.topK, 1) ?? 5;
  const maxTokens = int('--max-tokens', f.maxTokens, 0);
  const memory = new MemAgent({ path, readonly: true, sweepIntervalMs: 0 });
  try {
    const r = await memory.retrieveMemory({
      queryText: text,
      topK,
      ...(maxTokens === undefined ? {} : { maxTokens }),
      ...(f.user === undefined ? {} : { scope: { userId: v.nonEmptyString('--user', f.user) } }),
    });
    if (f.json) {
      process.stdout.write(`${JSON.stringify(r)}\n`);
      return 0;
    }
    process.stdout.write(`capibara memory query: ${r.chunks.length} of ${r.candidates} candidates, ${r.totalTokens} tokens, ${ms(r.searchTimeMs)}\n`);
    for (const [i, c] of r.chunks.entries()) {
      const line = c.content.replace(/\s+/g, ' ');
      process.stdout.write(`${i + 1}. [${c.score.toFixed(3)}] ${line.length > 160 ? `${line.slice(0, 160)}…` : line}  (${String(c.metadata['source'] ?? c.type)})\n`);
    }
    return 0;
  } finally {
    await memory.close();
  }
}
