// The soak (a command, not a test): the whole pipeline in headless Chromium on the CPU backend,
// round after round, for --minutes, with the training worker's wasm memory and the JS heaps of the
// page and of the worker sampled every --sample-every seconds. After warm-up (the first 10
// minutes, or the first third of a shorter run) none of the three may grow by more than 10%.
//
//   node scripts/soak.mjs [--minutes 60] [--sample-every 60] [--out test-results/soak.json]
//                         [--query 'ppo.iterations=20&…'] [--keep-labels] [--bound 10]
//                         [--variants grpo,reinforce,gspo,rloo] [--heap-snapshots 10,end]
//                         [--js-flags '--no-sparkplug …'] (V8 flags for a diagnosis: see below)
//
// Needs the built page (dist/: `npx vite build`, or scripts/build.sh for the wasm too).
//
// Each round drives the stages' own controllers (`window.__lab.stages`, what "Run everything"
// calls): reset DPO, GRPO, PPO, the reward model, the labels (the page's "Delete all labels?" is
// accepted) and SFT, then start SFT → simulated labels → reward model → PPO → GRPO → DPO, each to
// 'done'. The settings are the defaults made short (SHORT below; --query adds or overrides URL
// settings), so a round takes a few minutes. Each round also takes the next of VARIANTS, applied
// before the resets as the settings form applies a change (setConfig, then `__lab.config`, the URL
// and a 'config-changed' event per key): the GRPO panel runs GRPO, REINFORCE (group of 1), GSPO
// (sequence ratio) and RLOO in turn, and PPO and GRPO train against r_φ, the gold utility or the
// learner's expression (`reward.expression`, its default); --variants picks some, by name. The
// page opens as the full lab (mode=lab), each stage's panel scrolled into view before it starts,
// so that its charts draw. A round under way at the deadline is finished, so the last sample is
// taken at a round's end. Ctrl-C stops early (the stage running is paused) and still
// prints and writes what was measured.
//
// What is sampled, each time after a full garbage collection in both isolates (CDP
// HeapProfiler.collectGarbage), so the heaps are what is retained:
//   wasm    the worker's WebAssembly.Memory size, through `self.__wasmMemoryBytes()`, which
//           www/worker.js defines for this command (the module's memory is not reachable from the
//           worker's global scope otherwise; finding it by prototype with CDP Runtime.queryObjects
//           crashed the renderer mid-training in Chromium 156). A wasm memory only grows: its size
//           is the allocator's high-water mark, and a leak in the core shows as growth here;
//   live    the bytes the core's allocator holds (`self.__wasmHeapLiveBytes()`, the counting
//           allocator of src/app/heap.rs): what a leak raises even when the memory's size stays flat,
//           and what tells a leak from fragmentation when the size steps up. It rises and falls
//           within a round, so it is judged on samples taken between rounds;
//   page    the page's JS heap: CDP Runtime.getHeapUsage on the page (and DOM counters);
//   worker  the worker's JS heap: CDP Runtime.getHeapUsage on the worker target, reached through
//           Target.setAutoAttach on the page's CDP session (messages relayed with
//           Target.sendMessageToTarget: Playwright's CDP sessions cannot address a flat child).
//
// --heap-snapshots a,b,…: a heap snapshot of the page (CDP HeapProfiler.takeHeapSnapshot, after
// the garbage collection of that sample) at the end of those rounds ("end": after the last
// sample), written next to --out as <out>-round-<n>.heapsnapshot (<out>-end.heapsnapshot);
// scripts/heap-diff.mjs compares two (what the later one holds that the earlier did not, by
// constructor, and what retains it), and the summary splits the first and the last into the
// page's JS objects, V8's code and metadata, and Blink's objects (not judged). --js-flags passes
// V8 flags to the browser (both isolates), for a diagnosis only: '--no-sparkplug --no-maglev
// --no-turbofan' keeps the JIT's compiled code out of the heap, to tell its growth from the
// page's objects.
// The exit status is 1 if any of the three grew by more than the bound after warm-up, if a round
// stopped short of 'done', or on any page error, console error or error notice in the page.
import { writeFile, mkdir } from 'node:fs/promises';
import { createWriteStream } from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { serve } from '../tests/e2e/harness.mjs';
import { loadSnapshot, byCategory } from './heap-snapshot.mjs';

