// Reads a V8 heap snapshot (.heapsnapshot, as CDP HeapProfiler.takeHeapSnapshot writes it) into
// accessors over its flat arrays, and sorts its bytes into what the page's code keeps and what the
// engine keeps (scripts/heap-diff.mjs and scripts/soak.mjs use it).
import { readFile } from 'node:fs/promises';

export async function loadSnapshot(file) {
  const raw = JSON.parse(await readFile(file, 'utf8'));
  const { meta } = raw.snapshot;
  const nf = meta.node_fields;
  const ef = meta.edge_fields;
  const N = nf.length;
  const E = ef.length;
  const nodeTypes = meta.node_types[0];
  const edgeTypes = meta.edge_types[0];
  const f = Object.fromEntries(nf.map((k, i) => [k, i]));
  const g = Object.fromEntries(ef.map((k, i) => [k, i]));
  const { nodes, edges, strings } = raw;
  const count = nodes.length / N;
  const firstEdge = new Uint32Array(count + 1);
  for (let i = 0, e = 0; i < count; i += 1) { firstEdge[i] = e; e += nodes[i * N + f.edge_count] * E; firstEdge[i + 1] = e; }
  const type = (i) => nodeTypes[nodes[i * N + f.type]];
  const name = (i) => strings[nodes[i * N + f.name]];
  const id = (i) => nodes[i * N + f.id];
  const size = (i) => nodes[i * N + f.self_size];
  const group = (i) => {
    const t = type(i);
    if (t === 'string' || t === 'concatenated string' || t === 'sliced string') return `${t}`;
    if (t === 'number') return 'number (heap number)';
    if (t === 'closure') return `closure ${name(i) || '(anonymous)'}`;
    if (t === 'object' || t === 'native') return `${t} ${name(i)}`;
    return `${t} ${name(i).slice(0, 60)}`;
  };
  const edgeName = (e) => {
    const t = edgeTypes[edges[e + g.type]];
    const n = edges[e + g.name_or_index];
    return t === 'element' || t === 'hidden' ? `[${n}]` : `${strings[n]}`;
  };
  const edgeType = (e) => edgeTypes[edges[e + g.type]];
  const target = (e) => edges[e + g.to_node] / N;
  return { count, type, name, id, size, group, edgeName, edgeType, target, firstEdge, strings };
}

/**
 * Where a node's bytes belong: 'js objects' (what the page's code allocates and keeps: objects,
 * closures and their scopes, arrays, strings, numbers), 'v8 code and metadata' (bytecode, the
 * JIT's compiled code, feedback, maps: it grows while functions tier up, and shrinks when unused
 * bytecode is flushed) or 'blink (native)' (DOM, layout, performance entries: Blink's own heap, not
 * in V8's used size).
 */
export function category(S, i) {
  const t = S.type(i);
  const n = S.name(i);
  if (t === 'synthetic') return 'synthetic';
  if (n.startsWith('system / Context')) return 'js objects';
  if (t === 'code' || t === 'hidden' || t === 'object shape' || n.startsWith('system /')) return 'v8 code and metadata';
  if (t === 'native') return 'blink (native)';
  return 'js objects';
}

/** {category: {count, bytes}} over a snapshot. */
export function byCategory(S) {
  const out = {};
  for (let i = 0; i < S.count; i += 1) {
    const k = category(S, i);
    const t = (out[k] ??= { count: 0, bytes: 0 });
    t.count += 1;
    t.bytes += S.size(i);
  }
  return out;
}
