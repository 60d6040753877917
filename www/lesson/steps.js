// The lesson's steps, in the math page's order (shared/reference/rlhf-ppo-math.txt): SFT, the
// preference labels, the Bradley–Terry loss, one rollout, GAE, the ratio and the clip, PPO over
// its iterations, reward hacking at β = 0, a reward the learner writes (step-your-reward.js), GRPO (step-grpo.js), DPO and the frontier.
//
// Each step: `needs` (needs.js: what must be trained first), `live(ctx)` (the lab's panels it
// borrows and the numbers the lesson computes from the learner's own run; `refresh` redraws them
// when training ends; `aside`, optional: the parts the thing to try is about, shown beside it), `tryThis(ctx)` (one control to try), `next` (the Next button's label),
// `gate` (optional: why Next must wait, or null). Every number shown comes from this tab's run.
import { el } from '../dom.js';
import { inlineMath } from '../equations.js';
import { num, signed, softplus, words, table, slider, summarizePpo, correlation, hackingVerdict } from './figures.js';
import { grpoStep } from './step-grpo.js';
import { yourRewardStep } from './step-your-reward.js';

const q = (selector) => document.querySelector(selector);
const HAND_LABELS = 5;

// ---- the steps ----

const sft = {
  short: 'SFT and π_ref',
  title: 'Supervised fine-tuning makes π_ref',
  now: 'A small GPT, pretrained on review text (the shipped base model), learns to complete review prompts from demonstrations by next-token cross-entropy. When SFT ends, a frozen copy becomes π_ref, the reference every later stage measures against.',
  equation: 'sft',
  equationName: 'the SFT loss, minus the mean log-probability of the demonstrated tokens',
  needs: ['sft'],
  next: 'Next: label pairs by hand',
  live(ctx) {
    const loss = ctx.borrow(q('#sft .charts .chart'));
    const note = el('p', { class: 'lesson-figure', 'aria-live': 'polite' });
    return {
      nodes: [loss, note],
      async refresh() {
        const m = (await ctx.store.storage.metricsOf('sft')).filter((r) => Number.isFinite(r['loss/held_out']));
        note.textContent = m.length ? `Held-out loss in your run: ${num(m[0]['loss/held_out'])} at step ${m[0].step} → ${num(m.at(-1)['loss/held_out'])} at step ${m.at(-1).step} (nats per completion token).` : 'The held-out loss appears as SFT trains.';
      },
    };
  },
  tryThis(ctx) {
    const t = slider('lesson-temperature', 'Sampling temperature', { min: 0.1, max: 1.5, step: 0.1, value: 0.7 });
    const go = el('button', { type: 'button', text: 'Sample from π_ref' });
    const out = el('div', { class: 'lesson-samples', 'aria-live': 'polite' });
    t.input.addEventListener('input', () => { t.output.textContent = Number(t.input.value).toFixed(1); });
    go.addEventListener('click', async () => {
      if (ctx.store.stages.get('sft').state() !== 'done') { out.textContent = 'π_ref exists once SFT has finished.'; return; }
      const temperature = Number(t.input.value);
      const samples = await ctx.store.client.call('samples', 'sft', temperature, 1);
      out.replaceChildren(table(['prompt', 'π_ref writes', 'gold'], samples.slice(0, 3).map((s) => [s.prompt, words(s.completion), num(s.gold, 2)])),
        el('p', { class: 'muted', text: `Temperature ${temperature.toFixed(1)}: low is near-greedy and repetitive, high is varied and less fluent. Gold: the hidden utility the simulated labeler judges by.` }));
    });
    return [el('p', { text: 'Move the temperature and sample: the same π_ref, more or less random.' }), t.node, el('div', { class: 'controls' }, go), out];
  },
};

