// Compares two V8 heap snapshots of the same page (taken in one session, e.g. by
// `node scripts/soak.mjs --heap-snapshots 10,end`): what the later one holds that the earlier did
// not. Node ids are stable within a session, so "new" is exact: the objects of B whose id A lacks,
// i.e. allocated between the two snapshots and still retained at the second.
//
//   node scripts/heap-diff.mjs A.heapsnapshot B.heapsnapshot [--top 25] [--paths 3] [--match NAME]
//
// Prints: the bytes of each snapshot by category (the page's JS objects, V8's code and metadata,
// Blink's objects: heap-snapshot.mjs), the new objects grouped by type and constructor (count,
// self bytes), the change in count per constructor between A and B (new minus gone; then the JS
// objects' alone: a leak in the page's code shows there), and for the largest groups a few
// retainer paths, each from a new object up to the GC root along the shortest strong path
// (`--match` prints paths for the groups whose name contains NAME, instead).
import { loadSnapshot, byCategory } from './heap-snapshot.mjs';

const argv = process.argv.slice(2);
const files = argv.filter((a, i) => !a.startsWith('--') && !(i > 0 && argv[i - 1].startsWith('--')));
const opt = (name, fallback) => { const i = argv.indexOf(`--${name}`); return i >= 0 ? argv[i + 1] : fallback; };
if (files.length !== 2) {
  console.error('usage: node scripts/heap-diff.mjs A.heapsnapshot B.heapsnapshot [--top 25] [--paths 3] [--match NAME]');
  process.exit(2);
}
const TOP = Number(opt('top', 25));
const PATHS = Number(opt('paths', 3));
const MATCH = opt('match', null);

const [A, B] = await Promise.all(files.map(loadSnapshot));
const idsA = new Set();
for (let i = 0; i < A.count; i += 1) idsA.add(A.id(i));
const idsB = new Set();
for (let i = 0; i < B.count; i += 1) idsB.add(B.id(i));

// Totals per group in each snapshot, and what is new in B.
const tally = (S) => {
  const m = new Map();
  for (let i = 0; i < S.count; i += 1) {
    const k = S.group(i);
    const t = m.get(k) ?? { count: 0, bytes: 0 };
    t.count += 1; t.bytes += S.size(i);
    m.set(k, t);
  }
  return m;
};
const [tA, tB] = [tally(A), tally(B)];
const fresh = new Map(); // group -> {count, bytes, nodes: []}
for (let i = 0; i < B.count; i += 1) {
  if (idsA.has(B.id(i))) continue;
  const k = B.group(i);
  const t = fresh.get(k) ?? { count: 0, bytes: 0, nodes: [] };
  t.count += 1; t.bytes += B.size(i);
  if (t.nodes.length < 200) t.nodes.push(i);
  fresh.set(k, t);
}
const totalBytes = (S) => { let s = 0; for (let i = 0; i < S.count; i += 1) s += S.size(i); return s; };
const [bytesA, bytesB] = [totalBytes(A), totalBytes(B)];
const kib = (b) => `${(b / 1024).toFixed(1)} KiB`;
console.log(`A: ${files[0]}: ${A.count} nodes, ${kib(bytesA)}`);
console.log(`B: ${files[1]}: ${B.count} nodes, ${kib(bytesB)}  (${B.count - A.count >= 0 ? '+' : ''}${B.count - A.count} nodes, ${bytesB - bytesA >= 0 ? '+' : ''}${kib(bytesB - bytesA)})`);

// Where the bytes are (heap-snapshot.mjs `category`): what the page's code keeps, V8's code and
// metadata, Blink's objects (not in V8's used heap size).
const [cA, cB] = [byCategory(A), byCategory(B)];
console.log('\nby category, A → B:');
for (const k of new Set([...Object.keys(cA), ...Object.keys(cB)])) {
  const a = cA[k] ?? { count: 0, bytes: 0 };
  const b = cB[k] ?? { count: 0, bytes: 0 };
  console.log(`  ${k.padEnd(22)} ${String(a.count).padStart(7)} → ${String(b.count).padEnd(7)} ${kib(a.bytes).padStart(11)} → ${kib(b.bytes).padEnd(11)} (${b.bytes - a.bytes >= 0 ? '+' : ''}${kib(b.bytes - a.bytes)})`);
}

