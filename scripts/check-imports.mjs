#!/usr/bin/env node
// Checks the direction of imports, file by file (a test: command 2 runs it, and it exits 1 on a
// violation):
//
// - src/: the crate is layered (src/lib.rs). A file may import from its own layer or a lower one,
//   never a higher one, and no files may import each other in a cycle, inside a layer or across:
//
//       bin/ (the CLI) → app/ → rlhf/ → engine/ → error.rs, rng.rs, clock.rs (foundations)
//
//   An import is any path a file names: `use` trees (`crate::`, `super::`, `self::`, a child
//   module, `rlhf_lab::` in the CLI) and paths written inline in the code (`crate::a::b`),
//   test modules included. Comments and string literals are skipped. A path resolves to the
//   file that defines what it names: through modules, and through `pub use` re-exports to
//   where the item really lives (`use crate::rlhf::task::Tokenizer` is an import of
//   rlhf/task/tokenizer.rs, not of the folder's mod.rs). lib.rs only declares the layers and
//   is left out.
// - www/: no cycle among the page's ES modules (static `import … from`, `export … from`, and
//   dynamic `import()` of relative paths; www/pkg, the generated bindings, is left out).
//
// `--edges` prints every import found, as `from -> to`.
import { readFileSync, readdirSync, statSync, existsSync } from 'node:fs';
import { join, relative, dirname, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const showEdges = process.argv.includes('--edges');

function walk(dir, keep) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...walk(path, keep));
    else if (keep(path)) out.push(path);
  }
  return out;
}

// ---- Rust ----

