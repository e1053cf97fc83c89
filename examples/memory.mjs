// MemAgent: store typed, tagged, scoped memories in a SQLite file, retrieve them under a token
// budget with filters, see why each ranked where it did, and reopen the file. Then the MemAgent
// paper's reading loop over a long document with a local model (the tiny test model: its
// "memory" is noise, the loop and its accounting are real).
// Run: node examples/memory.mjs
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemAgent, MemAgentReader, MemoryPriority, MemoryType, OnnxCausalLM } from '@capibara/core';
import { makeTinyModel } from '@capibara/core/testing';

const dir = mkdtempSync(join(tmpdir(), 'capibara-memory-example-'));
const path = join(dir, 'memory.db');

let memory = new MemAgent({ path, compression: 'lz4' });
await memory.storeMemory('The user prefers metric units and short answers', MemoryType.SEMANTIC, MemoryPriority.HIGH, ['prefs'], { scope: { userId: 'u1' } });
await memory.storeMemory('Never deploy on Fridays', MemoryType.PROCEDURAL, MemoryPriority.CRITICAL, ['ops'], { pinned: true });
await memory.storeMemory('The user asked about capybara diets on Monday', MemoryType.EPISODIC, MemoryPriority.LOW, ['chat'], {
  scope: { userId: 'u1' }, metadata: { topic: 'animals', turn: 3 }, ttl: 7 * 86_400_000,
});
// An exact duplicate (case and spacing aside) is merged, not stored twice.
await memory.storeMemory('the user prefers METRIC units and short answers', MemoryType.SEMANTIC, MemoryPriority.MEDIUM, ['style'], { scope: { userId: 'u1' } });

const r = await memory.retrieveMemory({ queryText: 'what units does the user like?', scope: { userId: 'u1' }, maxTokens: 200 });
for (const c of r.chunks) {
  const e = c.explain;
  console.log(`${c.score.toFixed(3)}  ${c.content}  [bm25 ${e.bm25.weighted.toFixed(2)}, vector ${e.vector.weighted.toFixed(2)}, recency ${e.recency.weighted.toFixed(2)}, importance ${e.importance.weighted.toFixed(2)}]`);
}
console.log(`${r.chunks.length} chunks, ${r.totalTokens} tokens, ${r.searchTimeMs.toFixed(2)} ms`);
const filtered = await memory.retrieveMemory({ filter: { AND: [{ topic: 'animals' }, { turn: { gte: 2 } }] } });
console.log('metadata filter:', filtered.chunks.map((c) => c.content));
await memory.close();

memory = new MemAgent({ path }); // everything is still there
const m = memory.getMetrics();
console.log(`reopened: ${m.items} items, ${m.tokensUsed}/${m.tokensAvailable} tokens, by type ${JSON.stringify(m.itemsByType)}`);

// The MemAgent reading loop: chunk by chunk, overwriting a bounded memory, then answering.
const { dir: modelDir } = await makeTinyModel(join(dir, 'tiny'));
const model = await OnnxCausalLM.load(modelDir, { threads: 2 });
const reader = new MemAgentReader({ generator: model, chunkTokens: 256, memoryTokens: 32, answerMaxTokens: 16, temperature: 0 });
const document = Array.from({ length: 12 }, (_, i) => `Paragraph ${i}: capybaras graze near rivers and rest in the shade.`).join('\n');
const read = await reader.read(document, 'Where do capybaras graze?');
console.log(`read ${read.steps.length} chunks, ${read.generatedTokens} tokens generated; final memory ${JSON.stringify(read.memory.slice(0, 60))}…`);
await memory.storeMemory(read.memory, MemoryType.WORKING, MemoryPriority.MEDIUM, ['reader']);

await model.close();
await memory.close();
rmSync(dir, { recursive: true, force: true });
