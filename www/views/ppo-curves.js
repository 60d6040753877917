// The PPO panel's curves over iterations, each with its explanation and equation link. Rollout
// figures (score, gold, KL, entropy, length) arrive with each rollout; the update figures
// (clip fraction, approx KL, value loss) are the iteration's averages, sent with its last update.
import { el, chartBox } from './common.js';
import uPlot from 'uplot';
import { LineChart } from '../charts.js';

const AVERAGED = ' Averaged over the iteration\'s minibatch updates.';

const CURVES = [
  {
    id: 'score', title: 'RM score and gold utility', when: 'rollout', equation: 'effective-reward',
    text: 'Mean reward-model score r_φ of each rollout beside the hidden gold utility of the same completions. Both should rise; if the score climbs while gold stalls or falls, π_θ is hacking r_φ.',
    series: [{ key: 'objective/scores', label: 'RM score r_φ' }, { key: 'objective/gold', label: 'gold utility' }],
  },
  { id: 'kl', title: 'KL(π_θ ‖ π_ref) per completion', when: 'rollout', metric: 'objective/kl', series: [{ key: 'objective/kl', label: 'KL' }] },
  { id: 'clipfrac', title: 'Clip fraction', when: 'iteration', metric: 'policy/clipfrac', suffix: AVERAGED, share: true, series: [{ key: 'policy/clipfrac_avg', label: 'clip fraction' }] },
  { id: 'approxkl', title: 'Approx KL of the update', when: 'iteration', metric: 'policy/approxkl', suffix: AVERAGED, series: [{ key: 'policy/approxkl_avg', label: 'approx KL' }] },
  { id: 'value', title: 'Value loss', when: 'iteration', metric: 'loss/value', suffix: AVERAGED, series: [{ key: 'loss/value_avg', label: 'value loss' }] },
  { id: 'entropy', title: 'Entropy of the samples', when: 'rollout', metric: 'objective/entropy', series: [{ key: 'objective/entropy', label: 'Σ −log π_θ' }] },
  {
    id: 'length', title: 'Mean completion length', when: 'rollout', metric: 'val/mean_length', equation: 'kl',
    text: 'Mean completion length in tokens, <eos> included. The KL and the entropy above are sums over the tokens, so they move with it.',
    series: [{ key: 'val/mean_length', label: 'tokens' }],
  },
];

/** Decimals that write `step` exactly (at most 8). */
function decimalsOf(step) {
  for (let d = 0; d < 8; d++) if (Math.abs(Math.round(step * 10 ** d) - step * 10 ** d) < 1e-6) return d;
  return 8;
}

/**
 * Tick labels with as many decimals as the tick spacing needs (uPlot's default keeps three, so a
 * value loss of 0.0004 reads "0, 0, 0"), and whole iterations only on the x axis.
 */
function readableTicks(chart) {
  const [x, y] = chart.plot.axes;
  x.values = (u, splits) => splits.map((v) => (Number.isInteger(v) ? String(v) : ''));
  y.values = (u, splits, axisIndex, space, incr) => {
    const d = decimalsOf(Math.abs(incr) || 1);
    return splits.map((v) => (v == null ? '' : v.toFixed(d).replace('-', '−')));
  };
  // Room for the longest label (uPlot's default is a fixed 50 px).
  y.size = (u, values) => Math.max(40, 18 + 7 * Math.max(0, ...(values ?? []).map((v) => String(v).length)));
  return chart;
}

export function ppoCurves(store) {
  const curves = iterationCurves(store, CURVES, 'ppo-curves');
  return {
    ...curves,
    /** The run's settings: a target-KL guide on the KL chart when β adapts. */
    setPlan(plan) {
      curves.chart('kl').setGuides(plan.adaptive_kl ? [{ y: plan.target_kl, label: `target KL ${plan.target_kl}`, color: '#6b7280' }] : []);
    },
  };
}

/**
 * Charts over iterations of an online RL stage (PPO, GRPO): each spec draws its `series` keys
 * from the rollout's metrics (`when: 'rollout'`) or from the iteration's last update, which
 * carries the iteration's averages (`when: 'iteration'`).
 */
export function iterationCurves(store, specs, className) {
  const CURVES = specs;
  const boxes = CURVES.map((c) => {
    const info = c.metric ? store.catalog.find((m) => m.name === c.metric) : null;
    const text = c.text ?? `${info?.explanation ?? ''}${c.suffix ?? ''}`;
    const box = chartBox(store, { metric: c.metric, text, equation: c.equation });
    box.dataset.curve = c.id;
    return box;
  });
  const node = el('div', { class: `charts ${className}` }, ...boxes);
  let charts = [];

  return {
    node,
    /** Builds the charts once the panel is in the page (they take their host's width). */
    async mount(yieldTask = async () => {}) {
      for (const [i, c] of CURVES.entries()) {
        charts.push(readableTicks(new LineChart(boxes[i].host, {
          title: c.title,
          xLabel: 'iteration',
          height: 190,
          series: c.series.map((s) => ({ ...s, points: true })),
        })));
        // A share starts at 0 and reads as one (uPlot spans 0 to 100 when every value is 0).
        // A single value (KL is 0 at the first rollout) spans a little around it, not 0 to 100.
        const y = charts[i].plot.scales.y;
        if (c.share) y.range = (u, min, max) => [0, Math.min(1, Math.max(0.05, 1.2 * (max ?? 0)))];
        else y.range = (u, min, max) => (min == null ? [0, 1] : min === max ? [min - Math.max(0.01, Math.abs(min) / 10), max + Math.max(0.01, Math.abs(max) / 10)] : uPlot.rangeNum(min, max, 0.1, true));
        await yieldTask();
      }
    },
    chart: (id) => charts[CURVES.findIndex((c) => c.id === id)],
    push(m) {
      const when = m.phase === 0 ? 'rollout' : m.iteration_done ? 'iteration' : null;
      if (!when) return;
      // One chart per task: the first points of a run draw at once, and seven redraws in one
      // task would hold the main thread.
      CURVES.forEach((c, i) => { if (c.when === when) setTimeout(() => charts[i].push(m.iteration, m), 0); });
    },
    clear() { charts.forEach((c) => setTimeout(() => c.clear(), 0)); },
  };
}
