/**
 * The one listener policy in the control plane: a listener that throws never changes what the
 * caller gets; its error goes to the 'error' listeners, else to process.emitWarning. Events of a
 * lifecycle pass are held back until the pass ends.
 */
import { EventEmitter } from 'node:events';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { DeferredEvents } from '../src/experts/control/deferred-events';
import { type ExpertProfile, MoEControlAPI } from '../src/index';

const ABC: ExpertProfile[] = [
  { id: 'a', domain: 'alpha', description: 'alpha questions', keywords: ['alpha'], capacity: 1 },
  { id: 'b', domain: 'beta', description: 'beta questions', keywords: ['beta'], capacity: 1 },
  { id: 'c', domain: 'gamma', description: 'gamma questions', keywords: ['gamma'], capacity: 1 },
];

afterEach(() => {
  vi.restoreAllMocks();
});

describe('DeferredEvents', () => {
  it('emits at once outside a pass, and holds a pass’s events until it ends, in order', () => {
    const emitter = new EventEmitter();
    const seen: string[] = [];
    emitter.on('x', (n: number) => seen.push(`x${n}`));
    const events = new DeferredEvents(emitter);
    events.emit('x', 1);
    expect(seen).toEqual(['x1']);
    const out = events.hold(() => {
      events.emit('x', 2);
      events.hold(() => events.emit('x', 3)); // a nested pass belongs to the outer one
      expect(seen).toEqual(['x1']);
      return 'done';
    });
    expect(out).toBe('done');
    expect(seen).toEqual(['x1', 'x2', 'x3']);
  });

  it('still emits what a failed pass did, then lets its error through', () => {
    const emitter = new EventEmitter();
    const seen: number[] = [];
    emitter.on('x', (n: number) => seen.push(n));
    const events = new DeferredEvents(emitter);
    expect(() =>
      events.hold(() => {
        events.emit('x', 1);
        throw new Error('pass failed');
      }),
    ).toThrow(new Error('pass failed'));
    expect(seen).toEqual([1]);
    events.emit('x', 2);
    expect(seen).toEqual([1, 2]);
  });
});

describe('MoEControlAPI listeners', () => {
  it('a throwing listener changes nothing for createExpert, retireExpert, mergeExperts or applyAllocationPlan', () => {
    const control = new MoEControlAPI({ routerOptions: { experts: ABC } });
    const errors: string[] = [];
    control.on('error', (e: Error) => errors.push(e.message));
    for (const event of ['created', 'retired', 'merged', 'allocated']) {
      control.on(event, () => {
        throw new Error(`${event} listener bug`);
      });
    }
    const late: string[] = [];
    control.on('created', (e) => late.push(e.id)); // still called
    expect(control.createExpert({ specialization: 'delta', baseModel: 'm' })).toMatchObject({ id: 'delta', status: 'active' });
    expect(control.retireExpert('c')).toMatchObject({ id: 'c', status: 'retired' });
    expect(control.mergeExperts(['a', 'b'])).toMatchObject({ id: 'a', replicas: 2 });
    control.applyAllocationPlan({ replicas: { a: 3 }, retire: [] });
    expect(control.getExpert('a').replicas).toBe(3);
    expect(late).toEqual(['delta']);
    expect(errors).toEqual(['created listener bug', 'retired listener bug', 'merged listener bug', 'allocated listener bug']);
    control.close();
  });

  it("with no 'error' listener, a listener's error becomes a process warning", () => {
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => {});
    const control = new MoEControlAPI({ routerOptions: { experts: ABC } });
    control.on('retired', () => {
      throw new Error('retired listener bug');
    });
    expect(control.retireExpert('a')).toMatchObject({ id: 'a', status: 'retired' });
    expect(warn.mock.calls.map((c) => c[0])).toEqual(["a 'retired' listener threw: retired listener bug"]);
    control.close();
  });

  it('holds a lifecycle pass’s events until the pass is over: listeners see the pool as the pass left it', () => {
    let now = 1_000_000;
    const control = new MoEControlAPI({ now: () => now, routerOptions: { experts: ABC, clock: () => now } });
    control.enableDynamicManagement({ idleMs: 10_000, maxFailureRate: false, mergeOverlap: false, driftThreshold: false });
    control.disableDynamicManagement();
    const seen: string[] = [];
    control.on('retired', (e) => seen.push(`${e.id}: ${control.getAllExperts().map((x) => x.id).join(',')}`));
    control.on('lifecycle', (r) => seen.push(`lifecycle ${r.retired.length}`));
    control.router.routeQuery('beta beta');
    now += 20_000;
    control.router.routeQuery('beta beta');
    control.runLifecycle();
    // Both retirements were made before the first listener ran.
    expect(seen).toEqual(['a: b', 'c: b', 'lifecycle 2']);
    control.close();
  });
});
