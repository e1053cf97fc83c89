/**
 * Router profiles for experts named only by their specialization.
 * @module
 */
import { DEFAULT_EXPERTS, type ExpertProfile } from '../routing/index';

/**
 * The profile of an expert of `specialization`: the seed expert of that domain (python, sql,
 * javascript, debug, ml, api) when there is one — its words are what queries are matched on —
 * else the specialization's words (`quantum_physics` → `quantum physics`) as description and
 * keyword. Explicit `description` / `keywords` replace the defaults.
 */
export function specializationProfile(
  id: string,
  specialization: string,
  extra: { description?: string; keywords?: string[]; capacity?: number },
): ExpertProfile {
  const seed = DEFAULT_EXPERTS.find((e) => e.domain === specialization);
  const words = specialization.replace(/[_\-]+/g, ' ').trim() || specialization;
  const profile: ExpertProfile = {
    id,
    domain: specialization,
    description: extra.description ?? seed?.description ?? words,
    keywords: extra.keywords ?? (seed?.keywords ? [...seed.keywords] : [words]),
  };
  if (seed?.name !== undefined) profile.name = seed.name;
  if (extra.capacity !== undefined) profile.capacity = extra.capacity;
  return profile;
}