const handLabels = {
  short: 'Label five pairs',
  title: 'Label five pairs by hand',
  now: 'Preferences are RLHF\'s data. π_ref writes two completions for the same prompt and you say which is better. Each judgment is one Bradley–Terry datum: the reward model will learn a score r_φ with p(left ≻ right) = σ(r_φ(left) − r_φ(right)).',
  equation: 'bt-model',
  equationName: 'Bradley–Terry: the probability that y_w is preferred is the sigmoid of the reward difference',
  needs: ['sft'],
  next: 'Next: the simulated labeler',
  live(ctx) {
    const mine = el('p', { class: 'lesson-figure', role: 'status' });
    const card = ctx.borrow(q('#labeling .pair-card'));
    const said = ctx.borrow(q('#labeling .said'));
    const countText = ctx.borrow(q('#labeling .label-count'));
    let timer = null;
    let asked = 0; // only the latest count is shown
    const refresh = async () => {
      const mineNow = ++asked;
      const n = (await ctx.store.storage.labels().catch(() => [])).filter((r) => r.source === 'human').length;
      if (mineNow !== asked) return;
      mine.textContent = `Your hand labels: ${Math.min(n, HAND_LABELS)} of ${HAND_LABELS}${n > HAND_LABELS ? ` (${n} in all)` : ''}.`;
      ctx.refresh();
    };
    // The panel writes "Stored: …" after each label: count again then.
    const watch = new MutationObserver(() => { clearTimeout(timer); timer = setTimeout(refresh, 50); });
    if (said) watch.observe(said, { childList: true, characterData: true, subtree: true });
    ctx.onDispose(() => watch.disconnect());
    return { nodes: [mine, card, said, countText], refresh };
  },
  tryThis() {
    return [el('p', {}, 'Focus the pair (Tab) and use the keys: ', el('kbd', { text: '←' }), ' left is better, ', el('kbd', { text: '→' }), ' right, ', el('kbd', { text: '↓' }), ' tie, ', el('kbd', { text: 'space' }), ' skip, ', el('kbd', { text: 'u' }), ' undo — or the buttons. Judge by what reads as a good review of that product.')];
  },
  async gate(ctx) {
    const n = (await ctx.store.storage.labels().catch(() => [])).filter((r) => r.source === 'human').length;
    return n >= HAND_LABELS ? null : `Label ${HAND_LABELS - n} more pair${HAND_LABELS - n === 1 ? '' : 's'} to go on.`;
  },
};

const simulated = {
  short: 'Simulated labeler',
  title: 'A simulated labeler for the rest',
  now: 'A reward model needs thousands of labels. The simulated labeler judges each pair by the hidden gold utility u, with noise τ: it prefers a over b with probability σ((u_a − u_b)/τ) — the Bradley–Terry model again, with u in place of r_φ. Your hand labels stay in the set.',
  equation: 'bt-model',
  equationName: 'Bradley–Terry: the probability that y_w is preferred is the sigmoid of the reward difference',
  needs: ['sft'],
  next: 'Next: train the reward model',
  live(ctx) {
    const tau = ctx.borrow(q('#setting-reward-labeler_temperature')?.closest('.setting'));
    const agreement = ctx.borrow(q('#labeling .agreement'));
    const countText = ctx.borrow(q('#labeling .label-count'));
    const go = el('button', { type: 'button', class: 'primary', text: 'Simulate the labels' });
    go.addEventListener('click', () => ctx.run(['labels']));
    const refresh = () => { go.disabled = ctx.store.stages.get('labels').state() !== 'ready' && ctx.store.stages.get('labels').state() !== 'paused'; };
    ctx.onStage(refresh);
    return { nodes: [countText, agreement], aside: [tau, el('div', { class: 'controls' }, go)], refresh };
  },
  tryThis() {
    return [el('p', { text: 'Before simulating, set the labeler noise τ (type a value and press Enter or Tab): at 0.1 the labeler almost always picks the completion with the higher gold utility, at 3 it is close to a coin flip. The agreement line in the live panel says how often it sided with the gold order, and how often it was expected to at that τ.' })];
  },
};

