/**
 * Options of the control plane: router options are checked where the caller wrote them
 * (options.routerOptions.…), and the replica split shared through the router stays out of sight.
 */
import { describe, expect, it } from 'vitest';
import { type ExpertProfile, MoEControlAPI, RewiringExperts } from '../src/index';

const ABC: ExpertProfile[] = [
  { id: 'a', domain: 'alpha', description: 'alpha questions', keywords: ['alpha'], capacity: 1 },
  { id: 'b', domain: 'beta', description: 'beta questions', keywords: ['beta'], capacity: 1 },
];

describe('MoEControlAPI router options', () => {
  it('names every router option under options.routerOptions', () => {
    expect(() => new MoEControlAPI({ routerOptions: 5 as never })).toThrow(new TypeError('Expected an options object for options.routerOptions but received 5 of type number'));
    expect(() => new MoEControlAPI({ routerOptions: 'ab' as never })).toThrow(new TypeError("Expected an options object for options.routerOptions but received 'ab' of type string"));
    expect(() => new MoEControlAPI({ routerOptions: { maxFallbacks: 17 } })).toThrow(
      new RangeError('Expected integer in [0, 16] for options.routerOptions.maxFallbacks but received 17 of type number'),
    );
    expect(() => new MoEControlAPI({ routerOptions: { health: { failureRate: 2 } } })).toThrow(
      new RangeError('Expected number in [0, 1] for options.routerOptions.health.failureRate but received 2 of type number'),
    );
    expect(() => new MoEControlAPI({ routerOptions: { experts: [{ ...ABC[0]!, id: '' }] } })).toThrow(/ for options\.routerOptions\.experts\[0\]\.id /);
    expect(() => new MoEControlAPI({ routerOptions: { speed: 1 } as never })).toThrow(/^Unknown option 'speed' in options\.routerOptions /);
  });

  it("gives a router it builds the control plane's clock, unless the router options name one", () => {
    let now = 5_000;
    const control = new MoEControlAPI({ now: () => now, routerOptions: { experts: ABC } });
    control.router.routeQuery('alpha alpha');
    now += 1_000;
    expect(control.getExpertStatus().experts[0]!.lastUsedAt).toBe(5_000);
    control.close();
  });
});

describe('replica splits', () => {
  it('ride on the router unseen: no enumerable key, nothing in its JSON', () => {
    const router = new RewiringExperts({ experts: ABC.map((p) => ({ ...p, capacity: 2 })) });
    const keys = Object.keys(router);
    const control = new MoEControlAPI({ router });
    control.applyAllocationPlan({ replicas: { a: 3 }, retire: [] });
    expect(Object.keys(router)).toEqual(keys);
    control.close();
    const again = new MoEControlAPI({ router });
    expect(again.getExpert('a')).toMatchObject({ capacity: 2, replicas: 3 });
    again.close();
  });
});
