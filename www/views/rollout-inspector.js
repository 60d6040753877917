// The rollout inspector: one completion of the current PPO rollout, token by token, with every
// per-token quantity of the math page's §3–§6 in a row — log-probs, the KL penalty, the terminal
// reward, R_t, V, δ, Â (raw and whitened), R̂, ρ and whether the clip was active. Cells are
// colored on a diverging scale (green above the row's center, red below); each row label links to
// its equation. Model text (tokens, prompts) is set with textContent only.
import { el } from './common.js';
import { equationLink, inlineMath } from '../equations.js';

const REFRESH_MS = 400;

/** `rec` → one number per token. `center`: the value that is neutral (white) on the scale. */
export const ROWS = [
  { key: 'logprobs', tex: String.raw`\log\pi_\theta(a_t\mid s_t)`, name: 'log π_θ', eq: 'kl', of: (r) => r.logprobs },
  { key: 'ref_logprobs', tex: String.raw`\log\pi_{\text{ref}}(a_t\mid s_t)`, name: 'log π_ref', eq: 'kl', of: (r) => r.ref_logprobs },
  { key: 'non_score', tex: String.raw`-\beta\,\mathrm{kl}_t`, name: 'KL penalty −β·kl', eq: 'effective-reward', of: (r) => r.non_score },
  { key: 'terminal', tex: String.raw`\mathbf{1}[t=T]\,r_\phi`, name: 'terminal reward', eq: 'effective-reward', of: (r) => r.tokens.map((_, t) => (t === r.tokens.length - 1 ? r.score : 0)) },
  { key: 'rewards', tex: String.raw`R_t`, name: 'R_t', eq: 'effective-reward', of: (r) => r.rewards },
  { key: 'values', tex: String.raw`V_\psi(s_t)`, name: 'V(s_t)', eq: 'value-loss', of: (r) => r.values },
  { key: 'deltas', tex: String.raw`\delta_t`, name: 'δ_t', eq: 'gae', of: (r) => r.deltas },
  { key: 'advantages_raw', tex: String.raw`\hat A_t\ \text{(raw)}`, name: 'Â_t (raw)', eq: 'gae', of: (r) => r.advantages_raw },
  { key: 'advantages', tex: String.raw`\hat A_t\ \text{(whitened)}`, name: 'Â_t (whitened)', eq: 'gae', of: (r) => r.advantages },
  { key: 'returns', tex: String.raw`\hat R_t = \hat A_t + V`, name: 'R̂_t', eq: 'value-loss', of: (r) => r.returns },
  { key: 'ratio', tex: String.raw`\rho_t`, name: 'ρ_t', eq: 'ratio', center: 1, of: (r) => r.ratio },
  { key: 'clipped', tex: String.raw`\text{clipped}`, name: 'clipped (1 = flat)', eq: 'clip', flag: true, of: (r) => r.clipped.map(Number) },
];

/** Background for `v` on a scale symmetric around `center`, `span` its end. */
export function divergingColor(v, center, span) {
  const d = v - center;
  const a = Math.min(1, Math.abs(d) / (span || 1));
  if (a < 1e-9) return 'transparent';
  const alpha = (0.06 + 0.64 * a).toFixed(3);
  return d > 0 ? `rgba(22, 163, 74, ${alpha})` : `rgba(220, 38, 38, ${alpha})`;
}

/** A signed number with a real minus sign; tiny values read as 0. */
export function fmt(v, digits = 3) {
  if (!Number.isFinite(v)) return '—';
  const text = Math.abs(v).toFixed(digits);
  if (Number(text) === 0) return (0).toFixed(digits);
  return `${v < 0 ? '−' : ''}${text}`;
}

/**
 * @param store the page's store
 * @param onRecord called with each record loaded (the GAE stepper and clipping view use it)
 */
