/**
 * The import graph of src/ (docs/ARCHITECTURE.md): no cycles, type-only imports included;
 * each part imports only parts of lower layers; another part is reached through its index.ts.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = join(__dirname, '..', 'src');

// Layer of each part; a part is the first folder under src/ (two under experts/). Foundation
// modules sit directly in src/ or in toolkit/ and onnx/ and may import one another.
const LAYERS: Record<string, number> = {
  foundation: 0,
  text: 1,
  'experts/gating': 2,
  attention: 1,
  llm: 2,
  memory: 3,
  budget: 3,
  'experts/routing': 3,
  'experts/control': 4,
  thinking: 4,
  pipeline: 5,
  metrics: 5,
  serve: 6,
  cli: 7,
  index: 8,
};

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

function partOf(file: string): string {
  const parts = relative(SRC, file).split('/');
  if (parts.length === 1) return parts[0] === 'index.ts' ? 'index' : 'foundation';
  if (parts[0] === 'toolkit' || parts[0] === 'onnx') return 'foundation';
  return parts[0] === 'experts' ? `experts/${parts[1]}` : parts[0]!;
}

// Every `import … from './x'`, `export … from './x'` and `import('./x')`, resolved to a file.
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  const specs = [...text.matchAll(/(?:^|[\s;])(?:import|export)\s[^'";]*?from\s*'(\.[^']+)'|import\(\s*'(\.[^']+)'\s*\)/g)].map((m) => m[1] ?? m[2]!);
  return specs.map((s) => {
    const base = join(dirname(file), s);
    const candidates = [`${base}.ts`, join(base, 'index.ts'), base];
    const found = candidates.find((c) => ALL.has(c));
    if (found === undefined) throw new Error(`${relative(SRC, file)} imports '${s}', which is not a file of src/`);
    return found;
  });
}

const ALL = new Set(files(SRC));
const GRAPH = new Map([...ALL].map((f) => [f, importsOf(f)]));
const rel = (f: string): string => relative(SRC, f);

describe('import graph of src/', () => {
  it('every part has a layer', () => {
    const unknown = [...new Set([...ALL].map(partOf))].filter((p) => !(p in LAYERS));
    expect(unknown).toEqual([]);
  });

  it('has no cycles', () => {
    const cycles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const stack: string[] = [];
    const visit = (f: string): void => {
      state.set(f, 'open');
      stack.push(f);
      for (const t of GRAPH.get(f)!) {
        if (state.get(t) === 'open') cycles.push([...stack.slice(stack.indexOf(t)), t].map(rel).join(' -> '));
        else if (!state.has(t)) visit(t);
      }
      stack.pop();
      state.set(f, 'done');
    };
    for (const f of ALL) if (!state.has(f)) visit(f);
    expect(cycles).toEqual([]);
  });

  it('imports only go down the layers', () => {
    const upward: string[] = [];
    for (const [f, targets] of GRAPH) {
      const from = partOf(f);
      for (const t of targets) {
        const to = partOf(t);
        if (to !== from && !(LAYERS[to]! < LAYERS[from]!)) upward.push(`${rel(f)} (${from}) -> ${rel(t)} (${to})`);
      }
    }
    expect(upward).toEqual([]);
  });

  it("reaches another part only through that part's index.ts", () => {
    const internal: string[] = [];
    for (const [f, targets] of GRAPH) {
      const from = partOf(f);
      for (const t of targets) {
        const to = partOf(t);
        if (to === from || to === 'foundation' || from === 'index') continue;
        const index = join(SRC, to, 'index.ts');
        if (t !== index) internal.push(`${rel(f)} -> ${rel(t)}`);
      }
    }
    expect(internal).toEqual([]);
  });
});
