// Resource budgets: a daily token budget per user, a shared monthly API-call budget, and a
// per-request cap; reserve -> commit the real use -> the rest returns. HARD enforcement never
// lets concurrent requests overspend. Run: node examples/budgets.mjs   (after `npm ci`)
import { BudgetForcing, EnforcementLevel, ResourceType } from '@capibara/core';

const budgets = new BudgetForcing({
  enforcementLevel: EnforcementLevel.HARD,
  budgets: [
    { resourceType: ResourceType.TOKENS, scope: 'daily', limit: 10_000, softThreshold: 0.8, timeZone: 'Europe/Madrid' },
    { resourceType: ResourceType.TOKENS, scope: 'request', limit: 4_000 },
    { resourceType: ResourceType.API_CALLS, scope: 'monthly', limit: 1_000, shared: true },
  ],
});
budgets.on('alert', (a) => console.log(`alert: ${a.requesterId} is at ${(a.fraction * 100).toFixed(0)} % of '${a.budgetId}'`));

// 20 concurrent chat requests of 1,500 tokens each from one user: only 6 fit in 10,000.
const decisions = await Promise.all(
  Array.from({ length: 20 }, (_, i) =>
    budgets.requestBudget({ resourceType: ResourceType.TOKENS, requestedAmount: 1_500, priority: 1, estimatedDuration: 30, requesterId: 'user_001', justification: `chat ${i}` }),
  ),
);
const approved = decisions.filter((d) => d.approved);
console.log(`approved ${approved.length} of ${decisions.length}; first refusal: ${decisions.find((d) => !d.approved).message}`);

// Each call used less than it reserved: commit the real use, the rest returns to the budget.
for (const d of approved) await budgets.commit(d.allocationId, 900);
const daily = (await budgets.status('user_001')).find((s) => s.budget.resourceType === ResourceType.TOKENS && s.budget.scope === 'daily');
console.log(`user_001 today (${daily.window}): ${daily.committed} committed, ${daily.reserved} reserved of ${daily.limit}; resets ${new Date(daily.resetsAt).toISOString()}`);

const retry = await budgets.requestBudget({ resourceType: ResourceType.TOKENS, requestedAmount: 1_500, priority: 1, estimatedDuration: 30, requesterId: 'user_001' });
console.log(`after the commits returned the rest, a new request is ${retry.approved ? 'approved' : 'denied'}`);

console.log('metrics', await budgets.getMetrics());
await budgets.close();
