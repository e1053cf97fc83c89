/**
 * Argument checks of {@link BudgetForcing}: budget definitions and requests, each field named in
 * the error by its path.
 * @module
 */
import * as v from '../validate';
import { checkTimeZone } from './periods';
import { type BudgetDefinition, type BudgetRequest, type BudgetScope, EnforcementLevel, ResourceType } from './types';

export const OPTION_KEYS = ['enforcementLevel', 'store', 'onStoreError', 'overdraft', 'budgets', 'sweepIntervalMs', 'sessionTtlMs', 'onViolation', 'onAlert', 'now', 'maxUnreconciled'];
const SCOPES: readonly BudgetScope[] = ['request', 'session', 'daily', 'weekly', 'monthly'];
export const RESOURCES = Object.values(ResourceType) as ResourceType[];
export const LEVELS = Object.values(EnforcementLevel) as EnforcementLevel[];

/** A budget definition, normalised; errors name `budget.<field>`. */
export function checkDefinition(d: unknown): BudgetDefinition {
  const o = v.options<BudgetDefinition>('budget', d, ['resourceType', 'scope', 'limit', 'requesterId', 'shared', 'softThreshold', 'timeZone']);
  if (d === undefined) throw v.typeError('budget', 'a budget definition', d);
  const def: BudgetDefinition = {
    resourceType: v.oneOf('budget.resourceType', o.resourceType, RESOURCES),
    scope: v.oneOf('budget.scope', o.scope, SCOPES),
    limit: v.finite('budget.limit', o.limit, { min: 0 }),
  };
  if (o.requesterId !== undefined) def.requesterId = v.nonEmptyString('budget.requesterId', o.requesterId);
  if (o.shared !== undefined) def.shared = v.boolean('budget.shared', o.shared);
  if (o.softThreshold !== undefined) {
    const t = v.finite('budget.softThreshold', o.softThreshold, { positive: true });
    if (t > 1) throw v.rangeError('budget.softThreshold', 'fraction in (0, 1]', t);
    def.softThreshold = t;
  }
  if (o.timeZone !== undefined) {
    if (typeof o.timeZone !== 'string') throw v.typeError('budget.timeZone', 'IANA time zone string', o.timeZone);
    def.timeZone = checkTimeZone('budget.timeZone', o.timeZone);
  }
  return def;
}

/** A budget request, normalised; errors name `request.<field>`. */
export function checkRequest(r: unknown): BudgetRequest {
  const o = v.options<BudgetRequest>('request', r, ['resourceType', 'requestedAmount', 'priority', 'estimatedDuration', 'requesterId', 'justification', 'sessionId']);
  if (r === undefined) throw v.typeError('request', 'a budget request', r);
  const req: BudgetRequest = {
    resourceType: v.oneOf('request.resourceType', o.resourceType, RESOURCES),
    requestedAmount: v.finite('request.requestedAmount', o.requestedAmount, { positive: true }),
    priority: v.integer('request.priority', o.priority, 0, 10),
    estimatedDuration: v.finite('request.estimatedDuration', o.estimatedDuration, { positive: true }),
    requesterId: v.nonEmptyString('request.requesterId', o.requesterId),
  };
  if (o.justification !== undefined) req.justification = v.string('request.justification', o.justification);
  if (o.sessionId !== undefined) req.sessionId = v.nonEmptyString('request.sessionId', o.sessionId);
  return req;
}

