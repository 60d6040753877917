// PPO, GRPO/RLOO/REINFORCE/GSPO and DPO: the reward–KL frontier (every policy measured the same way: evaluate(role, 128, 99)
// gives its RM score, gold utility and KL(π‖π_ref)), the β sweep, samples side by side and the
// math page's comparison table filled with what this run measured. Points persist in storage.
import { el, chartBox } from './common.js';
import { XYChart } from '../charts.js';
import { sweepControls } from './sweep.js';
import { comparisonTable, onlineRlTable } from './compare-table.js';

const EVAL_COUNT = 128;
const EVAL_SEED = 99;
const SAMPLE_TEMPERATURE = 0.7;
const SAMPLE_SEED = 7;
const METHODS = [
  { key: 'ref', label: 'π_ref (SFT)', color: '#4b5563' },
  { key: 'ppo', label: 'PPO π_θ', color: '#2563eb' },
  { key: 'grpo', label: 'GRPO π_grpo', color: '#16a34a' },
  { key: 'rloo', label: 'RLOO π_grpo', color: '#9333ea' },
  { key: 'reinforce', label: 'REINFORCE π_grpo', color: '#d97706' },
  { key: 'gspo', label: 'GSPO π_grpo', color: '#0891b2' },
  { key: 'dpo', label: 'DPO π_dpo', color: '#dc2626' },
];
// The model each column of the samples shows (GRPO and RLOO train the same slot).
const ROLE_OF = { ref: 'sft', ppo: 'policy', grpo: 'grpo', dpo: 'dpo' };

const num = (v, d = 3) => (Number.isFinite(v) ? v.toFixed(d) : '—');

/**
 * An XYChart of points with horizontal ± s.e. bars. Fixed from outside charts.js: in uPlot's
 * facet mode the points loop runs over mode 1's x-index range (empty here), so every point is
 * asked for by a filter (and drawn filled, larger); x starts at 0 with a margin; the bars are
 * drawn solid, with caps, by a draw hook of our own.
 */
function frontierChart(host, spec, barsOf) {
  const chart = new XYChart(host, spec);
  chart.plot.series.slice(1).forEach((s, i) => {
    const color = spec.series[i].color;
    Object.assign(s.points, { filter: (u, si) => u.data[si][0].map((_, k) => k), size: 10, width: 1.5, fill: () => `${color}bb` });
  });
  // x from 0 (π_ref) with a margin, so points at the edge show whole.
  chart.plot.scales.x.range = (u, min, max) => {
    if (min == null || max == null) return [0, 0.1];
    const lo = Math.min(0, min);
    const pad = (max - lo) * 0.08 || 0.01;
    return [lo - pad, max + pad];
  };
  const hooks = chart.plot.hooks;
  hooks.draw = [...(hooks.draw ?? []), (u) => {
    const ctx = u.ctx;
    const cap = 4 * devicePixelRatio;
    ctx.save();
    ctx.beginPath();
    ctx.rect(u.bbox.left, u.bbox.top, u.bbox.width, u.bbox.height);
    ctx.clip();
    ctx.lineWidth = 1.5 * devicePixelRatio;
    for (const b of barsOf()) {
      if (![b.x, b.se, b.y].every(Number.isFinite)) continue;
      const y = u.valToPos(b.y, 'y', true);
      const x1 = u.valToPos(b.x - b.se, 'x', true);
      const x2 = u.valToPos(b.x + b.se, 'x', true);
      ctx.strokeStyle = b.color ?? '#6b7280';
      ctx.beginPath();
      ctx.moveTo(x1, y); ctx.lineTo(x2, y);
      ctx.moveTo(x1, y - cap); ctx.lineTo(x1, y + cap);
      ctx.moveTo(x2, y - cap); ctx.lineTo(x2, y + cap);
      ctx.stroke();
    }
    ctx.restore();
  }];
  chart.draw();
  return chart;
}

