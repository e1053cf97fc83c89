import { describe, expect, it } from 'vitest';

import { PendingDecisions } from '../src/experts/routing/pending-decisions';

const feats = (x: number, dims = 4) => Float32Array.from({ length: dims }, (_, i) => x + i / 10);

describe('PendingDecisions', () => {
  it('keeps a decision with a copy of its features and counts its request in flight', () => {
    const ledger = new PendingDecisions(4, 8, 1_000);
    const f = feats(1);
    const p = ledger.add('d1', 'sql', ['python'], f, 0);
    f.fill(9); // the caller's array is not held
    expect(ledger.get('d1')).toBe(p);
    expect(p).toMatchObject({ expertId: 'sql', fallbacks: ['python'], at: 0, open: true, calls: 0 });
    expect([...ledger.features(p)]).toEqual([...feats(1)]);
    expect(ledger.inFlight('sql')).toBe(1);
    expect(ledger.inFlight('python')).toBe(0);
    ledger.release(p);
    ledger.release(p); // once only
    expect(p.open).toBe(false);
    expect(ledger.inFlight('sql')).toBe(0);
    ledger.close('d1', p);
    expect(ledger.get('d1')).toBeUndefined();
    expect(ledger.size).toBe(0);
  });

  it('reuses the row of a closed decision without touching the others', () => {
    const ledger = new PendingDecisions(4, 8, 1_000);
    const a = ledger.add('a', 'x', [], feats(1), 0);
    const b = ledger.add('b', 'x', [], feats(2), 0);
    ledger.close('a', a);
    const c = ledger.add('c', 'y', [], feats(3), 0);
    expect(c.slot).toBe(a.slot);
    expect([...ledger.features(b)]).toEqual([...feats(2)]);
    expect([...ledger.features(c)]).toEqual([...feats(3)]);
    expect(ledger.inFlight('x')).toBe(1);
  });

  it('expires past the TTL and beyond the cap, oldest first, skipping closed and held decisions', () => {
    const ledger = new PendingDecisions(2, 3, 100);
    const a = ledger.add('a', 'x', [], feats(0, 2), 0);
    const b = ledger.add('b', 'x', [], feats(0, 2), 10);
    ledger.add('c', 'x', [], feats(0, 2), 20);
    ledger.close('b', b);
    ledger.hold(a);
    ledger.expire(105); // a is past its TTL but held
    expect(ledger.get('a')).toBe(a);
    expect(ledger.get('c')).toBeDefined();
    ledger.unhold('a', a); // the run ends: so does the decision
    expect(ledger.get('a')).toBeUndefined();
    ledger.add('d', 'x', [], feats(0, 2), 110);
    ledger.add('e', 'x', [], feats(0, 2), 111);
    ledger.add('f', 'x', [], feats(0, 2), 112);
    ledger.expire(112); // c is past its TTL; then d goes, the oldest beyond the cap
    expect(['c', 'd', 'e', 'f'].map((id) => ledger.get(id) !== undefined)).toEqual([false, false, true, true]);
    expect(ledger.inFlight('x')).toBe(2);
  });

  it('grows its features past the cap while held decisions need it', () => {
    const ledger = new PendingDecisions(3, 2, 1_000);
    const held = Array.from({ length: 5 }, (_, i) => {
      const p = ledger.add(`d${i}`, 'x', [], feats(i, 3), i);
      ledger.hold(p);
      ledger.expire(i);
      return p;
    });
    expect(ledger.size).toBe(5);
    held.forEach((p, i) => expect([...ledger.features(p)]).toEqual([...feats(i, 3)]));
  });

  it('agrees with a plain list over many decisions (order compaction included)', () => {
    const ledger = new PendingDecisions(1, 64, 500);
    const open: Array<{ id: string; at: number }> = [];
    let seed = 3;
    const random = () => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
    let now = 0;
    for (let i = 0; i < 20_000; i++) {
      now += Math.floor(random() * 20);
      ledger.expire(now);
      while (open.length > 0 && (now - open[0]!.at >= 500 || open.length >= 64)) open.shift();
      ledger.add(`d${i}`, 'x', [], new Float32Array([i]), now);
      open.push({ id: `d${i}`, at: now });
      if (random() < 0.7) {
        const [done] = open.splice(Math.floor(random() * open.length), 1);
        ledger.close(done!.id, ledger.get(done!.id)!);
      }
      expect(ledger.size).toBe(open.length);
    }
    for (const { id } of open) expect(ledger.features(ledger.get(id)!)[0]).toBe(Number(id.slice(1)));
    expect(ledger.inFlight('x')).toBe(open.length);
  });
});
