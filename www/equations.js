// The math page's equations (`shared/reference/rlhf-ppo-math.txt`), typeset with KaTeX. Each has
// an anchor; settings and charts link to the one they belong to, and the equations panel at the
// foot of the page shows them all.
import katex from 'katex';
import 'katex/dist/katex.min.css';
import { el } from './dom.js';

export const EQUATIONS = [
  { id: 'sft', title: 'Stage 1 · Supervised fine-tuning', tex: String.raw`\mathcal{L}_{\text{SFT}}(\theta) = -\,\mathbb{E}_{(x,y)\in\mathcal{D}}\Big[\tfrac{1}{|y|}\sum_t \log \pi_\theta(y_t \mid x, y_{<t})\Big]` },
  { id: 'bt-model', title: 'Stage 2 · Bradley–Terry preference model', tex: String.raw`p(y_w \succ y_l \mid x) = \sigma\big(r_\phi(x,y_w) - r_\phi(x,y_l)\big)` },
  { id: 'bt-loss', title: 'Stage 2 · Reward-model loss', tex: String.raw`\mathcal{L}_R(\phi) = -\,\mathbb{E}_{(x,y_w,y_l)\sim\mathcal{D}}\big[\log \sigma\big(r_\phi(x,y_w) - r_\phi(x,y_l)\big)\big]` },
  { id: 'objective', title: 'Stage 3 · The KL-regularized objective', tex: String.raw`\max_{\pi_\theta}\; \mathbb{E}_{x,\,y\sim\pi_\theta}\big[r_\phi(x,y)\big] \;-\; \beta\,{\mathrm{KL}\big(\pi_\theta(\cdot\mid x)\,\|\,\pi_{\text{ref}}(\cdot\mid x)\big)}` },
  { id: 'kl', title: 'The KL leash, estimated from the sampled tokens', tex: String.raw`\mathrm{KL} = \mathbb{E}_{y\sim\pi_\theta}\Big[\log\frac{\pi_\theta(y\mid x)}{\pi_{\text{ref}}(y\mid x)}\Big] = \mathbb{E}\Big[\sum_t \log\frac{\pi_\theta(a_t\mid s_t)}{\pi_{\text{ref}}(a_t\mid s_t)}\Big]` },
  { id: 'effective-reward', title: 'Effective per-token reward', tex: String.raw`R_t = \mathbf{1}[t = T]\, r_\phi(x,y) \;-\; \beta\, \log\frac{\pi_\theta(a_t\mid s_t)}{\pi_{\text{ref}}(a_t\mid s_t)}` },
  { id: 'policy-gradient', title: 'Policy gradient with a baseline', tex: String.raw`\nabla_\theta J(\theta) = \mathbb{E}\Big[\sum_t \hat A_t\, \nabla_\theta \log \pi_\theta(a_t \mid s_t)\Big]` },
  { id: 'gae', title: 'GAE: TD error, backward recursion, returns', tex: String.raw`\delta_t = R_t + \gamma V_\psi(s_{t+1}) - V_\psi(s_t),\qquad \hat A_t = \delta_t + \gamma\lambda\,\hat A_{t+1},\qquad \hat R_t = \hat A_t + V_\psi(s_t)` },
  { id: 'ratio', title: 'Probability ratio', tex: String.raw`\rho_t(\theta) = \frac{\pi_\theta(a_t\mid s_t)}{\pi_{\theta_{\text{old}}}(a_t\mid s_t)}` },
  { id: 'clip', title: 'Clipped surrogate', tex: String.raw`\mathcal{L}^{\text{CLIP}}_t = \min\big(\rho_t \hat A_t,\; \mathrm{clip}(\rho_t, 1-\epsilon, 1+\epsilon)\,\hat A_t\big)` },
  { id: 'value-loss', title: 'Value loss', tex: String.raw`\mathcal{L}_{\text{VF}}(\psi) = \mathbb{E}_t\big[(V_\psi(s_t) - \hat R_t)^2\big]`,
    computed: String.raw`\mathcal{L}_{\text{VF}} = \mathbb{E}_t\Big[\tfrac12\max\big((V_\psi(s_t) - \hat R_t)^2,\ (\mathrm{clip}(V_\psi(s_t), V_{\text{old}} - \epsilon_v, V_{\text{old}} + \epsilon_v) - \hat R_t)^2\big)\Big]`,
    why: 'The lab computes TRL\'s form (PPO2\'s baselines): the ½ makes the gradient V − R̂ rather than 2(V − R̂), and the max with the clipped value keeps V_ψ from moving more than ε_v from the rollout\'s value in one update. Inside the band it is ½ of the page\'s form.' },
  { id: 'entropy', title: 'Entropy bonus', tex: String.raw`S[\pi_\theta](s_t) = -\sum_a \pi_\theta(a\mid s_t)\log \pi_\theta(a\mid s_t)` },
  { id: 'ppo-loss', title: 'The full PPO loss', tex: String.raw`\mathcal{L}_{\text{PPO}} = \mathbb{E}_t\big[-\mathcal{L}^{\text{CLIP}}_t + c_1 (V_\psi(s_t) - \hat R_t)^2 - c_2\, S[\pi_\theta](s_t)\big]`,
    computed: String.raw`\mathcal{L}_{\text{PPO}} = \mathbb{E}_t\big[-\mathcal{L}^{\text{CLIP}}_t + c_1\,\mathcal{L}^{\text{VF,clipped}}_t - c_2\, S[\pi_\theta](s_t)\big]`,
    why: 'With the value loss as computed above (TRL\'s ½·max with the clipped value), the mean taken over the minibatch\'s real tokens.' },
  { id: 'grpo-advantage', title: 'GRPO / RLOO / REINFORCE · the baseline from the group (beyond the math page)', tex: String.raw`\hat A_i^{\text{GRPO}} = \frac{r_i - \operatorname{mean}(r_{1..G})}{\operatorname{std}(r_{1..G})},\qquad \hat A_i^{\text{RLOO}} = r_i - \frac{1}{G-1}\sum_{j\ne i} r_j,\qquad \hat A_i^{\text{REINFORCE}} = r_i - \operatorname{mean}(r_{1..B})`,
    computed: String.raw`\hat A_i^{\text{GRPO}} = \frac{r_i - \operatorname{mean}(r_{1..G})}{\operatorname{std}(r_{1..G}) + 10^{-4}}\quad(\text{std with } G-1)`,
    why: 'As TRL: 10⁻⁴ is added to the std so that a group whose rewards are all equal gets Â = 0, not 0/0; the std divides by G − 1 (torch\'s default).' },
  { id: 'grpo-loss', title: 'GRPO / RLOO · the loss with asymmetric clip and k3 KL', tex: String.raw`\mathcal{L} = \sum_{i,t} w_i\Big[-\min\big(\rho_{i,t}\hat A_i,\ \mathrm{clip}(\rho_{i,t}, 1-\epsilon_{\text{low}}, 1+\epsilon_{\text{high}})\,\hat A_i\big) + \beta\Big(\tfrac{\pi_{\text{ref}}}{\pi_\theta} - \log\tfrac{\pi_{\text{ref}}}{\pi_\theta} - 1\Big)\Big],\quad w_i \in \Big\{\tfrac{1}{B\,|y_i|},\ \tfrac{1}{B\,N_{\max}},\ \tfrac{1}{\sum_j |y_j|}\Big\}` },
  { id: 'gspo', title: 'GSPO · one ratio per completion (beyond the math page)', tex: String.raw`s_i(\theta) = \Big(\prod_{t=1}^{|y_i|} \rho_{i,t}\Big)^{1/|y_i|} = \exp\Big(\tfrac{1}{|y_i|}\sum_t \log\rho_{i,t}\Big),\qquad \ell_{i,t} = -\min\big(s_i\hat A_i,\ \mathrm{clip}(s_i, 1-\epsilon_{\text{low}}, 1+\epsilon_{\text{high}})\,\hat A_i\big)` },
  { id: 'dpo', title: 'DPO', tex: String.raw`\mathcal{L}_{\text{DPO}} = -\log\sigma\Big(\beta\Big[\log\frac{\pi_\theta(y_w\mid x)}{\pi_{\text{ref}}(y_w\mid x)} - \log\frac{\pi_\theta(y_l\mid x)}{\pi_{\text{ref}}(y_l\mid x)}\Big]\Big)` },
];