const bradleyTerry = {
  short: 'Bradley–Terry loss',
  title: 'The Bradley–Terry loss on one pair',
  now: 'The reward model is π_ref\'s trunk with a scalar head. It is trained so the preferred completion y_w scores above the rejected y_l: the loss of a pair is −log σ(r_w − r_l), log 2 ≈ 0.693 when the two score the same, near 0 when r_w is well above r_l. Some labels are held out to check it generalizes.',
  equation: 'bt-loss',
  equationName: 'the reward-model loss, minus the mean log-sigmoid of the reward difference',
  needs: ['sft', 'labels', 'reward'],
  next: 'Next: one rollout, token by token',
  live(ctx) {
    const chart = ctx.borrow(q('#reward .rm-loss'));
    const pair = el('div', { class: 'lesson-pair', 'aria-live': 'polite' });
    const pick = slider('lesson-pair', 'Held-out pair', { min: 1, max: 1, step: 1, value: 1 });
    let pairs = [];
    const show = () => {
      const i = Number(pick.input.value) - 1;
      pick.output.textContent = pairs.length ? `${i + 1} of ${pairs.length}` : '—';
      const p = pairs[i];
      if (!p) { pair.textContent = 'The held-out pairs appear when the reward model has trained.'; return; }
      const tie = p.preference === 'tie';
      const [w, l] = p.preference === 'second' ? [[p.second, p.r_second, p.gold_second], [p.first, p.r_first, p.gold_first]] : [[p.first, p.r_first, p.gold_first], [p.second, p.r_second, p.gold_second]];
      const margin = w[1] - l[1];
      // A tie counts as half of each order (as in the core's loss).
      const loss = tie ? 0.5 * softplus(-margin) + 0.5 * softplus(margin) : softplus(-margin);
      pair.replaceChildren(
        el('p', { class: 'lesson-prompt', text: p.prompt }),
        table(['', 'completion', 'r_φ', 'gold'], [[tie ? 'first' : 'y_w', words(w[0]), num(w[1]), num(w[2], 2)], [tie ? 'second' : 'y_l', words(l[0]), num(l[1]), num(l[2], 2)]], 'lesson-pair-table'),
        el('p', { class: 'lesson-figure' }, tie ? 'A tie: ' : '', inlineMath(tie ? String.raw`\tfrac12\big[-\log\sigma(\Delta) - \log\sigma(-\Delta)\big]` : String.raw`-\log\sigma(r_w - r_l)`),
          ` = ${tie ? '' : `−log σ(${signed(margin, 3)}) = `}${num(loss)}`, margin < 0 && !tie ? ' — r_φ orders this pair the wrong way: its loss is above log 2.' : ''));
    };
    pick.input.addEventListener('input', show);
    return {
      nodes: [chart],
      aside: [pick.node, pair],
      async refresh() {
        if (ctx.store.stages.get('reward').state() !== 'done') { pairs = []; show(); return; }
        try { pairs = await ctx.store.client.call('rewardInspect', 50); } catch { pairs = []; }
        pick.input.max = String(Math.max(1, pairs.length));
        show();
      },
    };
  },
  tryThis() {
    return [el('p', { text: 'Move the "Held-out pair" slider (or focus it and use the arrow keys): find a pair where r_φ disagrees with the label (r_w − r_l < 0). Its loss is above 0.693, and a step of training pushes r_w up and r_l down.' })];
  },
};

const rollout = {
  short: 'One rollout',
  title: 'One rollout, token by token',
  now: 'PPO starts π_θ as a copy of π_ref and samples completions from it. Each token pays a KL penalty −β·(log π_θ − log π_ref); the reward model\'s score lands on the last real token only. Here is one completion of your first rollout, every per-token quantity in a row.',
  equation: 'effective-reward',
  equationName: 'the per-token reward: the RM score at the last token minus beta times the log-ratio',
  needs: ['sft', 'labels', 'reward', 'rollout'],
  next: 'Next: GAE, backward',
  live(ctx) {
    const inspector = ctx.borrow(q('#ppo .rollout-inspector'));
    const line = el('p', { class: 'lesson-figure', 'aria-live': 'polite' });
    const select = inspector?.querySelector('select');
    const refresh = async () => {
      if (!['paused', 'done'].includes(ctx.store.stages.get('ppo').state())) { line.textContent = ''; return; }
      ctx.store.stages.get('ppo').inspect();
      try {
        const r = await ctx.store.client.call('ppoRecord', Number(select?.value ?? 0));
        const T = r.tokens.length - 1;
        const kl = r.kl.reduce((a, b) => a + b, 0);
        line.textContent = `Completion ${r.index + 1}: ${r.tokens.length} tokens, Σ log π_θ = ${num(r.logprobs.reduce((a, b) => a + b, 0))}, Σ log π_ref = ${num(r.ref_logprobs.reduce((a, b) => a + b, 0))}, KL = Σ kl_t = ${num(kl)}. At its last real token, t = ${T} (“${r.tokens[T]}”): R_${T} = −β·kl_${T} + r_φ = ${num(r.non_score[T])} ${r.score < 0 ? '−' : '+'} ${num(Math.abs(r.score))} = ${num(r.rewards[T])}. Gold utility of this completion: ${num(r.gold, 2)}.`;
      } catch (e) { line.textContent = `No rollout yet (${e.message}).`; }
    };
    select?.addEventListener('change', refresh);
    ctx.onDispose(() => select?.removeEventListener('change', refresh));
    return { nodes: [line, inspector], refresh };
  },
  tryThis() {
    return [el('p', { text: 'In the live panel, pick another completion in the "Completion" menu. Read the R_t row (scroll the table sideways): small KL payments on every token, and the reward model\'s score added in the last column. Before any update π_θ = π_ref, so the two log-prob rows agree and the KL is 0.' })];
  },
};