// ---- arguments ----
function parseArgs(argv) {
  const flags = new Set(['keep-labels', 'help']);
  const out = {};
  for (let i = 0; i < argv.length; i += 1) {
    const a = argv[i];
    if (!a.startsWith('--')) usage(`unexpected argument "${a}"`);
    const [key, inline] = a.slice(2).split(/=(.*)/s, 2);
    if (flags.has(key)) { out[key] = true; continue; }
    const value = inline ?? argv[++i];
    if (value == null) usage(`--${key} needs a value`);
    out[key] = value;
  }
  return out;
}
function usage(problem) {
  if (problem) console.error(`soak: ${problem}`);
  console.error('usage: node scripts/soak.mjs [--minutes 60] [--sample-every 60] [--out test-results/soak.json] [--query "k=v&…"] [--keep-labels] [--bound 10] [--variants grpo,reinforce,gspo,rloo] [--heap-snapshots 10,end] [--js-flags "…"]');
  process.exit(problem ? 2 : 0);
}
const args = parseArgs(process.argv.slice(2));
if (args.help) usage();
const known = ['minutes', 'sample-every', 'out', 'query', 'keep-labels', 'bound', 'variants', 'heap-snapshots', 'js-flags'];
for (const k of Object.keys(args)) if (!known.includes(k) && k !== 'help') usage(`unknown option --${k}`);
const positive = (name, fallback) => {
  const v = Number(args[name] ?? fallback);
  if (!(v > 0)) usage(`--${name} must be a positive number (got "${args[name]}")`);
  return v;
};
const minutes = positive('minutes', 60);
const every = positive('sample-every', 60);
const bound = positive('bound', 10);
const out = path.resolve(args.out ?? 'test-results/soak.json');
const keepLabels = !!args['keep-labels'];
const warmUp = Math.min(10, minutes / 3); // minutes

// The defaults, made short: a round of a few minutes on the CPU backend.
const SHORT = { 'sft.steps': 100, 'reward.simulated_labels': 256, 'reward.epochs': 1, 'ppo.iterations': 8, 'grpo.iterations': 8, 'dpo.epochs': 1 };
// The full lab (not the lesson a first visit opens): every panel mounted and shown, as a learner
// who chose "Full lab" sees it; each stage's panel is scrolled into view before it starts, so its
// charts draw as they would in front of the learner (charts off screen wait to be drawn).
const query = new URLSearchParams({ mode: 'lab', backend: 'cpu', ...SHORT });
for (const [k, v] of new URLSearchParams(args.query ?? '')) query.set(k, v);

