// Rewards the learner chooses: PPO and GRPO can train against r_φ, the gold utility itself (a
// verifiable reward, as RLVR does) or an expression the learner writes (`reward.expression`, parsed
// and checked in Rust, never run as JavaScript). And the over-optimization picture of Gao et al.
// (2022): the reward trained against and gold, both measured on fresh prompts, against √KL(π‖π_ref)
// along a PPO run — "Show reward hacking" makes it in one click.
import { el, chartBox } from './common.js';
import { XYChart } from '../charts.js';
import { equationLink } from '../equations.js';
import './your-reward.css';

const PREVIEW_TEMPERATURE = 0.7;
const PREVIEW_SEED = 7;
// Each point of the picture: the policy now on fresh prompts (the same ones each time).
const EVAL_COUNT = 128;
const EVAL_SEED = 99;
const MEASURE_EVERY = 5; // iterations
// The settings that make the shape appear (3 of 3 seeds here: docs/reward-sources.md).
const HACKING = { kl_coef: 0, iterations: 60 };

const num = (v, d = 2) => (Number.isFinite(v) ? v.toFixed(d) : '—');

export async function mountYourReward(root, store) {
  const { client, events } = store;
  const input = el('input', { id: 'reward-expression', type: 'text', spellcheck: 'false', autocomplete: 'off', value: store.config.reward.expression, 'aria-describedby': 'reward-expression-help' });
  const check = el('button', { text: 'Check and preview' });
  const error = el('p', { class: 'error', role: 'alert', id: 'reward-expression-error' });
  const previewBody = el('tbody');
  const previewNote = el('p', { class: 'muted', text: 'The preview scores π_ref\'s samples once SFT is done.' });
  const vocabulary = el('dl', { class: 'reward-vocabulary' });
  const trainPpo = el('button', { text: 'Train PPO against it' });
  const hack = el('button', { class: 'danger', id: 'show-reward-hacking', text: 'Show reward hacking' });
  const measure = el('input', { type: 'checkbox', id: 'measure-run', checked: true });
  const status = el('p', { class: 'muted', 'aria-live': 'polite' });
  const box = chartBox(store, { text: 'The reward the policy is trained against, as it moves away from π_ref (√KL, nats½). Each point: the policy then, on 128 fresh prompts.', equation: 'objective' });
  const goldBox = chartBox(store, { text: 'The gold utility of the same policies, on the same prompts: Gao et al. (2022)\'s picture — it rises, peaks and falls while the reward on the left keeps rising.', equation: 'objective' });
  const pointsBody = el('tbody');

  root.append(el('section', { class: 'panel', id: 'your-reward', 'aria-labelledby': 'your-reward-title' },
    el('h2', { id: 'your-reward-title', text: 'Rewards you choose · and over-optimization you can see' }),
    el('p', {}, 'PPO and GRPO train against what their "Reward" setting says: ',
      el('strong', { text: 'reward_model' }), ' (r_φ, learned from the labels), ',
      el('strong', { text: 'gold' }), ' (the gold utility, computed by a program: a verifiable reward, what RLVR trains on) or ',
      el('strong', { text: 'custom' }), ': the reward you write here, a weighted sum of named terms. Whatever the reward, gold stays the hidden truth on every chart. ', equationLink('objective')),
    el('div', { class: 'setting' }, el('label', { for: 'reward-expression', text: 'Your reward' }), input,
      el('p', { class: 'help', id: 'reward-expression-help', text: 'For example 2*count("great") + sentiment - 0.1*length_over(12). Numbers, + − * /, parentheses, the terms and functions below. A bad expression is refused with its column; nothing else changes.' }), error),
    el('div', { class: 'controls' }, check, trainPpo, hack, el('label', { class: 'inline' }, measure, ' measure along PPO runs')),
    el('details', {}, el('summary', { text: 'Terms and functions' }), vocabulary),
    previewNote,
    el('table', { class: 'samples reward-preview' },
      el('thead', {}, el('tr', {}, el('th', { text: 'prompt' }), el('th', { text: 'π_ref\'s completion' }), el('th', { class: 'num', text: 'your reward' }), el('th', { class: 'num', text: 'gold' }))),
      previewBody),
    el('h3', { text: 'Over-optimization: the reward trained against and gold, against √KL' }),
    status,
    el('div', { class: 'chart-pair' }, box, goldBox),
    el('table', { class: 'samples overoptimization-points' },
      el('thead', {}, el('tr', {}, ...['iteration', '√KL', 'reward trained against', 'gold', 'mean length'].map((t) => el('th', { class: 'num', text: t })))),
      pointsBody)));

  for (const [name, description] of await client.call('rewardVocabulary')) {
    vocabulary.append(el('dt', {}, el('code', { text: name })), el('dd', { text: description }));
  }

  // Two charts on one x axis: the reward trained against grows tens of times more than gold moves.
  const chart = new XYChart(box.host, {
    title: 'The reward trained against',
    xLabel: '√KL(π‖π_ref)',
    yLabel: 'reward',
    series: [{ label: 'reward trained against', color: '#2563eb', line: true, points: true }],
  });
  const goldChart = new XYChart(goldBox.host, {
    title: 'Gold utility (the hidden truth)',
    xLabel: '√KL(π‖π_ref)',
    yLabel: 'gold',
    series: [{ label: 'gold utility', color: '#ca8a04', line: true, points: true }],
  });

  /** The expression in the box, applied to the settings if the core accepts it. */
  async function apply() {
    const text = input.value;
    error.textContent = '';
    const candidate = structuredClone(store.config);
    candidate.reward.expression = text;
    try {
      await client.call('setConfig', JSON.stringify(candidate));
    } catch (e) {
      error.textContent = e.message;
      input.setAttribute('aria-invalid', 'true');
      return false;
    }
    input.removeAttribute('aria-invalid');
    store.config = candidate;
    store.saveUrl();
    store.events.emit('config-changed', { key: 'reward.expression', value: text });
    return true;
  }

  async function preview() {
    if (!(await apply())) return;
    try {
      const rows = await client.call('rewardPreview', store.config.reward.expression, 'sft', PREVIEW_TEMPERATURE, PREVIEW_SEED);
      previewBody.replaceChildren(...rows.map((r) => el('tr', {},
        el('td', { text: r.prompt }), el('td', { text: `${r.completion}${r.ends ? '' : ' …(cut off)'}` }),
        el('td', { class: 'num', text: num(r.reward) }), el('td', { class: 'num', text: num(r.gold) }))));
      const mean = (key) => rows.reduce((a, r) => a + r[key], 0) / Math.max(1, rows.length);
      previewNote.textContent = `π_ref's samples (temperature ${PREVIEW_TEMPERATURE}, fixed seed) scored by your reward: mean ${num(mean('reward'))}, gold ${num(mean('gold'))}. Training against it pushes π_θ toward what it rewards — loopholes included.`;
    } catch (e) {
      previewNote.textContent = `No preview yet: ${e.message}`;
    }
  }

  let points = [];
  let measuring = false;
  let evaluating = Promise.resolve();

  function draw() {
    const sorted = [...points].sort((a, b) => a.iteration - b.iteration);
    chart.set(0, sorted.map((p) => p.sqrt_kl), sorted.map((p) => p.proxy));
    goldChart.set(0, sorted.map((p) => p.sqrt_kl), sorted.map((p) => p.gold));
    pointsBody.replaceChildren(...sorted.map((p) => el('tr', {}, ...[String(p.iteration), num(p.sqrt_kl), num(p.proxy), num(p.gold), num(p.mean_length, 1)].map((t) => el('td', { class: 'num', text: t })))));
    box.host.dataset.points = String(points.length);
    if (!sorted.length) { status.textContent = 'Start a PPO run (or "Show reward hacking") to draw it.'; return; }
    const peak = sorted.reduce((best, p) => (p.gold > best.gold ? p : best), sorted[0]);
    const last = sorted.at(-1);
    const fall = peak.gold - last.gold;
    Object.assign(box.host.dataset, { peakGold: String(peak.gold), finalGold: String(last.gold), firstProxy: String(sorted[0].proxy), finalProxy: String(last.proxy) });
    status.textContent = `Gold peaked at ${num(peak.gold)} (iteration ${peak.iteration}, √KL ${num(peak.sqrt_kl)}) and is ${num(last.gold)} at iteration ${last.iteration}`
      + (fall > 0.05 ? `: it fell by ${num(fall)} while the reward trained against went from ${num(sorted[0].proxy)} to ${num(last.proxy)}. The policy found what the reward pays for that the truth does not.` : '.');
  }

  /** One point: the PPO policy now, by the reward it trains against and by gold. */
  function measurePoint(iteration) {
    evaluating = evaluating.then(async () => {
      try {
        const e = await client.call('evaluateRun', 'ppo', EVAL_COUNT, EVAL_SEED);
        points.push({ iteration, sqrt_kl: Math.sqrt(Math.max(0, e.kl)), kl: e.kl, proxy: e.score, gold: e.gold, mean_length: e.mean_length });
        draw();
      } catch (e) {
        status.textContent = `A point could not be measured: ${e.message}`;
      }
    });
    return evaluating;
  }

  client.on((event) => {
    if (event.stage !== 'ppo' || event.tag || event.event !== 'step' || !measure.checked) return;
    const m = event.metrics;
    // The first rollout leaves π_θ = π_ref: the picture's origin. Then every few iterations.
    if (m.phase === 0 && m.iteration === 1) {
      points = [];
      measuring = true;
      measurePoint(0);
    } else if (measuring && m.iteration_done && (m.iteration % MEASURE_EVERY === 0 || m.iteration === store.config.ppo.iterations)) {
      measurePoint(m.iteration);
    }
  });

  async function trainAgainst(change, what) {
    if (!(await apply())) return;
    const ppo = store.stages.get('ppo');
    points = [];
    draw();
    await ppo.restartWith((c) => { c.ppo.reward = 'custom'; change(c); }, what);
  }

  check.addEventListener('click', preview);
  input.addEventListener('keydown', (e) => { if (e.key === 'Enter') preview(); });
  trainPpo.addEventListener('click', () => trainAgainst(() => {}, 'training PPO against your reward'));
  hack.addEventListener('click', () => trainAgainst((c) => Object.assign(c.ppo, HACKING), 'the reward-hacking settings'));
  events.on('stage-state', ({ stage, state }) => { if (stage === 'sft' && state === 'done') preview(); });
  if (store.stages.get('sft')?.state() === 'done') preview();
  draw();

  return {
    name: 'your-reward',
    /** The picture's points so far: [{iteration, sqrt_kl, kl, proxy, gold, mean_length}]. */
    points: () => points,
    /** Resolves when the points asked for so far are measured. */
    settled: () => evaluating,
    showRewardHacking: () => hack.click(),
  };
}