export function rolloutInspector(store, onRecord = () => {}) {
  const select = el('select', { id: 'ppo-record-index' }, el('option', { value: '0', text: '#1' }));
  select.disabled = true;
  const position = el('span', { class: 'muted', 'aria-live': 'polite', text: 'The inspector fills after the first rollout.' });
  const summary = el('p', { class: 'record-summary' });
  const prompt = el('span', { class: 'record-prompt' });
  const table = el('table', { class: 'rollout-table' });
  const scroll = el('div', { class: 'table-scroll', role: 'region', tabindex: '0', 'aria-label': 'Rollout inspector: one column per token' }, table);
  scroll.hidden = true;
  // Row labels are typeset once and reused for every record.
  const labels = ROWS.map((row) => {
    const th = el('th', { scope: 'row', title: row.name }, inlineMath(row.tex), ' ', equationLink(row.eq));
    th.setAttribute('aria-label', row.name);
    return th;
  });

  const node = el('div', { class: 'rollout-inspector' },
    el('h3', { text: 'Rollout inspector: one completion, token by token' }),
    el('p', { class: 'caption' },
      'Every per-token quantity of one sampled completion. The reward is dense: each token pays ', inlineMath(String.raw`-\beta\log\frac{\pi_\theta}{\pi_{\text{ref}}}`),
      ', and the reward model\'s score lands on the last token only. GAE turns these rewards into advantages; PPO then moves ρ. Green: above the row\'s center (0, or 1 for ρ); red: below.'),
    el('div', { class: 'controls' }, el('label', { for: 'ppo-record-index', text: 'Completion' }), select, position),
    summary,
    scroll);

  let index = 0;
  let batch = 0;
  let loading = false;
  let queued = false;
  let record = null;
  let generation = 0;

  function render(r) {
    const head = el('tr', {}, el('th', { scope: 'col', class: 'corner', text: 'token →' }),
      ...r.tokens.map((word, t) => el('th', { scope: 'col', class: 'tok', title: `t = ${t}` }, el('span', { class: 't', text: String(t) }), el('span', { class: 'word', text: word }))));
    const body = ROWS.map((row, i) => {
      const values = row.of(r);
      const center = row.center ?? 0;
      const span = Math.max(1e-6, ...values.map((v) => Math.abs(v - center)));
      const cells = values.map((v, t) => {
        const td = el('td', { class: 'num', text: row.flag ? String(v) : fmt(v), title: `${row.name} at t = ${t} (${r.tokens[t]}): ${row.flag ? (v ? 'clipped' : 'not clipped') : v}` });
        td.style.background = row.flag ? (v ? 'rgba(234, 88, 12, 0.45)' : 'transparent') : divergingColor(v, center, span);
        return td;
      });
      return el('tr', { 'data-row': row.key }, labels[i], ...cells);
    });
    table.replaceChildren(el('thead', {}, head), el('tbody', {}, ...body));
    scroll.hidden = false;
    const kl = r.kl.reduce((a, b) => a + b, 0);
    prompt.textContent = r.prompt;
    summary.replaceChildren('Prompt: ', prompt,
      ` · T = ${r.tokens.length} tokens · r_φ = ${fmt(r.score)} · gold = ${fmt(r.gold)} · Σ kl = ${fmt(kl)} · β = ${fmt(r.kl_coef, 4)} · γ = ${r.gamma.toFixed(3)} · λ = ${r.lam.toFixed(3)} · ε = ${r.cliprange.toFixed(2)}`);
  }

  function setBatch(n) {
    if (n === batch) return;
    batch = n;
    select.replaceChildren(...Array.from({ length: n }, (_, i) => el('option', { value: String(i), text: `#${i + 1} of ${n}` })));
    index = Math.min(index, n - 1);
    select.value = String(index);
  }

  async function load() {
    if (loading) { queued = true; return; }
    loading = true;
    const gen = generation;
    try {
      const r = await store.client.call('ppoRecord', index);
      if (gen !== generation) return;
      record = r;
      setBatch(r.batch);
      select.disabled = false;
      position.textContent = `completion ${index + 1} of ${r.batch} in this rollout`;
      render(r);
      onRecord(r);
    } catch (e) {
      if (gen === generation) position.textContent = `No rollout to show: ${e.message}`;
    } finally {
      loading = false;
      if (queued) { queued = false; load(); }
    }
  }

  select.addEventListener('change', () => { index = Number(select.value); load(); });

  // During a fast run a rollout and an iteration's end come several times a second: redraw the
  // table (and the stepper and clipping view after it) at most every REFRESH_MS, the last one kept.
  let lastRefresh = -Infinity;
  let pending = null;
  // Off screen, a refresh only marks the table stale: it is rebuilt when it comes into view, so
  // a run the learner is not watching costs the page nothing here.
  let visible = true;
  let stale = false;
  new IntersectionObserver(([entry]) => {
    visible = entry.isIntersecting;
    if (visible && stale) { stale = false; refresh(); }
  }, { rootMargin: '200px' }).observe(node);
  function refresh() {
    if (!visible) { stale = true; return; }
    const wait = lastRefresh + REFRESH_MS - performance.now();
    if (wait > 0) {
      pending ??= setTimeout(() => { pending = null; refresh(); }, wait);
      return;
    }
    lastRefresh = performance.now();
    load();
  }

  return {
    node,
    /** Loads the selected completion of the current rollout again (after a rollout or update). */
    refresh,
    /** Loads the selected completion now, on screen or not (the lesson shows its parts elsewhere). */
    reload: () => load(),
    record: () => record,
    clear() {
      clearTimeout(pending);
      pending = null;
      generation += 1;
      record = null;
      batch = 0;
      index = 0;
      table.replaceChildren();
      scroll.hidden = true;
      summary.replaceChildren();
      select.replaceChildren(el('option', { value: '0', text: '#1' }));
      select.disabled = true;
      position.textContent = 'The inspector fills after the first rollout.';
    },
  };
}
