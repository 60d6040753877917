// The lesson's "Write your own reward" step: a reward that is a program, not a model. The learner
// edits the expression of the lab's "Rewards you choose" panel (views/your-reward.js: the same
// setting, `reward.expression`, checked by the core — a bad one is refused with its column and
// changes nothing), trains PPO against it from π_ref at β = 0 through the PPO panel's own
// `restartWith`, and sees the panel's measurements (`store.yourReward.points()`: the policy every
// 5 iterations on 128 fresh prompts) drawn small: the reward trained against and gold, against √KL.
import { el } from '../dom.js';
import { XYChart } from '../charts.js';
import { num } from './figures.js';

// Half the panel's 60 iterations: gold has peaked (iterations 10–15) and fallen (≈ −3.6 by 25)
// well within 30, and the lesson stays short.
export const LESSON_ITERATIONS = 30;

const q = (selector) => document.querySelector(selector);

/** What the points say, in one sentence. */
export function overoptimizationSentence(points) {
  const sorted = [...points].sort((a, b) => a.iteration - b.iteration);
  if (sorted.length < 2) return null;
  const peak = sorted.reduce((best, p) => (p.gold > best.gold ? p : best), sorted[0]);
  const first = sorted[0];
  const last = sorted.at(-1);
  const fell = peak.gold - last.gold > 0.05;
  return `Gold peaked at ${num(peak.gold, 2)} (iteration ${peak.iteration}) and is ${num(last.gold, 2)} at iteration ${last.iteration}, while your reward went from ${num(first.proxy, 2)} to ${num(last.proxy, 2)}${fell ? ': π_θ found what your reward pays for and the truth does not.' : '.'}`;
}

export const yourRewardStep = {
  short: 'Your own reward',
  title: 'Write your own reward',
  now: 'A reward need not be learned: it can be a program that scores each completion, which is what RLVR (reinforcement learning from verifiable rewards) trains on — a checked answer, a passing test. Here the program is the expression you write. The default pays 2 for every "great", adds the completion\'s sentiment and takes 0.1 per token beyond 12. PPO trains against it from π_ref with β = 0; the gold utility stays the hidden truth, never seen by π_θ, measured on the figure.',
  equation: 'objective',
  equationName: 'the KL-regularized objective; here the reward is your expression and beta is zero',
  needs: ['sft'],
  next: 'Next: GRPO, without a critic',
  gate(ctx) {
    return ctx.store.stages.get('ppo').state() === 'running' && ctx.store.config.ppo.reward === 'custom' ? 'Wait for the run against your reward to finish.' : null;
  },
  live(ctx) {
    const { store } = ctx;
    const line = el('p', { class: 'lesson-figure', 'aria-live': 'polite' });
    const proxyHost = el('div', { class: 'chart-host' });
    const goldHost = el('div', { class: 'chart-host' });
    const figure = el('div', { class: 'lesson-your-reward' }, el('div', { class: 'chart' }, proxyHost), el('div', { class: 'chart' }, goldHost));
    const small = { xLabel: '√KL(π‖π_ref)', height: 170 };
    const proxy = new XYChart(proxyHost, { ...small, title: 'Your reward', yLabel: 'reward', series: [{ label: 'your reward', color: '#2563eb', line: true, points: true }] });
    const gold = new XYChart(goldHost, { ...small, title: 'Gold utility (hidden)', yLabel: 'gold', series: [{ label: 'gold utility', color: '#ca8a04', line: true, points: true }] });
    const draw = () => {
      const points = [...(store.yourReward?.points() ?? [])].sort((a, b) => a.iteration - b.iteration);
      proxy.set(0, points.map((p) => p.sqrt_kl), points.map((p) => p.proxy));
      gold.set(0, points.map((p) => p.sqrt_kl), points.map((p) => p.gold));
      const running = store.stages.get('ppo').state() === 'running';
      line.textContent = overoptimizationSentence(points)
        ?? (running ? 'Measuring π_θ every 5 iterations on 128 fresh prompts…' : 'Press "Train against it (β = 0)": the points appear as PPO trains, one every 5 iterations.');
    };
    // A new point follows each fifth iteration (the panel measures it): redraw when it is in.
    let pending = false;
    const off = store.client.on((e) => {
      if (e.stage !== 'ppo' || e.tag || e.event !== 'step' || !e.metrics?.iteration_done || pending) return;
      pending = true;
      setTimeout(() => store.yourReward.settled().then(() => { pending = false; draw(); }), 0);
    });
    ctx.onDispose(off);
    ctx.onStage(({ stage }) => { if (stage === 'ppo') store.yourReward.settled().then(draw); });
    return {
      nodes: [line, figure],
      async refresh() { await store.yourReward?.settled(); draw(); },
    };
  },
  tryThis(ctx) {
    const { store } = ctx;
    const input = el('input', { id: 'lesson-reward-expression', type: 'text', spellcheck: 'false', autocomplete: 'off', value: store.config.reward.expression, 'aria-describedby': 'lesson-reward-help lesson-reward-error' });
    const error = el('p', { class: 'error lesson-reward-error', id: 'lesson-reward-error', role: 'alert' });
    const train = el('button', { type: 'button', class: 'primary', text: 'Train against it (β = 0)' });
    const ppo = () => store.stages.get('ppo');
    const busy = () => { train.disabled = ppo().state() === 'running'; };

    /** The expression in the box, applied as the lab's panel applies it (views/your-reward.js). */
    async function apply() {
      const text = input.value;
      error.textContent = '';
      const candidate = structuredClone(store.config);
      candidate.reward.expression = text;
      try {
        await store.client.call('setConfig', JSON.stringify(candidate));
      } catch (e) {
        error.textContent = e.message;
        input.setAttribute('aria-invalid', 'true');
        return false;
      }
      input.removeAttribute('aria-invalid');
      store.config = candidate;
      // The lab's box shows the same expression (its "Train" and "Show reward hacking" apply it).
      const lab = q('#reward-expression');
      if (lab) lab.value = text;
      setTimeout(() => store.saveUrl(), 0);
      store.events.emit('config-changed', { key: 'reward.expression', value: text });
      return true;
    }
    input.addEventListener('change', apply);
    train.addEventListener('click', async () => {
      if (!(await apply())) return;
      train.disabled = true;
      // The β > 0 run, kept for the β = 0 step's comparison before this run replaces it.
      await ctx.lesson.keepBaseline();
      await ppo().restartWith((c) => { c.ppo.reward = 'custom'; c.ppo.kl_coef = 0; c.ppo.iterations = LESSON_ITERATIONS; }, 'training against your reward');
      busy();
    });
    ctx.onStage(({ stage }) => { if (stage === 'ppo') busy(); });
    busy();
    return [
      el('div', { class: 'lesson-reward-box' },
        el('label', { for: 'lesson-reward-expression', text: 'Your reward' }), input, error,
        el('p', { class: 'help', id: 'lesson-reward-help', text: 'Numbers, + − * /, parentheses and terms such as count("word"), sentiment, length_over(n) (the full list: the lab’s “Rewards you choose”). A bad expression is refused with its column.' })),
      el('div', { class: 'controls' }, train),
      el('p', { text: `Train, then read the figure: your reward climbs as π_θ moves away from π_ref (√KL), while gold rises a little and falls. Change the expression — drop the "great" term, or weight sentiment — and train again (${LESSON_ITERATIONS} iterations).` }),
    ];
  },
};