const byId = new Map(EQUATIONS.map((e) => [e.id, e]));

// Each formula above as a number, at the inputs the core's worked examples give (`lossExamples`):
// the form computed where the entry has one, else the typeset one. The panel shows both numbers.
const sigmoid = (t) => 1 / (1 + Math.exp(-t));
const clip = (x, lo, hi) => Math.min(Math.max(x, lo), hi);
const halfMaxValueLoss = (x) => 0.5 * Math.max((x.V - x.R) ** 2, (clip(x.V, x.V_old - x.epsilon_v, x.V_old + x.epsilon_v) - x.R) ** 2);
const groupRewards = (x) => [x.r1, x.r2, x.r3, x.r4];
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
export const FORMULAS = {
  'bt-loss': (x) => -Math.log(sigmoid(x.r_w - x.r_l)),
  kl: (x) => x.logp - x.ref_logp,
  'effective-reward': (x) => x.score - x.beta * (x.logp - x.ref_logp),
  gae: (x) => {
    const [R, V] = [[x.R0, x.R1, x.R2], [x.V0, x.V1, x.V2, 0]];
    let next = 0;
    for (let t = 2; t >= 0; t -= 1) next = R[t] + x.gamma * V[t + 1] - V[t] + x.gamma * x.lam * next;
    return next;
  },
  clip: (x) => Math.min(x.rho * x.A, clip(x.rho, 1 - x.epsilon, 1 + x.epsilon) * x.A),
  'value-loss': halfMaxValueLoss,
  'ppo-loss': (x) => {
    const rho = Math.exp(x.log_rho);
    return -Math.min(rho * x.A, clip(rho, 1 - x.epsilon, 1 + x.epsilon) * x.A) + x.c1 * halfMaxValueLoss(x) - x.c2 * x.S;
  },
  'grpo-advantage': (x) => {
    const r = groupRewards(x);
    const m = mean(r);
    const std = Math.sqrt(r.reduce((a, v) => a + (v - m) ** 2, 0) / (r.length - 1));
    return (r[x.i - 1] - m) / (std + 1e-4);
  },
  'rloo-advantage': (x) => {
    const r = groupRewards(x);
    return r[x.i - 1] - (r.reduce((a, b) => a + b, 0) - r[x.i - 1]) / (r.length - 1);
  },
  'reinforce-advantage': (x) => groupRewards(x)[x.i - 1] - mean(groupRewards(x)),
  'grpo-loss': (x) => {
    const rho = Math.exp(x.log_rho);
    const logR = x.ref_logp - x.logp;
    return -Math.min(rho * x.A, clip(rho, 1 - x.epsilon_low, 1 + x.epsilon_high) * x.A) + x.beta * (Math.exp(logR) - logR - 1);
  },
  gspo: (x) => Math.exp((x.log_rho1 + x.log_rho2 + x.log_rho3) / 3),
  dpo: (x) => -Math.log(sigmoid(x.beta * ((x.logp_w - x.ref_logp_w) - (x.logp_l - x.ref_logp_l)))),
};
// The examples whose formula is typeset under another equation's entry.
const SHOWN_UNDER = { 'rloo-advantage': 'grpo-advantage', 'reinforce-advantage': 'grpo-advantage' };

