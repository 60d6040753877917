// The lesson's GRPO step: the critic replaced by a group. GRPO trains from π_ref against the same
// frozen r_φ as PPO, through the lab's own GRPO panel (views/grpo.js, `store.stages.get('grpo')`);
// the step lends its "RM score and gold utility" chart, says the run's numbers, and shows one
// group of the latest rollout — G completions of one prompt, r_i, the group's baseline and Â_i —
// the group inspector's idea in a few rows.
import { el } from '../dom.js';
import { inlineMath } from '../equations.js';
import { num, signed, table, summarizeGrpo } from './figures.js';

const q = (selector) => document.querySelector(selector);
/** A completion's first words, for a row that fits a phone. */
const opening = (tokens, ends) => {
  const words = tokens.filter((t) => t !== '<eos>');
  return words.length > 4 ? `${words.slice(0, 4).join(' ')} …` : `${words.join(' ')}${ends ? '' : ' …'}`;
};

function grpoFigures(s, config) {
  if (!s) return 'No GRPO run recorded yet.';
  const { prompts, group_size: g } = config.grpo;
  return `${prompts} prompts × G = ${g} completions per iteration, ${s.iterations} iterations: reward r_φ ${num(s.first.reward)} → ${num(s.last.reward)}, gold utility ${num(s.first.gold)} → ${num(s.last.gold)}; spread within a group ${num(s.first.spread)} → ${num(s.last.spread)}, groups with none ${Math.round(100 * s.first.flat)}% → ${Math.round(100 * s.last.flat)}%.`;
}

export const grpoStep = {
  short: 'GRPO: the group',
  title: 'GRPO: the group is the baseline',
  now: 'PPO trains a second network, the value model V_ψ, only to say how much reward each token should expect. GRPO drops it: for each prompt it samples a group of G completions, scores each with the same r_φ, and compares each with its group — completion i\'s advantage is its reward minus the group\'s mean, divided by the group\'s spread, the same number for every token of y_i. The update is PPO\'s clipped ratio; the KL to π_ref is a penalty in the loss.',
  equation: 'grpo-advantage',
  equationName: 'the GRPO advantage: the reward minus the group mean, divided by the group standard deviation',
  needs: ['sft', 'labels', 'reward', 'grpo'],
  next: 'Next: DPO and the frontier',
  live(ctx) {
    const chart = ctx.borrow(q('#grpo [data-curve="reward"]'));
    const line = el('p', { class: 'lesson-figure', 'aria-live': 'polite' });
    const versus = el('p', { class: 'lesson-figure' });
    const group = el('div', { class: 'lesson-group', 'aria-live': 'polite' });
    let index = 0;
    let groups = 0;
    const another = el('button', { type: 'button', text: 'Another group', disabled: true });
    const showGroup = async () => {
      let r;
      try { r = await ctx.store.client.call('grpoRecord', index); } catch { group.replaceChildren(el('p', { class: 'muted', text: 'The groups appear once GRPO has sampled a rollout.' })); return; }
      groups = r.groups;
      another.disabled = groups < 2;
      const scaled = r.estimator === 'grpo' && r.scale_rewards;
      const rows = r.members.map((m, i) => [String(i + 1), opening(m.tokens, m.ends), num(m.score), signed(m.advantage), num(m.gold, 2)]);
      group.replaceChildren(
        el('p', { class: 'lesson-prompt', text: `Group ${index + 1} of ${groups} · “${r.prompt}”` }),
        el('p', { class: 'lesson-figure' }, `mean r = ${num(r.mean)}, std = ${num(r.std)}: `, el('span', { class: 'lesson-nowrap' }, inlineMath(scaled ? String.raw`\hat A_i = (r_i - \bar r)/\sigma_r` : String.raw`\hat A_i = r_i - b_i`)),
          r.zero_std ? ' — every r_i is equal: all Â_i = 0, this group teaches nothing.' : ''),
        table(['i', 'y_i begins', 'r_i', 'Â_i', 'gold'], rows, 'lesson-group-table'));
    };
    another.addEventListener('click', () => { index = groups ? (index + 1) % groups : 0; showGroup(); });
    return {
      nodes: [line, chart, versus],
      aside: [el('div', { class: 'controls' }, another), group],
      async refresh() {
        const { store, lesson } = ctx;
        const s = store.stages.get('grpo').state() === 'done' || store.stages.get('grpo').state() === 'paused' ? summarizeGrpo(await store.storage.metricsOf('grpo')) : null;
        line.textContent = `Your run: ${grpoFigures(s, store.config)}`;
        const ppo = lesson.baseline;
        versus.textContent = s && ppo ? `PPO at β = ${ppo.beta} (with V_ψ) ended at gold ${num(ppo.last.gold)}; GRPO (no V_ψ, one model fewer to train and hold) at ${num(s.last.gold)}. The frontier in the next step measures both the same way.` : '';
        index = 0;
        await showGroup();
      },
    };
  },
  tryThis() {
    return [el('p', { text: 'Press "Another group" and read each group: completions above their group\'s mean get Â_i > 0 and every one of their tokens is pushed up; those below are pushed down. Find a group whose completions score alike — its Â_i are near 0 and it teaches little. PPO\'s critic would instead give each token its own Â_t.' })];
  },
};
