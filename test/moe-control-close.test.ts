/**
 * One way to close across the control plane: idempotent close(), [Symbol.asyncDispose], and
 * ClosedError after it; children closed with the control plane; views only from a control plane.
 */
import { describe, expect, it } from 'vitest';
import { TrafficLedger } from '../src/experts/control/traffic-ledger';
import { ClosedError, ExpertCoordinator, ExpertMetricsCollector, ExpertMonitor, type ExpertProfile, MoEControlAPI, RewiringExperts } from '../src/index';
import { hasRedisServer, redisSkipReason, startRedisServer } from './support/redis-server';

const ABC: ExpertProfile[] = [
  { id: 'a', domain: 'alpha', description: 'alpha questions', keywords: ['alpha'], capacity: 1 },
  { id: 'b', domain: 'beta', description: 'beta questions', keywords: ['beta'], capacity: 1 },
];

describe('closing the control plane', () => {
  it('closes its monitors, coordinators and collectors; each refuses later calls with ClosedError', async () => {
    const control = new MoEControlAPI({ routerOptions: { experts: ABC } });
    const monitor = control.createMonitor();
    const coordinator = control.createCoordinator({ monitor });
    const collector = new ExpertMetricsCollector({ control, collectionInterval: 60 });
    await control[Symbol.asyncDispose]();
    expect(control.closed).toBe(true);
    control.close(); // idempotent
    expect(() => control.getAllExperts()).toThrow(new ClosedError('MoEControlAPI'));
    expect(() => monitor.sample()).toThrow(new ClosedError('ExpertMonitor'));
    expect(() => coordinator.optimizeSystemPerformance()).toThrow(new ClosedError('ExpertCoordinator'));
    expect(() => collector.history()).toThrow(new ClosedError('ExpertMetricsCollector'));
    expect(() => control.createMonitor()).toThrow(new ClosedError('MoEControlAPI'));
    expect(control.router.listenerCount('routed')).toBe(0);
  });

  it('closes each child on its own, once, and the control plane forgets it', async () => {
    const control = new MoEControlAPI({ routerOptions: { experts: ABC } });
    const monitor = control.createMonitor();
    const coordinator = control.createCoordinator();
    await monitor[Symbol.asyncDispose]();
    monitor.close();
    await coordinator[Symbol.asyncDispose]();
    expect(() => monitor.analyzeExpertPerformance()).toThrow(ClosedError);
    expect(() => coordinator.enableAutomaticCoordination()).toThrow(ClosedError);
    // The control plane goes on.
    expect(control.createMonitor().sample().routed).toBe(0);
    control.close();

    const router = new RewiringExperts({ experts: ABC });
    const collector = new ExpertMetricsCollector({ router });
    expect(router.listenerCount('routed')).toBe(1);
    await collector[Symbol.asyncDispose]();
    expect(router.listenerCount('routed')).toBe(0);
  });

  it('closes the router it built, and leaves a router it was given open', async () => {
    const own = new MoEControlAPI({ routerOptions: { experts: ABC } });
    own.close();
    expect(() => own.router.routeQuery('alpha')).toThrow(new ClosedError('RewiringExperts'));
    await expect(own.router.close()).resolves.toBeUndefined();
    const router = new RewiringExperts({ experts: ABC });
    const given = new MoEControlAPI({ router });
    await given[Symbol.asyncDispose]();
    expect(router.routeQuery('alpha alpha').expertId).toBe('a');
    await router.close();
  });

  it.skipIf(!hasRedisServer)(`ends the Redis connections of a router it built with sharedState (real redis-server${hasRedisServer ? '' : `; skipped: ${redisSkipReason}`})`, async () => {
    const server = await startRedisServer();
    const { Redis } = await import('ioredis');
    const probe = new Redis(server.url);
    const routing = async () => ((await probe.client('LIST')) as string).split('\n').filter((l) => / name=capibara-routing/.test(l)).length;
    try {
      const control = new MoEControlAPI({ routerOptions: { experts: ABC, sharedState: { url: server.url, prefix: `{control-${process.pid}}:routing:` } } });
      await control.router.sync();
      const d = control.router.routeQuery('alpha alpha');
      control.router.recordOutcome(d.id, { success: true, latencyMs: 5 });
      expect(await control.router.sync()).toBe(true);
      expect(await routing()).toBe(2); // commands and events
      await control[Symbol.asyncDispose]();
      expect(await routing()).toBe(0);
      expect(() => control.router.routeQuery('alpha')).toThrow(new ClosedError('RewiringExperts'));
      await expect(control.router.sync()).rejects.toThrow(new ClosedError('RewiringExperts'));
    } finally {
      probe.disconnect();
      await server.stop();
    }
  });

  it('takes views only from a control plane', () => {
    expect(() => new ExpertMonitor({} as never)).toThrow(new TypeError('Expected MoEControlAPI for control but received object'));
    expect(() => new ExpertCoordinator({ closed: false } as never)).toThrow(new TypeError('Expected MoEControlAPI for control but received object'));
    expect(() => new ExpertMetricsCollector({ control: 7 as never })).toThrow(new TypeError('Expected MoEControlAPI for options.control but received 7 of type number'));
  });
});

describe('ledger taps', () => {
  it('stop counting once closed and refuse to take a window', async () => {
    let now = 0;
    const ledger = new TrafficLedger({ bucketMs: 1000, retainMs: 60_000, now: () => now, domainOf: (id) => id });
    const router = new RewiringExperts({ experts: ABC, clock: () => now });
    ledger.attach(router);
    const tap = ledger.tap(false);
    router.routeQuery('alpha alpha');
    now = 10;
    expect(tap.take(now).routed).toBe(1);
    await tap[Symbol.asyncDispose]();
    tap.close();
    router.routeQuery('alpha alpha');
    expect(() => tap.take(now)).toThrow(new ClosedError('The ledger tap'));
    expect(ledger.totals('a').routed).toBe(2);
  });
});
