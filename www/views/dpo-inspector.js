// The DPO pair inspector: one held-out pair token by token, each token with its share of the
// implicit reward β·(log π_θ − log π_ref), on a diverging scale (green: π_θ made the token more
// likely than π_ref did; red: less), and the sums that enter the DPO loss.
import { el } from './common.js';
import { inlineMath } from '../equations.js';

const fmt = (v, digits = 3) => `${v >= 0 ? '+' : '−'}${Math.abs(v).toFixed(digits)}`;

/** Background for value `v` on a scale symmetric around 0 with `max` its end. */
export function divergingColor(v, max) {
  const a = Math.min(1, Math.abs(v) / (max || 1));
  const alpha = (0.08 + 0.72 * a).toFixed(3);
  return v >= 0 ? `rgba(22, 163, 74, ${alpha})` : `rgba(220, 38, 38, ${alpha})`;
}

export function pairInspector(store) {
  const prev = el('button', { text: 'Previous pair', disabled: true });
  const next = el('button', { text: 'Next pair', disabled: true });
  const position = el('span', { class: 'muted', 'aria-live': 'polite', text: 'The inspector opens when DPO begins.' });
  const prompt = el('p', { class: 'pair-prompt' });
  const rows = el('div', { class: 'pair-rows' });
  const summary = el('p', { class: 'pair-summary' });
  const legend = el('p', { class: 'caption scale-legend' });
  const note = el('p', { class: 'caption inspector-note', 'aria-live': 'polite' });
  const node = el('div', { class: 'dpo-inspector' },
    el('h3', { text: 'Pair inspector: the implicit reward, token by token' }),
    el('p', { class: 'caption' }, 'Each token of a held-out pair with its share of the implicit reward ', inlineMath(String.raw`\beta\,[\log\pi_\theta(y_t\mid\cdot) - \log\pi_{\text{ref}}(y_t\mid\cdot)]`), '. The sums are the r(x, y) of the DPO loss; DPO pushes the chosen sum up and the rejected sum down.'),
    el('div', { class: 'controls' }, prev, position, next),
    note, prompt, rows, summary, legend);

  let index = 0;
  let count = 0;
  let label = 'held-out';
  let loading = false;
  let queued = false;

  function tokenRow(title, tokens, rewards, total, max) {
    const digits = max < 0.1 ? 3 : 2;
    const chips = tokens.map((word, i) => {
      const v = rewards[i] ?? 0;
      const chip = el('span', { class: 'token', title: `${word}: ${fmt(v, 4)}` },
        el('span', { class: 'word', text: word }),
        el('span', { class: 'value', text: fmt(v, digits) }));
      chip.style.background = divergingColor(v, max);
      return chip;
    });
    return el('div', { class: 'pair-row' },
      el('h4', { text: title }),
      el('div', { class: 'tokens', role: 'list', 'aria-label': `${title} tokens` }, ...chips.map((c) => { c.setAttribute('role', 'listitem'); return c; })),
      el('p', { class: 'sum', text: `Σ over ${tokens.length} tokens: r = ${fmt(total)}` }));
  }

  async function load() {
    if (count === 0) return;
    if (loading) { queued = true; return; }
    loading = true;
    try {
      const p = await store.client.call('dpoInspect', index);
      const all = [...p.chosen_rewards, ...p.rejected_rewards];
      const max = Math.max(1e-6, ...all.map(Math.abs));
      position.textContent = `${label} pair ${index + 1} of ${count}`;
      prompt.textContent = `prompt: ${p.prompt}`;
      rows.replaceChildren(
        tokenRow('chosen y_w', p.chosen, p.chosen_rewards, p.reward_chosen, max),
        tokenRow('rejected y_l', p.rejected, p.rejected_rewards, p.reward_rejected, max));
      const margin = p.reward_chosen - p.reward_rejected;
      const prob = 1 / (1 + Math.exp(-margin));
      summary.textContent = `margin r(y_w) − r(y_l) = ${fmt(margin)} · σ(margin) = ${prob.toFixed(3)}: the implicit reward model's probability that y_w is preferred (${margin > 0 ? 'right' : margin < 0 ? 'wrong' : 'undecided'}) · loss on this pair −log σ = ${(-Math.log(prob)).toFixed(3)} · β = ${Number(p.beta.toPrecision(4))}`;
      legend.replaceChildren('scale: ');
      for (const v of [-max, -max / 2, 0, max / 2, max]) {
        const swatch = el('span', { class: 'swatch', text: fmt(v, max < 0.1 ? 3 : 2) });
        swatch.style.background = divergingColor(v, max);
        legend.append(swatch);
      }
    } catch (e) {
      position.textContent = `The pair could not be inspected: ${e.message}`;
    } finally {
      loading = false;
      if (queued) { queued = false; load(); }
    }
  }

  const move = (delta) => {
    if (count === 0) return;
    index = (index + delta + count) % count;
    load();
  };
  prev.addEventListener('click', () => move(-1));
  next.addEventListener('click', () => move(1));

  node.setPlan = (plan) => {
    // dpoInspect(i) reads the held-out pairs (the reward model's), or the training pairs if none are held out.
    label = plan.held_out > 0 ? 'held-out' : 'training';
    count = plan.held_out > 0 ? plan.held_out : plan.train;
    index = Math.min(index, Math.max(0, count - 1));
    prev.disabled = next.disabled = count < 2;
  };
  node.refresh = load;
  node.setNote = (text) => { note.textContent = text ?? ''; note.hidden = !text; };
  node.setNote('');
  node.clear = () => {
    count = 0;
    index = 0;
    prev.disabled = next.disabled = true;
    position.textContent = 'The inspector opens when DPO begins.';
    prompt.textContent = '';
    summary.textContent = '';
    legend.replaceChildren();
    rows.replaceChildren();
  };
  return node;
}
