// The GAE stepper: the backward recursion of the math page's §5 run on the inspected completion,
// one token at a time from t = T − 1 down to 0 — first δ_t, then Â_t = δ_t + γλ·Â_{t+1}. γ and λ
// are sliders; Â is recomputed here in the page (www/gae.js, the port of src/rlhf/math/gae.rs) as
// they move. At the run's own γ and λ the page's Â equals the core's advantages_raw.
import { el } from './common.js';
import { equationLink, inlineMath } from '../equations.js';
import { gaeTrace, maxAbsDiff } from '../gae.js';
import { divergingColor, fmt } from './rollout-inspector.js';

const PLAY_MS = 350;

function slider(id, label, help) {
  const input = el('input', { id, type: 'range', min: '0', max: '1', step: '0.01', value: '1', 'aria-describedby': `${id}-help` });
  const output = el('output', { for: id, class: 'slider-value', text: '1.00' });
  const node = el('div', { class: 'slider' }, el('label', { for: id, text: label }), input, output, el('span', { id: `${id}-help`, class: 'help', text: help }));
  return { node, input, output };
}

export function gaeStepper() {
  const gamma = slider('ppo-gae-gamma', 'γ in the stepper', 'discount: how much later rewards count');
  const lam = slider('ppo-gae-lam', 'λ in the stepper', 'GAE: 0 one-step TD · 1 Monte Carlo');
  const td = el('button', { text: 'λ = 0 (one-step TD)' });
  const mc = el('button', { text: 'λ = 1 (Monte Carlo)' });
  const own = el('button', { text: 'Use the run\'s γ, λ' });
  const stepButton = el('button', { text: 'Step', 'aria-label': 'Step the GAE recursion' });
  const play = el('button', { text: 'Play', 'aria-label': 'Play the GAE recursion' });
  const reset = el('button', { text: 'Reset', 'aria-label': 'Reset the GAE recursion' });
  const where = el('p', { class: 'gae-now', 'aria-live': 'polite' });
  const match = el('p', { class: 'caption gae-match' });
  const table = el('table', { class: 'rollout-table gae-table' });
  const scroll = el('div', { class: 'table-scroll', role: 'region', tabindex: '0', 'aria-label': 'GAE recursion table' }, table);
  const controls = [gamma.input, lam.input, td, mc, own, stepButton, play, reset];
  const node = el('div', { class: 'gae-stepper' },
    el('h3', { text: 'GAE stepper: the backward recursion' }),
    el('p', { class: 'caption' }, 'Runs on the completion above, backward from its last token: ',
      inlineMath(String.raw`\delta_t = R_t + \gamma V(s_{t+1}) - V(s_t)`), ', then ', inlineMath(String.raw`\hat A_t = \delta_t + \gamma\lambda\,\hat A_{t+1}`),
      ' (with V = 0 and Â = 0 past the end). λ = 0 keeps only δ_t: one step of real reward, then trust V (biased, low variance). λ = 1 sums every later δ: the Monte-Carlo return minus V (unbiased, high variance). ', equationLink('gae')),
    el('div', { class: 'sliders' }, gamma.node, lam.node),
    el('div', { class: 'controls' }, td, mc, own),
    el('div', { class: 'controls', role: 'group', 'aria-label': 'GAE stepper controls' }, stepButton, play, reset),
    where, scroll, match);

  let record = null;
  let g = 1;
  let l = 0.95;
  let trace = [];
  // Progress through the recursion: `done` tokens finished (Â known); `half`: δ of the next shown.
  let done = 0;
  let half = false;
  let timer = null;

  const total = () => (record ? record.tokens.length : 0);
  const finished = () => done >= total();

  function setEnabled() {
    controls.forEach((c) => { c.disabled = !record; });
    play.textContent = timer ? 'Pause' : 'Play';
    play.setAttribute('aria-label', timer ? 'Pause the GAE recursion' : 'Play the GAE recursion');
  }

  function recompute() {
    if (!record) return;
    trace = gaeTrace(record.rewards, record.values, g, l);
    const advantages = new Array(trace.length).fill(0);
    for (const s of trace) advantages[s.t] = s.lastgaelam;
    node.dataset.gamma = String(g);
    node.dataset.lam = String(l);
    node.dataset.advantages = JSON.stringify(advantages);
    const atOwn = g === record.gamma && l === record.lam;
    const diff = maxAbsDiff(advantages, record.advantages_raw);
    match.textContent = atOwn
      ? `At the run's γ = ${record.gamma.toFixed(3)}, λ = ${record.lam.toFixed(3)}, this page's Â equals the core's Â (raw) row: largest difference ${diff.toExponential(1)}.`
      : `γ = ${g.toFixed(2)}, λ = ${l.toFixed(2)} differ from the run's (γ = ${record.gamma.toFixed(3)}, λ = ${record.lam.toFixed(3)}): the last row is what the core used, the row above what these settings would give (largest difference ${fmt(diff)}).`;
    render();
  }

  function render() {
    if (!record) return;
    const n = total();
    // Columns finished so far: t ≥ n − done; the current token is t = n − done − 1.
    const current = finished() ? -1 : n - done - 1;
    const known = (t) => t >= n - done;
    const deltaKnown = (t) => known(t) || (half && t === current);
    const rows = [
      { name: 'R_t', show: () => true, v: (t) => record.rewards[t] },
      { name: 'V(s_t)', show: () => true, v: (t) => record.values[t] },
      { name: 'V(s_{t+1})', show: () => true, v: (t) => stepOf(t).nextvalues },
      { name: 'δ_t', show: deltaKnown, v: (t) => stepOf(t).delta },
      { name: `Â_t here (γ ${g.toFixed(2)}, λ ${l.toFixed(2)})`, show: known, v: (t) => stepOf(t).lastgaelam, scaled: true },
      { name: 'Â_t core (raw)', show: () => true, v: (t) => record.advantages_raw[t], scaled: true },
    ];
    const span = Math.max(1e-6, ...record.advantages_raw.map(Math.abs), ...trace.map((s) => Math.abs(s.lastgaelam)));
    const head = el('tr', {}, el('th', { scope: 'col', class: 'corner', text: 't →' }),
      ...record.tokens.map((word, t) => el('th', { scope: 'col', class: `tok${t === current ? ' current' : ''}${t === current + 1 && current >= 0 ? ' next' : ''}` },
        el('span', { class: 't', text: String(t) }), el('span', { class: 'word', text: word }))));
    const body = rows.map((row) => el('tr', {}, el('th', { scope: 'row', text: row.name }),
      ...record.tokens.map((_, t) => {
        const shown = row.show(t);
        const v = shown ? row.v(t) : NaN;
        const td = el('td', { class: `num${t === current ? ' current' : ''}`, text: shown ? fmt(v) : '·' });
        if (shown && row.scaled) td.style.background = divergingColor(v, 0, span);
        return td;
      })));
    table.replaceChildren(el('thead', {}, head), el('tbody', {}, ...body));
    where.textContent = describe(current);
  }

  function describe(current) {
    const n = total();
    if (done === 0 && !half) return `Ready: the recursion starts at the last token, t = ${n - 1}, where Â_{t+1} = 0 and V(s_{t+1}) = 0. Step shows δ_t, then Â_t.`;
    if (half) {
      const s = stepOf(current);
      return `t = ${current}: δ_${current} = R_${current} + γ·V(s_${current + 1}) − V(s_${current}) = ${fmt(record.rewards[current])} + ${g.toFixed(2)}·${fmt(s.nextvalues)} − ${fmt(record.values[current])} = ${fmt(s.delta)}`;
    }
    // The token just finished: t = n − done.
    const t = n - done;
    const s = stepOf(t);
    const next = t + 1 < n ? stepOf(t + 1).lastgaelam : 0;
    return `t = ${t}: Â_${t} = δ_${t} + γλ·Â_${t + 1} = ${fmt(s.delta)} + ${(g * l).toFixed(3)}·${fmt(next)} = ${fmt(s.lastgaelam)}`
      + (finished() ? ` · done: Â for all ${n} tokens (γ = ${g.toFixed(2)}, λ = ${l.toFixed(2)}).` : '');
  }

  const stepOf = (t) => trace[total() - 1 - t];

  function step() {
    if (!record) return;
    if (finished()) { done = 0; half = false; }
    if (!half) {
      half = true;
    } else {
      half = false;
      done += 1;
    }
    render();
  }

  function stop() {
    if (timer) clearInterval(timer);
    timer = null;
    setEnabled();
  }

  function togglePlay() {
    if (timer) { stop(); return; }
    if (finished()) { done = 0; half = false; }
    timer = setInterval(() => {
      step();
      if (finished()) stop();
    }, PLAY_MS);
    setEnabled();
  }

  function setParams(newGamma, newLam) {
    g = newGamma;
    l = newLam;
    gamma.input.value = String(g);
    lam.input.value = String(l);
    gamma.output.textContent = g.toFixed(2);
    lam.output.textContent = l.toFixed(2);
    recompute();
  }

  gamma.input.addEventListener('input', () => setParams(Number(gamma.input.value), l));
  lam.input.addEventListener('input', () => setParams(g, Number(lam.input.value)));
  td.addEventListener('click', () => setParams(g, 0));
  mc.addEventListener('click', () => setParams(g, 1));
  own.addEventListener('click', () => record && setParams(record.gamma, record.lam));
  stepButton.addEventListener('click', () => { stop(); step(); });
  play.addEventListener('click', togglePlay);
  reset.addEventListener('click', () => { stop(); done = 0; half = false; render(); });
  setEnabled();
  where.textContent = 'The stepper opens on the inspected completion after the first rollout.';

  return {
    node,
    /** A new record: keep the learner's γ, λ if moved, else take the run's; show the full result. */
    setRecord(r) {
      const first = !record;
      const atOwn = record && g === record.gamma && l === record.lam;
      record = r;
      stop();
      done = total();
      half = false;
      if (first || atOwn) setParams(r.gamma, r.lam);
      else recompute();
    },
    clear() {
      stop();
      record = null;
      trace = [];
      table.replaceChildren();
      match.textContent = '';
      delete node.dataset.advantages;
      where.textContent = 'The stepper opens on the inspected completion after the first rollout.';
      setEnabled();
    },
  };
}
