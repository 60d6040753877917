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
  { id: 'value-loss', title: 'Value loss', tex: String.raw`\mathcal{L}_{\text{VF}}(\psi) = \mathbb{E}_t\big[(V_\psi(s_t) - \hat R_t)^2\big]` },
  { id: 'entropy', title: 'Entropy bonus', tex: String.raw`S[\pi_\theta](s_t) = -\sum_a \pi_\theta(a\mid s_t)\log \pi_\theta(a\mid s_t)` },
  { id: 'ppo-loss', title: 'The full PPO loss', tex: String.raw`\mathcal{L}_{\text{PPO}} = \mathbb{E}_t\big[-\mathcal{L}^{\text{CLIP}}_t + c_1 (V_\psi(s_t) - \hat R_t)^2 - c_2\, S[\pi_\theta](s_t)\big]` },
  { id: 'grpo-advantage', title: 'GRPO / RLOO · the group baseline (beyond the math page)', tex: String.raw`\hat A_i^{\text{GRPO}} = \frac{r_i - \operatorname{mean}(r_{1..G})}{\operatorname{std}(r_{1..G})},\qquad \hat A_i^{\text{RLOO}} = r_i - \frac{1}{G-1}\sum_{j\ne i} r_j` },
  { id: 'grpo-loss', title: 'GRPO / RLOO · the loss with asymmetric clip and k3 KL', tex: String.raw`\mathcal{L} = \sum_{i,t} w_i\Big[-\min\big(\rho_{i,t}\hat A_i,\ \mathrm{clip}(\rho_{i,t}, 1-\epsilon_{\text{low}}, 1+\epsilon_{\text{high}})\,\hat A_i\big) + \beta\Big(\tfrac{\pi_{\text{ref}}}{\pi_\theta} - \log\tfrac{\pi_{\text{ref}}}{\pi_\theta} - 1\Big)\Big],\quad w_i \in \Big\{\tfrac{1}{B\,|y_i|},\ \tfrac{1}{B\,N_{\max}},\ \tfrac{1}{\sum_j |y_j|}\Big\}` },
  { id: 'dpo', title: 'DPO', tex: String.raw`\mathcal{L}_{\text{DPO}} = -\log\sigma\Big(\beta\Big[\log\frac{\pi_\theta(y_w\mid x)}{\pi_{\text{ref}}(y_w\mid x)} - \log\frac{\pi_\theta(y_l\mid x)}{\pi_{\text{ref}}(y_l\mid x)}\Big]\Big)` },
];

const byId = new Map(EQUATIONS.map((e) => [e.id, e]));

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

/** The panel listing every equation, each with its anchor. */
export function mountEquations(root) {
  const list = el('div', { class: 'equations' });
  for (const e of EQUATIONS) {
    list.append(el('div', { class: 'equation', id: `eq-${e.id}` }, el('h3', { text: e.title }), renderEquation(el('div'), e.id)));
  }
  root.append(el('section', { class: 'panel', id: 'equations', 'aria-labelledby': 'equations-title' },
    el('h2', { id: 'equations-title', text: 'The math, as on the reference page' }),
    el('p', { class: 'objective', text: 'Every setting and chart above links here, to the equation it belongs to.' }),
    list));
}