const gae = {
  short: 'GAE, backward',
  title: 'Advantages by GAE, stepped backward',
  now: 'Which tokens deserve credit for the score? The value model V_ψ predicts the return at each token; the TD error δ_t compares one step of real reward with that prediction, and GAE sums the δ values backward from the last token with weight γλ.',
  equation: 'gae',
  equationName: 'GAE: the TD error, the backward recursion for the advantage, and the return',
  needs: ['sft', 'labels', 'reward', 'rollout'],
  next: 'Next: the ratio and the clip',
  live(ctx) {
    const stepper = ctx.borrow(q('#ppo .gae-stepper'));
    return { nodes: [stepper], refresh: () => { if (['paused', 'done'].includes(ctx.store.stages.get('ppo').state())) ctx.store.stages.get('ppo').inspect(); } };
  },
  tryThis() {
    return [el('p', { text: 'In the live panel, press Reset, then Step a few times: δ_t first, then Â_t, from the last token back. Then move λ to 0 (each token trusts V after one step) and to 1 (Monte Carlo), and see which tokens the score reaches.' })];
  },
};

const clipping = {
  short: 'Ratio and clip',
  title: 'The ratio and the clip on that rollout',
  now: 'Now PPO updates π_θ on the rollout for K epochs of minibatches. The ratio ρ_t = π_θ / π_θold measures how far a token\'s probability moved since the rollout; the clipped surrogate stops pushing a token once ρ leaves [1 − ε, 1 + ε] in the direction its advantage wants.',
  equation: 'clip',
  equationName: 'the clipped surrogate, the minimum of rho times A and clip of rho times A',
  needs: ['sft', 'labels', 'reward', 'rollout', 'update'],
  next: 'Next: PPO to the end',
  live(ctx) {
    const view = ctx.borrow(q('#ppo .clipping-view'));
    const line = el('p', { class: 'lesson-figure', 'aria-live': 'polite' });
    return {
      nodes: [line, view],
      async refresh() {
        const ppo = ctx.store.stages.get('ppo');
        if (!['paused', 'done'].includes(ppo.state())) return;
        await ppo.inspect();
        const status = await ctx.store.client.call('status');
        line.textContent = `After ${status.ppo?.step ?? 0} iteration${status.ppo?.step === 1 ? '' : 's'} of PPO in your run: the dots are this rollout's tokens at their ratio after the latest update.`;
      },
    };
  },
  tryThis(ctx) {
    const more = el('button', { type: 'button', text: 'One more iteration' });
    more.addEventListener('click', async () => {
      const ppo = ctx.store.stages.get('ppo');
      if (ppo.state() !== 'paused') return;
      more.disabled = true;
      await ppo.iteration();
      await ppo.inspect();
      more.disabled = false;
      ctx.refresh();
    });
    return [el('p', { text: 'In the live panel, find the orange dots: tokens on a flat part of the curve, where the clipped term is the one the min picks and the gradient is zero. "One more iteration" samples a new rollout and updates on it.' }), el('div', { class: 'controls' }, more)];
  },
};

const CURVES = [['kl', 'KL(π_θ ‖ π_ref)'], ['clipfrac', 'clip fraction'], ['approxkl', 'approx KL of the update'], ['value', 'value loss'], ['entropy', 'entropy'], ['length', 'completion length']];

