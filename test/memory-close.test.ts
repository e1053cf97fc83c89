import { describe, expect, it } from 'vitest';
import { ClosedError, type MemAgent, type MemAgentOptions, MemoryPriority, MemoryType } from '../src/index';
import { describeBackends } from './support/postgres-server';

describeBackends('MemAgent.close', (backend) => {
  const open = (o: MemAgentOptions = {}) => backend.open({ sweepIntervalMs: 0, ...o });

  it('is idempotent: every call gets the first one\'s promise', async () => {
    const m = await open();
    const first = m.close();
    expect(m.close()).toBe(first);
    await first;
    await expect(m.close()).resolves.toBeUndefined();
  });

  it('fails every later call with ClosedError("MemAgent is closed")', async () => {
    const m = await open();
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
    await expect(m.getHistory(id)).rejects.toBeInstanceOf(ClosedError);
    await expect(m.refresh()).rejects.toBeInstanceOf(ClosedError);
    expect(() => m.getMetrics()).toThrow(ClosedError);
  });

  it('rejects a search whose store closed while its query was being embedded', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const m = await open({
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
      await using memory = await open();
      m = memory;
      await memory.storeMemory('scoped', MemoryType.WORKING, MemoryPriority.LOW);
    }
    expect(() => m.getMetrics()).toThrow(ClosedError);
  });
});
