/**
 * One way to close across the control plane: idempotent close(), [Symbol.asyncDispose], and
 * ClosedError after it; children closed with the control plane; views only from a control plane.
 */
import { describe, expect, it } from 'vitest';
import { TrafficLedger } from '../src/experts/control/traffic-ledger';
import { ClosedError, ExpertCoordinator, ExpertMetricsCollector, ExpertMonitor, type ExpertProfile, MoEControlAPI, RewiringExperts } from '../src/index';

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