/**
 * Typesets equation `id` into `host` (display mode). `wrap`: set in display style but inline, so
 * that a narrow screen breaks it after a relation or an operator instead of cutting it off.
 */
export function renderEquation(host, id, { wrap = false } = {}) {
  const equation = byId.get(id);
  if (!equation) return host;
  if (wrap) katex.render(String.raw`\displaystyle ${equation.tex}`, host, { displayMode: false, throwOnError: false, output: 'html' });
  else katex.render(equation.tex, host, { displayMode: true, throwOnError: false, output: 'html' });
  return host;
}

/** A link to equation `id` on the equations panel, with its title as the accessible name. */
export function equationLink(id, text = '∑') {
  const equation = byId.get(id);
  if (!equation) return null;
  return el('a', { href: `#eq-${id}`, class: 'eq-link', title: equation.title, 'aria-label': `equation: ${equation.title}`, text });
}

/** Inline KaTeX for a short formula. */
export function inlineMath(tex) {
  const span = el('span', { class: 'math' });
  katex.render(tex, span, { throwOnError: false, output: 'html' });
  return span;
}

/** The panel listing every equation, each with its anchor; under each formula the trainers
 * compute, the core's worked number beside the formula's (`lossExamples`). */
export function mountEquations(root, client = null) {
  const list = el('div', { class: 'equations' });
  const checks = new Map();
  for (const e of EQUATIONS) {
    const check = el('div', { class: 'equation-check' });
    checks.set(e.id, check);
    const computed = e.computed ? [el('p', { class: 'computed-note', text: 'What the lab computes:' }), renderTex(el('div'), e.computed), el('p', { class: 'why', text: e.why })] : [];
    list.append(el('div', { class: 'equation', id: `eq-${e.id}` }, el('h3', { text: e.title }), renderEquation(el('div'), e.id), ...computed, check));
  }
  root.append(el('section', { class: 'panel', id: 'equations', 'aria-labelledby': 'equations-title' },
    el('h2', { id: 'equations-title', text: 'The math, as on the reference page' }),
    el('p', { class: 'objective', text: 'Every setting and chart above links here, to the equation it belongs to. Where the lab computes a form of its own, it is shown below the page\'s, with why; each formula the trainers compute is checked against the function that computes it, at one worked point.' }),
    list));
  const ready = client ? client.call('lossExamples').then((examples) => {
    for (const ex of examples) {
      const host = checks.get(SHOWN_UNDER[ex.equation] ?? ex.equation);
      const formula = FORMULAS[ex.equation];
      if (!host || !formula) continue;
      const inputs = Object.fromEntries(ex.inputs);
      const typeset = formula(inputs);
      const agrees = Math.abs(typeset - ex.value) <= 1e-5 * Math.max(1, Math.abs(ex.value));
      const line = el('p', { class: agrees ? 'check ok' : 'check mismatch', 'data-equation': ex.equation, 'data-agrees': String(agrees) },
        `${agrees ? '✓' : '✗'} ${ex.function} at ${ex.inputs.map(([k, v]) => `${k} = ${v}`).join(', ')}: the code gives ${ex.value.toPrecision(6)}, this formula ${typeset.toPrecision(6)}.`);
      host.append(line);
    }
  }, () => {}) : Promise.resolve();
  return { ready };
}

function renderTex(host, tex) {
  katex.render(tex, host, { displayMode: true, throwOnError: false, output: 'html' });
  return host;
}