const STAGES = ['sft', 'labels', 'reward', 'ppo', 'grpo', 'dpo'];
const PANEL = { sft: 'sft', labels: 'labeling', reward: 'reward', ppo: 'ppo', grpo: 'grpo', dpo: 'dpo' };
// One number per stage that says it learned something (the last value the stage reported).
const HEADLINE = { sft: 'loss/held_out', reward: 'rm/held_out_accuracy', ppo: 'objective/gold', grpo: 'gold', dpo: 'dpo/held_out_accuracy' };
// The GRPO panel's critic-free choices and the reward sources, one per round in turn: the keys
// each sets (the others back at the run's settings, SHORT and --query).
const GRPO_KEYS = ['grpo.estimator', 'grpo.group_size', 'grpo.importance_sampling_level', 'grpo.epsilon_low', 'grpo.epsilon_high', 'grpo.reward', 'ppo.reward'];
const VARIANTS = {
  grpo: { 'ppo.reward': 'reward_model', 'grpo.reward': 'reward_model' },
  reinforce: { 'grpo.estimator': 'reinforce', 'grpo.group_size': 1, 'ppo.reward': 'gold', 'grpo.reward': 'gold' },
  gspo: { 'grpo.importance_sampling_level': 'sequence', 'grpo.epsilon_low': 0.0003, 'grpo.epsilon_high': 0.0004, 'ppo.reward': 'custom', 'grpo.reward': 'custom' },
  rloo: { 'grpo.estimator': 'rloo', 'ppo.reward': 'gold', 'grpo.reward': 'custom' },
};
const variantNames = (args.variants ?? Object.keys(VARIANTS).join(',')).split(',').map((v) => v.trim()).filter(Boolean);
for (const v of variantNames) if (!VARIANTS[v]) usage(`--variants: no variant "${v}" (${Object.keys(VARIANTS).join(', ')})`);
const snapshotAt = (args['heap-snapshots'] ?? '').split(',').map((r) => r.trim()).filter(Boolean);
const snapshotAtEnd = snapshotAt.includes('end');
const snapshotRounds = new Set(snapshotAt.filter((r) => r !== 'end').map(Number));
for (const r of snapshotRounds) if (!(Number.isInteger(r) && r > 0)) usage(`--heap-snapshots takes round numbers and "end" (got "${args['heap-snapshots']}")`);
const MiB = (bytes) => (bytes == null ? null : bytes / 2 ** 20);
const fmt = (v, digits = 1) => (v == null || !Number.isFinite(v) ? 'n/a' : v.toFixed(digits));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---- the run ----
const server = await serve();
// The e2e harness's Chromium, but Ctrl-C is this script's to handle (Playwright would close it).
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage',
    ...(args['js-flags'] ? [`--js-flags=${args['js-flags']}`] : [])],
  handleSIGINT: false,
});
const errors = []; // {minute, where, message}
const samples = [];
const rounds = [];
const snapshots = []; // {file, round, minute, page_heap_mib}
let started = Date.now();
const minute = () => (Date.now() - started) / 60_000;
let round = 0;
let interrupted = false;
let page = null;

process.on('SIGINT', () => {
  if (interrupted) process.exit(130);
  interrupted = true;
  console.log('\ninterrupted: pausing the running stage, then the summary (Ctrl-C again to quit at once)');
  page?.evaluate(() => { for (const stage of window.__lab.stages.values()) stage.pause(); }).catch((e) => console.log(`could not pause: ${e.message}`));
});