function ppoFigures(s) {
  if (!s) return 'No PPO run recorded yet.';
  return `β = ${s.beta}, ${s.iterations} iterations: RM score ${num(s.first.score)} → ${num(s.last.score)}, gold utility ${num(s.first.gold)} → ${num(s.last.gold)}, KL ${num(s.first.kl)} → ${num(s.last.kl)} nats per completion.`;
}

const ppoRun = {
  short: 'PPO over time',
  title: 'Reward, KL and gold over PPO',
  now: 'PPO repeats rollout, score, GAE and clipped updates for every iteration. It maximizes the reward model\'s score minus β times the KL from π_ref. The gold utility — which PPO never sees — says whether the score it gains is real.',
  equation: 'objective',
  equationName: 'the KL-regularized objective: expected reward minus beta times the KL from the reference',
  needs: ['sft', 'labels', 'reward', 'ppo'],
  next: 'Next: remove the KL leash (β = 0)',
  live(ctx) {
    const score = ctx.borrow(q('#ppo [data-curve="score"]'));
    const picker = el('select', { id: 'lesson-curve' }, ...CURVES.map(([id, label]) => el('option', { value: id, text: label })));
    const slot = el('div', { class: 'lesson-slot' });
    const line = el('p', { class: 'lesson-figure', 'aria-live': 'polite' });
    let lent = null;
    const place = () => {
      // One curve at a time: the one shown goes back to the PPO panel before the next is lent.
      if (lent) { lent.home.replaceWith(lent.node); lent = null; }
      const node = q(`#ppo [data-curve="${picker.value}"]`);
      if (!node) return;
      const home = document.createComment('lent to the lesson');
      node.replaceWith(home);
      lent = { node, home };
      slot.replaceChildren(node);
    };
    picker.addEventListener('change', place);
    ctx.onDispose(() => { if (lent) { lent.home.replaceWith(lent.node); lent = null; } });
    place();
    const choose = el('div', { class: 'lesson-choose' }, el('label', { for: 'lesson-curve', text: 'Second chart' }), picker);
    return {
      nodes: [line, score],
      aside: [choose, slot],
      async refresh() { line.textContent = `Your run: ${ppoFigures(summarizePpo(await ctx.store.storage.metricsOf('ppo'), ctx.store.config.ppo.kl_coef))}`; },
    };
  },
  tryThis() {
    return [el('p', { text: 'Choose the second chart: the KL grows as π_θ leaves π_ref; the clip fraction and approx KL say how hard each update pushed. Does the gold utility rise with the RM score?' })];
  },
};

const TERMS = [['sentiment', 'sentiment'], ['fluency', 'fluency'], ['repetitions', 'repetitions'], ['ending', 'ends with <eos>'], ['length', 'length'], ['relevance', 'relevance (names its product\'s aspects)']];

