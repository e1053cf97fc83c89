import { describe, expect, it } from 'vitest';
import { ClosedError, MemAgent, MemoryPriority, MemoryType } from '../src/index';

const open = () => new MemAgent({ sweepIntervalMs: 0 });

describe('MemAgent.close', () => {
  it('is idempotent: every call gets the first one\'s promise', async () => {
    const m = open();
    const first = m.close();
    expect(m.close()).toBe(first);
    await first;
    await expect(m.close()).resolves.toBeUndefined();
  });

  it('fails every later call with ClosedError("MemAgent is closed")', async () => {
    const m = open();
    const id = await m.storeMemory('kept until close', MemoryType.SEMANTIC, MemoryPriority.LOW);
    await m.close();
    const closed = new ClosedError('MemAgent');
    expect(closed.message).toBe('MemAgent is closed');
    await expect(m.storeMemory('x', MemoryType.SEMANTIC, MemoryPriority.LOW)).rejects.toThrow(closed);
    await expect(m.storeMemory('x', MemoryType.SEMANTIC, MemoryPriority.LOW)).rejects.toBeInstanceOf(ClosedError);
    await expect(m.updateMemory(id, { pinned: true })).rejects.toBeInstanceOf(ClosedError);
    await expect(m.deleteMemory(id)).rejects.toBeInstanceOf(ClosedError);
    await expect(m.retrieveMemory({})).rejects.toBeInstanceOf(ClosedError);
    await expect(m.sweep()).rejects.toBeInstanceOf(ClosedError);
    expect(() => m.getMemory(id)).toThrow(closed);
    expect(() => m.history(id)).toThrow(ClosedError);
    expect(() => m.getMetrics()).toThrow(ClosedError);
  });

  it('rejects a search whose store closed while its query was being embedded', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const m = new MemAgent({
      sweepIntervalMs: 0,
      embedder: { dimensions: 2, embed: async (texts) => { await gate; return texts.map(() => Float32Array.of(1, 0)); } },
    });
    const search = m.retrieveMemory({ queryText: 'anything' });
    await m.close();
    release();
    await expect(search).rejects.toThrow(new ClosedError('MemAgent'));
  });

  it('closes through await using (Symbol.asyncDispose)', async () => {
    let m: MemAgent | undefined;
    {
      await using memory = open();
      m = memory;
      await memory.storeMemory('scoped', MemoryType.WORKING, MemoryPriority.LOW);
    }
    expect(() => m.getMetrics()).toThrow(ClosedError);
  });
});