let result = { pass: false };
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  page = await context.newPage();
  const error = (where, message) => {
    errors.push({ minute: minute(), round, where, message });
    console.log(`  ! ${where}: ${message}`);
  };
  page.on('pageerror', (e) => error('pageerror', e.message));
  page.on('console', (m) => { if (m.type() === 'error') error(m.worker() ? 'worker console' : 'console', m.text()); });
  page.on('crash', () => error('crash', 'the page crashed'));
  page.on('dialog', (d) => d.accept()); // "Delete all N labels?" when the labels are reset

  const url = `${server.url}?${query}`;
  await page.goto(url);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 180_000 });
  const backend = await page.evaluate(() => window.__lab.backendInfo);
  if (backend.backend !== 'cpu') throw new Error(`the page runs on ${backend.backend}, not the CPU backend`);
  const chromiumVersion = browser.version();
  console.log(`soak: ${minutes} min, a sample every ${every} s, warm-up ${fmt(warmUp)} min, bound ${bound}% · Chromium ${chromiumVersion} · ${backend.adapter}`);
  console.log(`page: ${url}${args['js-flags'] ? ` · V8 flags: ${args['js-flags']}` : ''}`);

  // ---- the worker: Playwright's handle (wasm memory) and a CDP session on its target (heap) ----
  const trainingWorker = () => page.workers().find((w) => /worker[^/]*\.js/.test(w.url()) && !/bench/.test(w.url()));
  if (!trainingWorker()) throw new Error(`no training worker (workers: ${page.workers().map((w) => w.url()).join(', ') || 'none'})`);
  const cdp = await context.newCDPSession(page);
  const workerTargets = new Map(); // sessionId -> url
  const pending = new Map(); // message id -> {resolve, reject}
  let nextId = 1;
  cdp.on('Target.attachedToTarget', ({ sessionId, targetInfo }) => { if (targetInfo.type === 'worker') workerTargets.set(sessionId, targetInfo.url); });
  cdp.on('Target.detachedFromTarget', ({ sessionId }) => workerTargets.delete(sessionId));
  cdp.on('Target.receivedMessageFromTarget', ({ message }) => {
    const m = JSON.parse(message);
    const waiter = pending.get(m.id);
    if (!waiter) return;
    pending.delete(m.id);
    if (m.error) waiter.reject(new Error(m.error.message)); else waiter.resolve(m.result);
  });
  await cdp.send('Target.setAutoAttach', { autoAttach: true, waitForDebuggerOnStart: false, flatten: false });
  for (let i = 0; i < 50 && !workerTargets.size; i += 1) await sleep(100);
  function workerSend(method, params = {}) {
    const url = trainingWorker()?.url();
    const sessionId = [...workerTargets].find(([, u]) => u === url)?.[0] ?? [...workerTargets.keys()][0];
    if (!sessionId) return Promise.reject(new Error('no CDP session on the worker'));
    const id = nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { pending.delete(id); reject(new Error(`${method} on the worker: no answer in 60 s`)); }, 60_000);
      pending.set(id, { resolve: (r) => { clearTimeout(timer); resolve(r); }, reject: (e) => { clearTimeout(timer); reject(e); } });
      cdp.send('Target.sendMessageToTarget', { sessionId, message: JSON.stringify({ id, method, params }) }).catch((e) => { pending.delete(id); clearTimeout(timer); reject(e); });
    });
  }

  // ---- sampling ----
  let sampling = Promise.resolve();
  function sample(kind) {
    sampling = sampling.then(async () => {
      try {
        await Promise.all([cdp.send('HeapProfiler.collectGarbage'), workerSend('HeapProfiler.collectGarbage')]);
        const [wasm, heapLive, pageHeap, workerHeap, dom] = await Promise.all([
          trainingWorker().evaluate(() => self.__wasmMemoryBytes?.() ?? null),
          trainingWorker().evaluate(() => self.__wasmHeapLiveBytes?.() ?? null),
          cdp.send('Runtime.getHeapUsage'),
          workerSend('Runtime.getHeapUsage'),
          cdp.send('Memory.getDOMCounters').catch(() => null),
        ]);
        const s = {
          kind, minute: minute(), round, wasm_mib: MiB(wasm), heap_live_mib: MiB(heapLive), page_heap_mib: MiB(pageHeap.usedSize), worker_heap_mib: MiB(workerHeap.usedSize),
          page_heap: pageHeap, worker_heap: workerHeap, dom,
        };
        samples.push(s);
        console.log(`min ${fmt(s.minute).padStart(5)} · round ${String(round).padStart(3)} · wasm ${fmt(s.wasm_mib)} MiB (live ${fmt(s.heap_live_mib, 2)}) · page heap ${fmt(s.page_heap_mib, 2)} MiB · worker heap ${fmt(s.worker_heap_mib, 2)} MiB${dom ? ` · ${dom.nodes} DOM nodes, ${dom.jsEventListeners} listeners` : ''}${kind === 'timer' ? '' : ` (${kind})`}`);
      } catch (e) {
        error('sample', e.message);
      }
    });
    return sampling;
  }

  // A heap snapshot of the page, streamed to a file (after the sample's garbage collection).
  async function heapSnapshot(file) {
    await sampling;
    const stream = createWriteStream(file);
    const onChunk = ({ chunk }) => stream.write(chunk);
    cdp.on('HeapProfiler.addHeapSnapshotChunk', onChunk);
    try {
      await cdp.send('HeapProfiler.enable');
      await cdp.send('HeapProfiler.collectGarbage');
      await cdp.send('HeapProfiler.takeHeapSnapshot', { reportProgress: false, captureNumericValue: false });
    } finally {
      cdp.off('HeapProfiler.addHeapSnapshotChunk', onChunk);
      await new Promise((resolve) => stream.end(resolve));
    }
    snapshots.push({ file, round, minute: minute(), page_heap_mib: samples.at(-1)?.page_heap_mib ?? null });
    console.log(`  heap snapshot: ${path.relative(process.cwd(), file)}`);
  }

  // Counts the steps each stage reports and keeps each metric's last value (for the round lines).
  await page.evaluate(() => {
    // The settings the page opened with: what a variant leaves of GRPO_KEYS goes back to these.
    window.__soak = { steps: {}, last: {}, base: structuredClone(window.__lab.config) };
    window.__lab.client.on((e) => {
      if (e.event !== 'step' || e.tag) return;
      window.__soak.steps[e.stage] = (window.__soak.steps[e.stage] ?? 0) + 1;
      Object.assign(window.__soak.last[e.stage] ??= {}, e.metrics);
    });
  });

  started = Date.now();
  await sample('start');
  let stopSampler = false;
  const sampler = (async () => {
    for (let k = 1; ; k += 1) {
      const due = started + k * every * 1000;
      while (!stopSampler && Date.now() < due) await sleep(Math.min(500, due - Date.now()));
      if (stopSampler) return;
      await sample('timer');
    }
  })();

  // ---- rounds ----
  while (minute() < minutes && !interrupted) {
    round += 1;
    const roundStart = Date.now();
    const variant = variantNames[(round - 1) % variantNames.length];
    const record = { round, minute: minute(), variant, stages: [] };
    rounds.push(record);
    // The round's variant, applied as the settings form applies a change (www/views/common.js).
    record.settings = await page.evaluate(async ({ values, keys }) => {
      const lab = window.__lab;
      const get = (o, key) => key.split('.').reduce((n, k) => n?.[k], o);
      const set = (o, key, v) => { const ks = key.split('.'); ks.slice(0, -1).reduce((n, k) => n[k], o)[ks.at(-1)] = v; };
      const config = structuredClone(lab.config);
      for (const key of keys) set(config, key, key in values ? values[key] : get(window.__soak.base, key));
      await lab.client.call('setConfig', JSON.stringify(config));
      const changed = keys.filter((key) => get(config, key) !== get(lab.config, key));
      lab.config = config;
      lab.saveUrl();
      for (const key of changed) lab.events.emit('config-changed', { key, value: get(config, key) });
      return Object.fromEntries(keys.map((key) => [key, get(config, key)]));
    }, { values: VARIANTS[variant], keys: GRPO_KEYS });
    const reset = await page.evaluate(async (keep) => {
      const { stages } = window.__lab;
      for (const name of ['dpo', 'grpo', 'ppo', 'reward', ...(keep ? [] : ['labels']), 'sft']) await stages.get(name).reset();
      window.__soak.steps = {};
      window.__soak.last = {};
      return Object.fromEntries([...stages].map(([name, s]) => [name, s.state()]));
    }, keepLabels);
    const notReset = Object.entries(reset).filter(([name, s]) => s === 'done' && !(keepLabels && name === 'labels'));
    if (notReset.length) error('reset', `still done after reset: ${notReset.map(([n]) => n).join(', ')}`);

    let stopped = null;
    for (const name of STAGES) {
      if (interrupted) { stopped = `interrupted before ${name}`; break; }
      const r = await page.evaluate(async ({ name, panel }) => {
        const lab = window.__lab;
        const stage = lab.stages.get(name);
        document.getElementById(panel)?.scrollIntoView({ block: 'start' });
        // A stage unblocks on the state its inputs announce (some after an IndexedDB count).
        for (let t = 0; stage.state() === 'blocked' && t < 300; t += 1) await new Promise((r) => setTimeout(r, 100));
        const before = stage.state();
        const t0 = performance.now();
        await stage.start();
        const notices = [...document.querySelectorAll('#notices .notice.error')].map((n) => { const text = n.firstChild?.textContent ?? n.textContent; n.remove(); return text; });
        return {
          name, before, after: stage.state(), seconds: (performance.now() - t0) / 1000,
          steps: window.__soak.steps[name] ?? 0, progress: document.querySelector(`#${panel} .progress span`)?.textContent ?? '',
          last: window.__soak.last[name] ?? {}, labels: name === 'labels' ? await lab.storage.countLabels() : undefined, notices,
        };
      }, { name, panel: PANEL[name] });
      for (const n of r.notices) error('notice', n);
      const headline = HEADLINE[name] && r.last[HEADLINE[name]] != null ? ` · ${HEADLINE[name]} ${fmt(r.last[HEADLINE[name]], 3)}` : '';
      const what = name === 'labels' ? `${r.labels} labels` : `${r.steps} steps`;
      console.log(`  round ${round} · ${name.padEnd(6)} ${r.after === 'done' ? 'done' : r.after} in ${fmt(r.seconds)} s · ${what} · ${r.progress}${headline}`);
      record.stages.push({ name: r.name, state_before: r.before, state: r.after, seconds: r.seconds, steps: r.steps, labels: r.labels, progress: r.progress, headline: HEADLINE[name] ? { [HEADLINE[name]]: r.last[HEADLINE[name]] ?? null } : undefined });
      if (r.after !== 'done') { stopped = `${name} ${r.after} (was ${r.before})`; break; }
    }
    record.seconds = (Date.now() - roundStart) / 1000;
    if (stopped) {
      record.stopped = stopped;
      if (!interrupted) error('round', `round ${round} stopped at ${stopped}`);
      break;
    }
    const method = await page.evaluate(() => window.__lab.stages.get('grpo').method());
    record.grpo_method = method;
    console.log(`round ${round} (${variant}: GRPO panel ran ${method}, PPO against ${record.settings['ppo.reward']}, GRPO against ${record.settings['grpo.reward']}): ${STAGES.join(' → ')} in ${fmt(record.seconds, 0)} s`);
    if (minute() < minutes && !interrupted) await sample('round end');
    if (snapshotRounds.has(round)) await heapSnapshot(`${out.replace(/\.json$/, '')}-round-${round}.heapsnapshot`);
  }
  stopSampler = true;
  await sampler;
  await sample('end');
  if (snapshotAtEnd) await heapSnapshot(`${out.replace(/\.json$/, '')}-end.heapsnapshot`).catch((e) => error('heap snapshot', e.message));

  // ---- summary ----
  const after = samples.find((s) => s.minute >= warmUp) ?? samples.at(-1);
  const [first, last] = [samples[0], samples.at(-1)];
  console.log(`\nsummary: ${fmt(last.minute)} min, ${rounds.filter((r) => !r.stopped).length} full round(s), ${samples.length} samples · warm-up: the first ${fmt(warmUp)} min (baseline: the sample at minute ${fmt(after.minute)})`);
  if (after === last) console.log('  (too short to judge growth: no sample after warm-up before the last)');
  const summary = {};
  let pass = true;
  // The core's live heap rises and falls within a round (each stage holds its own models and
  // batches), so it is judged between rounds: the first round's end after warm-up against the end.
  const afterRound = samples.find((s) => s.minute >= warmUp && s.kind !== 'timer') ?? after;
  for (const [key, label] of [['wasm_mib', 'wasm memory'], ['heap_live_mib', 'wasm heap live'], ['page_heap_mib', 'page JS heap'], ['worker_heap_mib', 'worker JS heap']]) {
    const base = key === 'heap_live_mib' ? afterRound : after;
    const growth = (100 * (last[key] - base[key])) / base[key];
    const ok = Number.isFinite(growth) && growth <= bound;
    pass &&= ok;
    summary[key] = { start: first[key], after_warm_up: base[key], after_warm_up_minute: base.minute, end: last[key], growth_percent: Number.isFinite(growth) ? growth : null, pass: ok };
    console.log(`  ${label.padEnd(15)} start ${fmt(first[key], 2).padStart(7)} · after warm-up ${fmt(base[key], 2).padStart(7)} · end ${fmt(last[key], 2).padStart(7)} MiB · growth ${fmt(growth)}% ${ok ? 'PASS' : 'FAIL'} (bound ${bound}%)${first[key] == null ? ' — not measured: www/worker.js defines no self.__wasmMemoryBytes' : ''}`);
  }
  const nodes = (s) => s.dom?.nodes ?? null;
  summary.dom_nodes = { start: nodes(first), after_warm_up: nodes(after), end: nodes(last), judged: false };
  console.log(`  ${'DOM nodes'.padEnd(15)} start ${String(nodes(first)).padStart(7)} · after warm-up ${String(nodes(after)).padStart(7)} · end ${String(nodes(last)).padStart(7)}      (not judged)`);
  // With two heap snapshots or more: where the page's heap went between the first and the last —
  // the page's own objects, or V8's compiled code and metadata (which grows while functions tier
  // up) — as scripts/heap-diff.mjs shows in detail (not judged).
  if (snapshots.length >= 2) {
    const [a, b] = [snapshots[0], snapshots.at(-1)];
    const [ca, cb] = (await Promise.all([a, b].map(async (s) => byCategory(await loadSnapshot(s.file)))));
    summary.heap_snapshots = { from: { round: a.round, minute: a.minute }, to: { round: b.round, minute: b.minute }, categories: {} };
    console.log(`  heap snapshots, round ${a.round} (min ${fmt(a.minute)}) → round ${b.round} (min ${fmt(b.minute)}), self sizes (node scripts/heap-diff.mjs ${[a, b].map((s) => path.relative(process.cwd(), s.file)).join(' ')}):`);
    for (const k of ['js objects', 'v8 code and metadata', 'blink (native)']) {
      const [x, y] = [ca[k]?.bytes ?? 0, cb[k]?.bytes ?? 0];
      summary.heap_snapshots.categories[k] = { from_mib: MiB(x), to_mib: MiB(y), growth_percent: x ? (100 * (y - x)) / x : null };
      console.log(`    ${k.padEnd(21)} ${fmt(MiB(x), 2).padStart(7)} → ${fmt(MiB(y), 2).padStart(7)} MiB (${y >= x ? '+' : ''}${fmt((y - x) / 1024, 0)} KiB, ${fmt((100 * (y - x)) / x)}%)${k === 'blink (native)' ? ' — not in the page JS heap above' : ''}`);
    }
  }
  if (errors.length) console.log(`  ${errors.length} error${errors.length === 1 ? '' : 's'} (page errors, console errors, error notices or stopped rounds): FAIL`);
  if (interrupted) console.log('  interrupted: FAIL');
  pass &&= !errors.length && !interrupted;
  console.log(pass ? 'PASS' : 'FAIL');
  result = {
    pass, interrupted, minutes, js_flags: args['js-flags'] ?? null, sample_every_s: every, warm_up_minutes: warmUp, bound_percent: bound, url, chromium: chromiumVersion, backend,
    keep_labels: keepLabels, started: new Date(started).toISOString(), summary, rounds, samples, errors,
  };
} catch (e) {
  errors.push({ minute: minute(), round, where: 'soak', message: e.stack ?? e.message });
  console.error(`soak: ${e.stack ?? e.message}`);
  result = { pass: false, minutes, sample_every_s: every, url: `?${query}`, rounds, samples, errors };
} finally {
  await browser.close().catch(() => {});
  await server.close().catch(() => {});
}
await mkdir(path.dirname(out), { recursive: true });
await writeFile(out, `${JSON.stringify(result, null, 1)}\n`);
console.log(`written: ${path.relative(process.cwd(), out) || out}`);
process.exit(result.pass ? 0 : 1);