const hacking = {
  short: 'Reward hacking, β = 0',
  title: 'Reward hacking at β = 0',
  now: 'With β = 0 nothing holds π_θ near π_ref: PPO may go wherever the reward model scores high, including where it is wrong. The reward model is only a model of the labels, and it has a known blind spot: relevance — whether the review names aspects of its own product — which it barely learns from this much data.',
  equation: 'effective-reward',
  equationName: 'the per-token reward with beta set to zero: only the RM score is left',
  needs: ['sft', 'labels', 'reward', 'ppo', 'zeroBeta'],
  next: 'Next: write your own reward',
  live(ctx) {
    const score = ctx.borrow(q('#ppo [data-curve="score"]'));
    const compare = el('div', { class: 'lesson-compare', 'aria-live': 'polite' });
    const blind = el('div', { class: 'lesson-blind' });
    return {
      nodes: [compare, score],
      aside: [blind],
      async refresh() {
        const { store, lesson } = ctx;
        const zero = store.config.ppo.kl_coef === 0 && store.stages.get('ppo').state() === 'done' ? summarizePpo(await store.storage.metricsOf('ppo'), 0) : null;
        const rows = [lesson.baseline, zero].filter(Boolean).map((s) => [`β = ${s.beta}`, `${num(s.first.score)} → ${num(s.last.score)}`, `${num(s.first.gold)} → ${num(s.last.gold)}`, num(s.last.kl)]);
        const verdict = zero ? hackingVerdict(lesson.baseline, zero) : 'The β = 0 run appears here when it has trained.';
        compare.replaceChildren(rows.length ? table(['run', 'RM score', 'gold', 'KL at the end'], rows) : el('p', { class: 'muted', text: 'No PPO runs recorded in this tab yet.' }), el('p', { class: 'lesson-figure', text: verdict }));
        if (store.stages.get('reward').state() !== 'done') { blind.replaceChildren(); return; }
        let pairs = [];
        try { pairs = await store.client.call('rewardInspect', 200); } catch { /* a reward model loaded from a file has no held-out pairs here */ }
        if (!pairs.length) { blind.replaceChildren(el('p', { class: 'muted', text: 'The held-out pairs are not in this tab (the reward model was loaded, not trained here).' })); return; }
        const r = pairs.flatMap((p) => [p.r_first, p.r_second]);
        const terms = pairs.flatMap((p) => [p.gold_terms_first, p.gold_terms_second]);
        const corr = TERMS.map(([key, label]) => [label, num(correlation(r, terms.map((t) => t[key])), 2)]);
        corr.push(['gold utility (their weighted sum)', num(correlation(r, terms.map((t) => t.total)), 2)]);
        blind.replaceChildren(el('h3', { text: 'What your reward model follows' }),
          el('p', { class: 'caption', text: `Correlation of r_φ with each gold term, over ${r.length} completions of ${pairs.length} held-out pairs.` }),
          table(['gold term', 'correlation with r_φ'], corr, 'lesson-terms'));
      },
    };
  },
  tryThis(ctx) {
    const go = el('button', { type: 'button', text: 'Sample from π_θ (β = 0)' });
    const out = el('div', { class: 'lesson-samples', 'aria-live': 'polite' });
    go.addEventListener('click', async () => {
      try {
        const samples = await ctx.store.client.call('samples', 'policy', 0.7, 2);
        out.replaceChildren(table(['prompt', 'π_θ writes', 'gold'], samples.slice(0, 3).map((s) => [s.prompt, words(s.completion), num(s.gold, 2)])));
      } catch (e) { out.textContent = `No policy yet: ${e.message}`; }
    });
    return [el('p', { text: 'Read what the β = 0 policy writes for the product in each prompt, and look up relevance in the table: the term r_φ follows least is where π_θ is free to drift.' }), el('div', { class: 'controls' }, go), out];
  },
};

const dpo = {
  short: 'DPO and the frontier',
  title: 'DPO and the reward–KL frontier',
  now: 'DPO trains π_θ on the same labels with one supervised loss: the Bradley–Terry loss on the implicit reward β·log(π_θ/π_ref). No reward model, no sampling. The frontier places every policy by how far it moved from π_ref (KL) and what gold utility it reached, measured the same way for all.',
  equation: 'dpo',
  equationName: 'the DPO loss, minus the log-sigmoid of beta times the difference of log-ratios',
  needs: ['sft', 'labels', 'dpo'],
  next: 'Open the full lab',
  live(ctx) {
    const frontier = ctx.borrow(q('#comparison .charts .chart'));
    const list = el('div', { class: 'lesson-points', 'aria-live': 'polite' });
    return {
      // The policies' table beside the chart (in the "Try this" tab on a phone): it is what the thing to try reads.
      nodes: [frontier],
      aside: [list],
      async refresh() {
        const points = (await ctx.store.storage.getState('frontier').catch(() => null)) ?? [];
        const name = { ref: 'π_ref', ppo: 'PPO', grpo: 'GRPO', rloo: 'RLOO', reinforce: 'REINFORCE', gspo: 'GSPO', dpo: 'DPO' };
        list.replaceChildren(points.length
          ? table(['policy', 'β', 'KL', 'gold', 'RM score'], points.map((p) => [name[p.method] ?? p.method, p.beta == null ? '—' : String(p.beta), num(p.kl), num(p.gold), num(p.score)]))
          : el('p', { class: 'muted', text: 'The policies appear here once they are measured (128 fresh prompts each).' }));
      },
    };
  },
  tryThis() {
    return [el('p', { text: 'Compare the points: up and to the left is better — more gold utility for less drift from π_ref. Where does the β = 0 PPO policy sit, and GRPO beside it? Then open the full lab to change any setting, run a β sweep, or download your checkpoints.' })];
  },
};

export const STEPS = [sft, handLabels, simulated, bradleyTerry, rollout, gae, clipping, ppoRun, hacking, yourRewardStep, grpoStep, dpo];