/** The code of a Rust file with comments, strings and char literals blanked (positions kept). */
function codeOnly(text) {
  let out = '';
  let i = 0;
  const n = text.length;
  const blank = (s) => s.replace(/[^\n]/g, ' ');
  while (i < n) {
    const c = text[i];
    const next = text[i + 1];
    if (c === '/' && next === '/') {
      const end = text.indexOf('\n', i);
      const stop = end < 0 ? n : end;
      out += blank(text.slice(i, stop));
      i = stop;
    } else if (c === '/' && next === '*') {
      let depth = 1;
      let j = i + 2;
      while (j < n && depth > 0) {
        if (text[j] === '/' && text[j + 1] === '*') { depth++; j += 2; } else if (text[j] === '*' && text[j + 1] === '/') { depth--; j += 2; } else j++;
      }
      out += blank(text.slice(i, j));
      i = j;
    } else if ((c === 'r' || (c === 'b' && next === 'r')) && /^b?r#*"/.test(text.slice(i, i + 12)) && !/\w/.test(text[i - 1] ?? '')) {
      const m = /^b?r(#*)"/.exec(text.slice(i));
      const close = `"${m[1]}`;
      const end = text.indexOf(close, i + m[0].length);
      const stop = end < 0 ? n : end + close.length;
      out += blank(text.slice(i, stop));
      i = stop;
    } else if (c === '"') {
      let j = i + 1;
      while (j < n && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      out += blank(text.slice(i, j + 1));
      i = j + 1;
    } else if (c === "'") {
      const m = /^'(?:\\(?:x[0-9a-fA-F]{2}|u\{[0-9a-fA-F]+\}|.)|[^\\'\n])'/.exec(text.slice(i, i + 14));
      if (m) { out += blank(m[0]); i += m[0].length; } else { out += c; i++; }
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

/** `a::{b, c::{d, e as f}}` → [['a','b'], ['a','c','d'], ['a','c','e']] (aliases dropped). */
function expandTree(tree) {
  tree = tree.replace(/\s+/g, '');
  const brace = tree.indexOf('{');
  if (brace < 0) return [tree.split(' as ')[0].replace(/as\w+$/, '').split('::').filter(Boolean)];
  const prefix = tree.slice(0, brace).split('::').filter(Boolean);
  const inner = tree.slice(brace + 1, tree.lastIndexOf('}'));
  const parts = [];
  let depth = 0;
  let current = '';
  for (const ch of inner) {
    if (ch === '{') depth++;
    if (ch === '}') depth--;
    if (ch === ',' && depth === 0) { parts.push(current); current = ''; } else current += ch;
  }
  parts.push(current);
  return parts.filter((p) => p.length).flatMap((p) => expandTree(p).map((segs) => [...prefix, ...segs]));
}

function rustGraph() {
  const src = join(root, 'src');
  const files = walk(src, (p) => p.endsWith('.rs'));
  // A module is named by its path from its crate's root: the library (src/lib.rs) or a binary
  // (src/bin/<name>/main.rs). `crate` is the crate the file is in; `lib` is the library.
  const crateOf = (file) => {
    const rel = relative(src, file).split(sep);
    return rel[0] === 'bin' ? `bin/${rel[1].replace(/\.rs$/, '')}` : 'lib';
  };
  const modulePath = (file) => {
    let rel = relative(src, file).replace(/\.rs$/, '').split(sep);
    if (rel[0] === 'bin') rel = rel.slice(2);
    if (['mod', 'lib', 'main'].includes(rel.at(-1))) rel = rel.slice(0, -1);
    return rel;
  };
  const key = (crate, segs) => `${crate}:${segs.join('::')}`;
  const fileOf = new Map(files.map((f) => [key(crateOf(f), modulePath(f)), f]));
  const code = new Map(files.map((f) => [f, codeOnly(readFileSync(f, 'utf8'))]));

  // Inline modules (`mod tests { … }`): their ranges, so `super::` inside them is read right.
  const inlineModules = (text) => {
    const ranges = [];
    for (const m of text.matchAll(/\bmod\s+(\w+)\s*\{/g)) {
      let depth = 0;
      let j = m.index + m[0].length - 1;
      for (; j < text.length; j++) {
        if (text[j] === '{') depth++;
        else if (text[j] === '}' && --depth === 0) break;
      }
      ranges.push({ name: m[1], start: m.index, end: j });
    }
    return ranges;
  };

  // Every `use` of a file, as absolute segment paths of its crate (or of the library, for
  // `rlhf_lab::`), with whether it is a re-export.
  const usesOf = new Map();
  const scopeAt = (file, ranges, at) => [...modulePath(file), ...ranges.filter((r) => r.start < at && at < r.end).map((r) => r.name)];
  const absolute = (file, scope, segs) => {
    const crate = crateOf(file);
    if (segs[0] === 'crate') return { crate, segs: segs.slice(1) };
    if (segs[0] === 'rlhf_lab') return { crate: 'lib', segs: segs.slice(1) };
    if (segs[0] === 'self') return { crate, segs: [...scope, ...segs.slice(1)] };
    if (segs[0] === 'super') {
      let base = scope;
      let rest = segs;
      while (rest[0] === 'super') { base = base.slice(0, -1); rest = rest.slice(1); }
      return { crate, segs: [...base, ...rest] };
    }
    // A relative path: a child module of the current module (2018 paths), else another crate.
    if (fileOf.has(key(crate, [...scope, segs[0]]))) return { crate, segs: [...scope, ...segs] };
    return null;
  };
  for (const file of files) {
    const text = code.get(file);
    const ranges = inlineModules(text);
    const uses = [];
    for (const m of text.matchAll(/(\bpub(?:\s*\([^)]*\))?\s+)?\buse\s+([^;]+);/g)) {
      const scope = scopeAt(file, ranges, m.index);
      for (const segs of expandTree(m[2])) {
        const abs = absolute(file, scope, segs);
        if (abs) uses.push({ ...abs, reexport: Boolean(m[1]) && scope.length === modulePath(file).length, at: m.index });
      }
    }
    // Paths written inline in the code.
    for (const m of text.matchAll(/(?<![\w:])(crate|super|self|rlhf_lab)((?:::\w+)+)/g)) {
      const before = text.slice(Math.max(0, m.index - 400), m.index);
      if (/\buse\s+[^;]*$/.test(before)) continue; // inside a use tree: counted above
      const scope = scopeAt(file, ranges, m.index);
      const abs = absolute(file, scope, [m[1], ...m[2].split('::').filter(Boolean)]);
      if (abs) uses.push({ ...abs, reexport: false, at: m.index });
    }
    usesOf.set(file, uses);
  }

  // The file that defines what `segs` names, following modules and re-exports.
  const resolvePath = (crate, segs, depth = 0) => {
    let module = [];
    for (let i = 0; i < segs.length; i++) {
      const child = [...module, segs[i]];
      if (fileOf.has(key(crate, child))) { module = child; continue; }
      if (segs[i] === 'self') continue;
      const here = fileOf.get(key(crate, module));
      if (depth < 16 && here) {
        for (const u of usesOf.get(here) ?? []) {
          if (u.reexport && u.segs.at(-1) === segs[i]) return resolvePath(u.crate, u.segs, depth + 1);
        }
      }
      return here;
    }
    return fileOf.get(key(crate, module));
  };

  const edges = new Map(files.map((f) => [f, new Set()]));
  for (const file of files) {
    for (const u of usesOf.get(file)) {
      const target = resolvePath(u.crate, u.segs);
      if (target && target !== file) edges.get(file).add(target);
    }
  }
  const lib = join(src, 'lib.rs');
  edges.delete(lib);
  for (const set of edges.values()) set.delete(lib);
  return { edges, name: (f) => relative(src, f) };
}

/** Where a file of src/ sits in the layering, lowest first. */
const LAYERS = ['foundations', 'engine', 'rlhf', 'app', 'bin'];
function layerOf(name) {
  const top = name.split(sep)[0];
  if (['engine', 'rlhf', 'app', 'bin'].includes(top)) return top;
  if (['error.rs', 'rng.rs', 'clock.rs'].includes(top)) return 'foundations';
  return null;
}

// ---- JavaScript ----

function jsGraph() {
  const www = join(root, 'www');
  const files = walk(www, (p) => p.endsWith('.js') && !relative(www, p).startsWith(`pkg${sep}`) && !relative(www, p).startsWith(`public${sep}`));
  const edges = new Map(files.map((f) => [f, new Set()]));
  for (const file of files) {
    const text = readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
    const specs = [
      ...text.matchAll(/\bimport\s+(?:[\w*{}\s,$]+\s+from\s+)?['"](\.{1,2}\/[^'"]+)['"]/g),
      ...text.matchAll(/\bexport\s+[\w*{}\s,$]+\s+from\s+['"](\.{1,2}\/[^'"]+)['"]/g),
      ...text.matchAll(/\bimport\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)/g),
    ].map((m) => m[1]);
    for (const spec of specs) {
      const target = resolve(dirname(file), spec);
      if (target.endsWith('.js') && existsSync(target) && edges.has(target)) edges.get(file).add(target);
    }
  }
  return { edges, name: (f) => relative(www, f) };
}

// ---- cycles: strongly connected components (Tarjan) ----

function cycles(edges) {
  const index = new Map();
  const low = new Map();
  const stack = [];
  const onStack = new Set();
  const found = [];
  let counter = 0;
  const visit = (v) => {
    index.set(v, counter);
    low.set(v, counter++);
    stack.push(v);
    onStack.add(v);
    for (const w of edges.get(v) ?? []) {
      if (!index.has(w)) { visit(w); low.set(v, Math.min(low.get(v), low.get(w))); } else if (onStack.has(w)) low.set(v, Math.min(low.get(v), index.get(w)));
    }
    if (low.get(v) === index.get(v)) {
      const component = [];
      let w;
      do { w = stack.pop(); onStack.delete(w); component.push(w); } while (w !== v);
      if (component.length > 1) found.push(component);
    }
  };
  for (const v of edges.keys()) if (!index.has(v)) visit(v);
  return found;
}

/** One path around a cycle inside `component`, for the message. */
function loopThrough(component, edges) {
  const inside = new Set(component);
  const start = component[0];
  const previous = new Map([[start, null]]);
  const queue = [start];
  while (queue.length) {
    const v = queue.shift();
    for (const w of edges.get(v)) {
      if (!inside.has(w)) continue;
      if (w === start) {
        const path = [v];
        for (let p = previous.get(v); p; p = previous.get(p)) path.unshift(p);
        return [...path, start];
      }
      if (!previous.has(w)) { previous.set(w, v); queue.push(w); }
    }
  }
  return component;
}

const problems = [];
let total = 0;
for (const [label, { edges, name }] of [['src', rustGraph()], ['www', jsGraph()]]) {
  let count = 0;
  for (const [from, targets] of edges) {
    for (const to of targets) {
      count++;
      if (showEdges) console.log(`${label}/${name(from)} -> ${label}/${name(to)}`);
      if (label !== 'src') continue;
      const [a, b] = [layerOf(name(from)), layerOf(name(to))];
      if (!a || !b) problems.push(`src/${name(from)} -> src/${name(to)}: a file outside the layers (${LAYERS.join(', ')})`);
      else if (LAYERS.indexOf(b) > LAYERS.indexOf(a)) problems.push(`src/${name(from)} (${a}) imports src/${name(to)} (${b}): imports point down, ${LAYERS.slice().reverse().join(' → ')}`);
    }
  }
  total += count;
  for (const component of cycles(edges)) {
    problems.push(`${label}/: an import cycle: ${loopThrough(component, edges).map((f) => name(f)).join(' → ')}${component.length > 2 ? ` (${component.length} files in all: ${component.map(name).sort().join(', ')})` : ''}`);
  }
  console.error(`[imports] ${label}/: ${edges.size} files, ${count} imports between them`);
}
if (problems.length) {
  for (const p of problems) console.error(`[imports] ${p}`);
  console.error(`[imports] ${problems.length} problem${problems.length === 1 ? '' : 's'}`);
  process.exit(1);
}
console.error(`[imports] no cycle, and every import of src/ points down its layers (${total} imports checked)`);