const newCount = [...fresh.values()].reduce((n, t) => n + t.count, 0);
const newBytes = [...fresh.values()].reduce((n, t) => n + t.bytes, 0);
console.log(`\nnew in B (not in A, still retained): ${newCount} objects, ${kib(newBytes)}; by group, largest first:`);
const byBytes = [...fresh].sort((a, b) => b[1].bytes - a[1].bytes).slice(0, TOP);
for (const [k, t] of byBytes) console.log(`  ${String(t.count).padStart(7)}  ${kib(t.bytes).padStart(12)}  ${k}`);

console.log('\nchange in count per group, A → B (both directions), largest first:');
const keys = new Set([...tA.keys(), ...tB.keys()]);
const deltas = [...keys].map((k) => {
  const a = tA.get(k) ?? { count: 0, bytes: 0 };
  const b = tB.get(k) ?? { count: 0, bytes: 0 };
  return { k, a: a.count, b: b.count, d: b.count - a.count, db: b.bytes - a.bytes };
}).filter((x) => x.d !== 0).sort((x, y) => Math.abs(y.db) - Math.abs(x.db));
const jsGroup = (k) => /^(object|closure|array|string|concatenated string|sliced string|number|regexp|bigint|symbol) /.test(`${k} `) && !k.includes('system /');
const printDeltas = (list) => { for (const x of list) console.log(`  ${String(x.a).padStart(7)} → ${String(x.b).padEnd(7)} ${(x.d > 0 ? '+' : '') + x.d}`.padEnd(34) + `${((x.db > 0 ? '+' : '') + kib(x.db)).padStart(13)}  ${x.k}`); };
printDeltas(deltas.slice(0, TOP));
console.log('\nthe same, JS objects only (what the page\'s code allocates):');
printDeltas(deltas.filter((x) => jsGroup(x.k)).slice(0, TOP));

// Retainer paths in B: the shortest strong path from the root (node 0), by BFS over non-weak edges.
const parent = new Int32Array(B.count).fill(-1);
const parentEdge = new Int32Array(B.count).fill(-1);
parent[0] = 0;
let queue = [0];
while (queue.length) {
  const next = [];
  for (const i of queue) {
    for (let e = B.firstEdge[i]; e < B.firstEdge[i + 1]; e += 3) {
      if (B.edgeType(e) === 'weak') continue;
      const j = B.target(e);
      if (parent[j] !== -1) continue;
      parent[j] = i; parentEdge[j] = e;
      next.push(j);
    }
  }
  queue = next;
}
const label = (i) => `${B.group(i)}${B.type(i) === 'string' ? ` "${B.name(i).slice(0, 40)}"` : ''} @${B.id(i)}`;
function pathOf(i) {
  const steps = [];
  for (let k = i, guard = 0; k !== 0 && guard < 40; k = parent[k], guard += 1) {
    if (parent[k] === -1) { steps.push(`${label(k)} (no strong path from the root)`); break; }
    steps.push(`${label(k)}  ←.${B.edgeName(parentEdge[k])}─`);
  }
  steps.push('(root)');
  return steps;
}
const chosen = MATCH ? [...fresh].filter(([k]) => k.includes(MATCH)) : byBytes.slice(0, 8);
console.log(`\nretainer paths (new object first, up to the root) for ${MATCH ? `groups matching "${MATCH}"` : 'the largest new groups'}:`);
for (const [k, t] of chosen) {
  console.log(`\n== ${k}: ${t.count} new`);
  // Paths that differ in their first few steps, so that distinct owners show.
  const seen = new Set();
  let shown = 0;
  for (const i of t.nodes) {
    const p = pathOf(i);
    const key = p.slice(1, 6).map((s) => s.replace(/@\d+/g, '')).join('|');
    if (seen.has(key)) continue;
    seen.add(key);
    console.log(p.map((s, n) => `${'  '.repeat(Math.min(n, 12))}${s}`).join('\n'));
    if (++shown >= PATHS) break;
  }
}
