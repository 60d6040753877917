// The reward panel's view of the held-out pairs: a scatter of r_φ(y_w) against r_φ(y_l) with the
// diagonal y = x (above it the reward model agrees with the label), and an inspector that steps
// through the pairs one by one with both completions, the label, σ(r_first − r_second) and the
// gold utilities.
import { el, chartBox } from './common.js';
import { XYChart } from '../charts.js';
import { inlineMath } from '../equations.js';

const signed = (v, d = 2) => (Number.isFinite(v) ? `${v >= 0 ? '+' : '−'}${Math.abs(v).toFixed(d)}` : '—');
const pct = (v) => `${(100 * v).toFixed(1)}%`;
const LABEL = { first: 'the first (left)', second: 'the second (right)', tie: 'a tie' };

/** [r_w, r_l] of a strict pair, or null for a tie. */
const wl = (p) => (p.preference === 'first' ? [p.r_first, p.r_second] : p.preference === 'second' ? [p.r_second, p.r_first] : null);

export function heldOutView(store) {
  const scatterBox = chartBox(store, { text: 'Each held-out pair after the latest evaluation: r_φ of the preferred completion y_w (up) against r_φ of the rejected one y_l (across). Above the dashed diagonal y = x the reward model agrees with the label. Ties are left out.', equation: 'bt-model' });
  scatterBox.classList.add('rm-scatter');
  const scatterNote = el('p', { class: 'caption scatter-note', 'aria-live': 'polite' });
  scatterBox.append(scatterNote);

  const prev = el('button', { text: 'Previous pair', disabled: true });
  const next = el('button', { text: 'Next pair', disabled: true });
  const position = el('span', { class: 'muted', 'aria-live': 'polite', text: 'The held-out pairs appear when training begins.' });
  const prompt = el('p', { class: 'pair-prompt' });
  const sides = el('div', { class: 'rm-sides' });
  const verdict = el('p', { class: 'rm-verdict' });
  const inspector = el('div', { class: 'rm-inspector' },
    el('h3', { text: 'Pair inspector: held-out pairs as r_φ scores them' }),
    el('p', { class: 'caption' }, 'The reward model\'s probability that the first completion is preferred is ', inlineMath(String.raw`\sigma\big(r_\phi(x,y_1) - r_\phi(x,y_2)\big)`), '. The gold utility is the hidden score the simulated labeler judges by; the learner never sees it during training.'),
    el('div', { class: 'controls' }, prev, position, next),
    prompt, sides, verdict);

  let chart = null;
  let range = null; // [lo, hi] of the scores on show
  let pairs = [];
  let index = 0;

  function side(title, text, r, gold, role) {
    const tag = role === 'w' ? 'preferred · y_w' : role === 'l' ? 'rejected · y_l' : 'tie';
    const ended = /\s*<eos>\s*$/.test(text);
    return el('div', { class: `rm-side ${role}` },
      el('h4', {}, el('span', { text: title }), el('span', { class: 'tag', text: tag })),
      el('p', { class: 'completion' }, el('span', { text: text.replace(/\s*<eos>\s*$/, '') }), el('span', { class: ended ? 'eos' : 'cut', text: ended ? '<eos>' : '… no <eos>' })),
      el('dl', {},
        el('dt', { text: 'r_φ score' }), el('dd', { text: signed(r, 3) }),
        el('dt', { text: 'gold utility' }), el('dd', { text: signed(gold, 2) })));
  }

  function show() {
    prev.disabled = index <= 0;
    next.disabled = index >= pairs.length - 1;
    const p = pairs[index];
    if (!p) {
      prompt.textContent = '';
      sides.replaceChildren();
      verdict.textContent = '';
      return;
    }
    position.textContent = `Held-out pair ${index + 1} of ${pairs.length}`;
    prompt.textContent = p.prompt;
    const [roleFirst, roleSecond] = p.preference === 'first' ? ['w', 'l'] : p.preference === 'second' ? ['l', 'w'] : ['t', 't'];
    sides.replaceChildren(
      side('First (left)', p.first, p.r_first, p.gold_first, roleFirst),
      side('Second (right)', p.second, p.r_second, p.gold_second, roleSecond));
    const model = p.r_first > p.r_second ? 'first' : p.r_first < p.r_second ? 'second' : 'tie';
    const gold = p.gold_first > p.gold_second ? 'first' : p.gold_first < p.gold_second ? 'second' : 'tie';
    const agrees = p.preference === 'tie' ? null : model === p.preference;
    verdict.replaceChildren(
      el('span', { text: `σ(r₁ − r₂) = σ(${signed(p.r_first - p.r_second, 3)}) = ${p.p_first.toFixed(3)}: ` }),
      el('strong', { class: agrees == null ? '' : agrees ? 'good' : 'bad', text: agrees == null ? `the label is a tie (target ½); r_φ leans to ${LABEL[model]}.` : agrees ? `r_φ agrees with the label (${LABEL[p.preference]}).` : `r_φ disagrees with the label (${LABEL[p.preference]}).` }),
      el('span', { text: ` Gold order: ${LABEL[gold]} is better${p.preference !== 'tie' && gold !== 'tie' ? (gold === p.preference ? ', as labeled.' : ' — the label went against it (labeler noise).') : '.'}` }));
  }

  prev.addEventListener('click', () => { index = Math.max(0, index - 1); show(); });
  next.addEventListener('click', () => { index = Math.min(pairs.length - 1, index + 1); show(); });

  return {
    scatterBox,
    inspector,
    /** Draws into the boxes: call once they are in the document. */
    mount() {
      chart = new XYChart(scatterBox.host, {
        title: 'Held-out pairs: r(y_w) against r(y_l)',
        xLabel: 'r_φ(x, y_l), rejected',
        yLabel: 'r_φ(x, y_w), preferred',
        series: [{ label: 'r_φ agrees', color: '#16a34a' }, { label: 'r_φ disagrees', color: '#dc2626' }],
      });
      // Both axes share one range (both are r_φ scores), so y = x runs corner to corner at 45°.
      for (const key of ['x', 'y']) {
        const scale = chart.plot.scales[key];
        const auto = scale.range;
        scale.range = (u, min, max, k) => (range && min != null ? [...range] : auto(u, min, max, k));
      }
    },
    /** New scores for the held-out pairs (from rewardInspect). */
    set(inspected) {
      pairs = inspected;
      index = Math.min(index, Math.max(0, pairs.length - 1));
      const right = [[], []];
      const wrong = [[], []];
      for (const p of pairs) {
        const s = wl(p);
        if (!s) continue;
        const into = s[0] > s[1] ? right : wrong;
        into[0].push(s[1]);
        into[1].push(s[0]);
      }
      const scores = pairs.flatMap((p) => [p.r_first, p.r_second]).filter(Number.isFinite);
      if (scores.length) {
        const lo = Math.min(...scores);
        const hi = Math.max(...scores);
        const pad = Math.max(1e-3, 0.05 * (hi - lo));
        range = [lo - pad, hi + pad];
        chart.setGuides([{ x1: range[0], y1: range[0], x2: range[1], y2: range[1], label: 'y = x' }]);
      }
      chart.set(0, ...right);
      chart.set(1, ...wrong);
      const strict = right[0].length + wrong[0].length;
      scatterNote.textContent = strict
        ? `${right[0].length} of ${strict} strict held-out pairs above the diagonal (${pct(right[0].length / strict)})${pairs.length > strict ? `; ${pairs.length - strict} ties left out` : ''}.`
        : 'No strict held-out pairs to draw.';
      if (!pairs.length) position.textContent = 'No held-out pairs: the held-out share is 0.';
      show();
    },
    clear() {
      pairs = [];
      index = 0;
      chart?.set(0, [], []);
      chart?.set(1, [], []);
      range = null;
      chart?.setGuides([]);
      scatterNote.textContent = '';
      position.textContent = 'The held-out pairs appear when training begins.';
      show();
    },
  };
}
