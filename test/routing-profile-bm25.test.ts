import { describe, expect, it } from 'vitest';

import { ProfileBm25 } from '../src/experts/routing/profile-bm25';
import { Bm25Index, tokenize } from '../src/text/index';

// Reference: a fresh index over the same texts, asked for the whole query.
function expected(texts: Map<number, string>, docs: number[], query: string): number[] {
  const index = new Bm25Index();
  for (const [doc, text] of texts) index.add(doc, text);
  const hits = index.search(query);
  return docs.map((d) => hits.get(d) ?? 0);
}

describe('ProfileBm25', () => {
  it('scores as the index does over the profile texts, through adds, replacements and removals', () => {
    const bm25 = new ProfileBm25();
    const texts = new Map<number, string>();
    const steps: Array<[number, string | null]> = [
      [0, 'sql. Writes SQL queries, joins and indexes. join. index'],
      [1, 'python. pandas DataFrame groupby, numpy arrays. pandas'],
      [2, 'debug. Stack traces, segfaults and gdb breakpoints'],
      [1, 'python. Django views and database models. django'],
      [0, null],
      [3, 'uses中 databases. A word holding two terms'],
    ];
    const queries = ['slow join on the database index', 'pandas groupby', 'gdb segfault stack trace', 'uses中 databases', 'nothing matches here'];
    for (const [doc, text] of steps) {
      if (text === null) {
        bm25.remove(doc);
        texts.delete(doc);
      } else {
        bm25.set(doc, text);
        texts.set(doc, text);
      }
      const docs = [...texts.keys()].sort((a, b) => b - a); // any row order
      for (const q of queries) {
        const got = [...bm25.scores(q, tokenize(q), docs, new Float64Array(docs.length))];
        const want = expected(texts, docs, q);
        got.forEach((x, r) => expect(x).toBeCloseTo(want[r]!, 12));
      }
    }
  });
});