export async function mountComparison(root, store, activity) {
  const { client, events, storage } = store;
  let points = (await storage.getState('frontier').catch(() => null)) ?? [];
  // Which run the session's π_θ and π_dpo come from (the sweep reuses the same slots).
  const slots = { policy: null, grpo: null, dpo: null };
  const generation = { policy: 0, grpo: 0, dpo: 0 };
  const pending = [];
  let refMeasured = false;

  const goldBox = chartBox(store, { text: 'Gold utility (the hidden score the simulated labeler judges by) against KL(π‖π_ref) in nats per completion, both measured on the same 128 fresh prompts for every policy. Bars: ± one standard error of the KL. Up and to the left is better: more utility for less drift.', equation: 'objective' });
  const scoreBox = chartBox(store, { text: 'The same policies with the reward model\'s score on y: what PPO maximizes. Where PPO climbs here but not in gold, it is exploiting r_φ.', equation: 'objective' });
  const pointsBody = el('tbody');
  const pointsNote = el('p', { class: 'muted', text: 'No policies measured yet: finish DPO or PPO, or run the β sweep.' });
  const clear = el('button', { text: 'Clear points' });
  const samplesBody = el('tbody');
  const samplesHead = el('tr');
  const samplesNote = el('p', { class: 'muted', text: 'Samples appear when a policy exists.' });
  const refreshSamples = el('button', { text: 'Sample again' });
  const table = comparisonTable(store);
  const onlineTable = onlineRlTable(store);
  const sweep = sweepControls(store, activity, { addPoint: (p) => addPoint(p), points: () => points, showSamples: () => showSamples() });

  const section = el('section', { class: 'panel', id: 'comparison', 'aria-labelledby': 'comparison-title' },
    el('h2', { id: 'comparison-title', text: 'PPO, GRPO, RLOO and DPO: the same objective, several ways' }),
    el('p', { class: 'objective', text: 'All maximize E[r] − β·KL(π_θ‖π_ref). PPO does it directly, sampling completions and scoring them with the reward model, with a learned critic for its advantages; GRPO and RLOO do the same with a group of completions as the baseline instead of a critic; DPO solves it in closed form, as a supervised loss on the labeled pairs. Here each policy is placed by how far it moved from π_ref and what it reached.' }),
    el('h3', { text: 'Reward–KL frontier' }),
    el('div', { class: 'charts' }, goldBox, scoreBox),
    sweep,
    el('h3', { text: 'Measured policies' }),
    pointsNote,
    el('table', { class: 'samples frontier-points' },
      el('thead', {}, el('tr', {}, ...['policy', 'β', 'from', 'KL ± s.e.', 'gold', 'RM score', 'gradient steps', 'wall', 'mean length', 'ends with <eos>'].map((t) => el('th', { text: t })))),
      pointsBody),
    el('div', { class: 'controls' }, clear),
    el('h3', { text: 'Samples side by side' }),
    samplesNote,
    el('div', { class: 'controls' }, refreshSamples),
    el('table', { class: 'samples side-by-side' }, el('thead', {}, samplesHead), samplesBody),
    el('h3', { text: 'The math page\'s table, measured' }),
    table,
    el('h3', { text: 'PPO, GRPO and RLOO: what the critic costs and buys' }),
    onlineTable);
  root.append(section);

  const chartSpec = (yLabel, title) => ({ title, xLabel: 'KL(π‖π_ref) (nats)', yLabel, height: 260, series: METHODS.map((m) => ({ label: m.label, color: m.color, points: true })) });
  const bars = { gold: [], score: [] };
  const goldChart = frontierChart(goldBox.host, chartSpec('gold utility', 'Gold utility vs KL'), () => bars.gold);
  const scoreChart = frontierChart(scoreBox.host, chartSpec('RM score', 'Reward-model score vs KL'), () => bars.score);

  function draw() {
    for (const [chart, key] of [[goldChart, 'gold'], [scoreChart, 'score']]) {
      bars[key] = points.filter((p) => p.kl_std_error > 0).map((p) => ({ x: p.kl, se: p.kl_std_error, y: p[key], color: METHODS.find((m) => m.key === p.method)?.color }));
      METHODS.forEach((m, i) => {
        const mine = points.filter((p) => p.method === m.key).sort((a, b) => a.kl - b.kl);
        chart.set(i, mine.map((p) => p.kl), mine.map((p) => p[key]));
      });
    }
    // Read by the end-to-end test: points per method.
    for (const m of METHODS) goldBox.host.dataset[m.key] = String(points.filter((p) => p.method === m.key).length);
    pointsNote.hidden = points.length > 0;
    pointsBody.replaceChildren(...points.map((p) => el('tr', {},
      el('td', { text: METHODS.find((m) => m.key === p.method)?.label ?? p.method }),
      el('td', { class: 'num', text: p.beta == null ? '—' : String(p.beta) }),
      el('td', { text: (p.source === 'sweep' ? 'β sweep' : p.source === 'panel' ? `${p.method.toUpperCase()} panel` : 'reference')
        + (p.preset && (p.preset !== store.config.preset || p.seed !== store.config.seed) ? ` (earlier: ${p.preset}, seed ${p.seed})` : '') }),
      el('td', { class: 'num', text: `${num(p.kl)} ± ${num(p.kl_std_error)}` }),
      el('td', { class: 'num', text: num(p.gold) }),
      el('td', { class: 'num', text: num(p.score) }),
      el('td', { class: 'num', text: p.steps == null ? '—' : String(p.steps) }),
      el('td', { class: 'num', text: p.wall_s == null ? '—' : `${p.wall_s.toFixed(1)} s` }),
      el('td', { class: 'num', text: num(p.mean_length, 1) }),
      el('td', { class: 'num', text: Number.isFinite(p.eos_fraction) ? `${Math.round(p.eos_fraction * 100)}%` : '—' }))));
    table.update(points);
    onlineTable.update(points);
  }

  async function save() {
    await storage.putState('frontier', points).catch((e) => store.notify(`The frontier could not be stored: ${e.message}`, 'error'));
  }

  /** A run is about to put a new model in `role` ('policy' or 'dpo'); `text` says which. */
  function claim(role, text) {
    generation[role] += 1;
    slots[role] = text;
  }

  async function measure(role) {
    return client.call('evaluate', role, EVAL_COUNT, EVAL_SEED);
  }

  async function ensureRef() {
    if (refMeasured) return;
    const ev = await measure('sft');
    refMeasured = true;
    points = points.filter((p) => p.method !== 'ref');
    points.unshift({ method: 'ref', beta: null, source: 'ref', ...ev, time: Date.now(), preset: store.config.preset, seed: store.config.seed });
  }

  /**
   * Evaluates the model in `role` and adds it as a point with `meta` ({method, beta, source, steps,
   * wall_s, ...}). Without a reward model there is nothing to score with: it waits for one.
   */
  async function addEvaluated(role, meta, { quiet = false } = {}) {
    const gen = generation[role];
    try {
      await ensureRef();
      const ev = await measure(role);
      const point = { ...meta, ...ev, time: Date.now(), preset: store.config.preset, seed: store.config.seed };
      // One point per (method, source, β): a new run with the same settings replaces the old one.
      points = points.filter((p) => !(p.method === point.method && p.source === point.source && p.beta === point.beta));
      points.push(point);
      await save();
      draw();
      if (!quiet) showSamples();
      return point;
    } catch (e) {
      if (e.name === 'NotReady' && /reward model/.test(e.message)) {
        pending.push({ role, meta, gen });
        store.notify(`${meta.method.toUpperCase()} β=${meta.beta} will join the frontier once the reward model is trained: every policy is scored by r_φ and measured against π_ref the same way.`);
      } else {
        store.notify(`The ${role} policy could not be evaluated: ${e.message}`, 'error');
      }
      return null;
    }
  }

  // Stats of the PPO panel's own (untagged) run, for its point and the table.
  let ppoRun = { updates: 0, iterations: 0, samples: 0, beta: null };
  client.on((event) => {
    if (event.stage !== 'ppo' || event.tag || event.event !== 'step') return;
    const m = event.metrics;
    if (m.iteration < ppoRun.iterations) ppoRun = { updates: 0, iterations: 0, samples: 0, beta: null };
    if (m.phase === 0) {
      ppoRun.iterations = m.iteration;
      ppoRun.rollouts = m.iteration;
      ppoRun.samples += store.config.ppo.batch_size;
      if (Number.isFinite(m['objective/kl_coef'])) ppoRun.beta = m['objective/kl_coef'];
    } else if (Number.isFinite(m.update)) {
      ppoRun.updates = m.update;
    }
  });

  let ppoState = null;
  let grpoState = null;
  events.on('stage-state', ({ stage, state }) => {
    if (stage === 'ppo') {
      const was = ppoState;
      ppoState = state;
      if (state === 'done' && was !== 'done') {
        const beta = ppoRun.beta ?? store.config.ppo.kl_coef;
        claim('policy', `PPO panel (β=${beta})`);
        addEvaluated('policy', { method: 'ppo', beta, source: 'panel', steps: ppoRun.updates, wall_s: activity.wallSeconds('ppo'), samples: ppoRun.samples, iterations: ppoRun.iterations });
      }
    }
    if (stage === 'grpo') {
      const was = grpoState;
      grpoState = state;
      const panel = store.stages.get('grpo');
      const plan = panel?.plan();
      if (state === 'done' && was !== 'done' && plan) {
        const method = panel.methodKey();
        claim('grpo', `${panel.method()} panel (β=${plan.beta})`);
        addEvaluated('grpo', { method, beta: plan.beta, source: 'panel', steps: plan.iterations * plan.epochs * plan.mini_batches, wall_s: activity.wallSeconds('grpo'), samples: plan.iterations * plan.prompts * plan.group_size, iterations: plan.iterations, label: panel.method() });
      }
    }
    if (stage === 'sft' && state === 'done') { refMeasured = false; showSamples(); }
    if (stage === 'reward' && state === 'done') {
      refMeasured = false;
      table.refreshRm();
      const ready = pending.splice(0).filter((p) => p.gen === generation[p.role]);
      (async () => { for (const p of ready) await addEvaluated(p.role, p.meta); })();
    }
  });

  let sampling = false;
  async function showSamples() {
    if (sampling) return;
    sampling = true;
    try {
      const columns = [];
      for (const [key, role] of Object.entries(ROLE_OF)) {
        const rows = await client.call('samples', role, SAMPLE_TEMPERATURE, SAMPLE_SEED).catch(() => null);
        if (rows) columns.push({ key, rows, label: key === 'ref' ? 'π_ref' : `${METHODS.find((m) => m.key === key).label.replace('GRPO π_grpo', 'GRPO/RLOO π_grpo')}${slots[role] ? ` · ${slots[role]}` : ''}` });
      }
      if (!columns.length) return;
      samplesHead.replaceChildren(el('th', { text: 'prompt' }), ...columns.map((c) => el('th', { text: c.label })));
      samplesBody.replaceChildren(...columns[0].rows.map((row, i) => el('tr', {},
        el('td', { text: row.prompt }),
        ...columns.map((c) => el('td', {}, el('span', { text: c.rows[i]?.completion ?? '' }), el('span', { class: 'gold', text: `gold ${num(c.rows[i]?.gold, 2)}` }))))));
      samplesNote.textContent = `The same ${columns[0].rows.length} prompts for each policy the session holds, sampled at temperature ${SAMPLE_TEMPERATURE} with a fixed seed.`;
    } finally {
      sampling = false;
    }
  }

  refreshSamples.addEventListener('click', showSamples);
  clear.addEventListener('click', async () => {
    points = [];
    refMeasured = false;
    await save();
    draw();
  });
  events.on('sweep-state', ({ running }) => { clear.disabled = running; if (!running) showSamples(); });
  draw();
  table.refreshRm();

  /** Adds a point measured elsewhere (the β sweep, in the core) and draws it. */
  async function addPoint(point) {
    await ensureRef();
    const full = { ...point, time: Date.now(), preset: store.config.preset, seed: store.config.seed };
    points = points.filter((p) => !(p.method === full.method && p.source === full.source && p.beta === full.beta));
    points.push(full);
    await save();
    draw();
  }

  return { claim, addEvaluated, addPoint, showSamples, points: () => points, slot: (role) => slots[role] };
}
