// One table of every setting the page shows, and the whole state to and from the URL.
//
// Defaults, ranges and validation live in Rust (`src/rlhf/config.rs`), the single source of truth: the
// worker sends the defaults and validates a candidate config; this table only says how to show
// each setting and what it means. A shared link (`?preset=tiny&seed=3&sft.steps=200&backend=cpu`)
// opens the lab configured: link.js reads it, and names every part of it the page does not take.

/** @typedef {{key: string, label: string, help: string, kind: 'number'|'int'|'bool'|'select'|'text', options?: string[], equation?: string, own?: boolean}} Setting */

/** @type {Setting[]} */
export const SETTINGS = [
  { key: 'preset', label: 'Model size', kind: 'select', options: ['micro', 'tiny', 'small'], help: 'micro: 1 layer, d=32 · tiny: 2 layers, d=64 (~110k parameters) · small: 4 layers, d=128.' },
  { key: 'seed', label: 'Seed', kind: 'int', help: 'Seeds the weights, the data, the minibatch order and the sampling noise: the same seed gives the same run.' },
  // Stage 1
  { key: 'sft.learning_rate', label: 'Learning rate', kind: 'number', help: 'Adam step size for supervised fine-tuning (decays linearly to 0).', equation: 'sft' },
  { key: 'sft.batch_size', label: 'Batch', kind: 'int', help: 'Demonstrations per step.', equation: 'sft' },
  { key: 'sft.steps', label: 'Steps', kind: 'int', help: 'Optimizer steps; when they are done, a frozen copy becomes π_ref.', equation: 'sft' },
  { key: 'sft.completion_only', label: 'Completion-only loss', kind: 'bool', help: 'Count only the completion tokens (the prompt is given, not demonstrated); off: every token.', equation: 'sft' },
  { key: 'sft.eval_every', label: 'Evaluate every', kind: 'int', help: 'Steps between held-out evaluations.', equation: 'sft' },
  // Stage 2
  { key: 'reward.simulated_labels', label: 'Simulated labels', kind: 'int', help: 'How many pairs the simulated labeler judges when asked.', equation: 'bt-model' },
  { key: 'reward.labeler_temperature', label: 'Labeler noise τ', kind: 'number', help: 'The simulated labeler prefers a over b with probability σ((u_a − u_b)/τ): larger τ, noisier labels.', equation: 'bt-model' },
  { key: 'reward.sample_temperature', label: 'Pair sampling temperature', kind: 'number', help: 'Temperature for sampling the two completions of a pair from π_ref (above 0, so they differ).', equation: 'bt-model' },
  { key: 'reward.learning_rate', label: 'Learning rate', kind: 'number', help: 'Adam step size for the reward model (decays linearly to 0).', equation: 'bt-loss' },
  { key: 'reward.batch_size', label: 'Batch', kind: 'int', help: 'Labeled pairs per step.', equation: 'bt-loss' },
  { key: 'reward.epochs', label: 'Epochs', kind: 'int', help: 'Passes over the training labels.', equation: 'bt-loss' },
  { key: 'reward.expression', label: 'Your reward', kind: 'text', own: true, help: 'A weighted sum of named terms that PPO or GRPO can train against (reward = custom): e.g. 2*count("great") + sentiment - 0.1*length_over(12). Checked in Rust; a bad expression is refused with its column.', equation: 'objective' },
  { key: 'reward.held_out_fraction', label: 'Held-out share', kind: 'number', help: 'Share of labels kept out of training to measure accuracy (the same pairs for DPO).', equation: 'bt-loss' },
  // Stage 3
  { key: 'ppo.reward', label: 'Reward', kind: 'select', options: ['reward_model', 'gold', 'custom'], help: 'What π_θ is trained against: reward_model (r_φ, learned from the labels), gold (the gold utility itself, computed by a program: a verifiable reward, RLVR) or custom (your expression, under "Rewards you choose"). Gold stays the hidden truth on every chart.', equation: 'objective' },
  { key: 'ppo.iterations', label: 'Iterations', kind: 'int', help: 'PPO iterations: each is one rollout and its update.', equation: 'ppo-loss' },
  { key: 'ppo.batch_size', label: 'Rollout batch', kind: 'int', help: 'Completions sampled per iteration.', equation: 'objective' },
  { key: 'ppo.mini_batches', label: 'Minibatches', kind: 'int', help: 'Minibatches each epoch splits the rollout into.', equation: 'ppo-loss' },
  { key: 'ppo.epochs', label: 'Epochs (K)', kind: 'int', help: 'Passes over each rollout with its quantities frozen.', equation: 'ppo-loss' },
  { key: 'ppo.learning_rate', label: 'Learning rate', kind: 'number', help: 'Adam step size for policy and value model.', equation: 'ppo-loss' },
  { key: 'ppo.kl_coef', label: 'KL coefficient β', kind: 'number', help: 'Weight of the KL leash in the per-token reward. Near 0, watch the reward model get hacked.', equation: 'effective-reward' },
  { key: 'ppo.adaptive_kl', label: 'Adaptive β', kind: 'bool', help: 'Adjust β toward the target KL after each iteration (Ziegler et al. 2019).', equation: 'objective' },
  { key: 'ppo.target_kl', label: 'Target KL', kind: 'number', help: 'KL per completion the adaptive controller aims for.', equation: 'kl' },
  { key: 'ppo.kl_estimator', label: 'KL estimator', kind: 'select', options: ['k1', 'k3'], help: 'k1: the log-ratio, as on the page; k3: (r − 1) − log r, never negative.', equation: 'kl' },
  { key: 'ppo.early_stop_kl', label: 'Early-stop KL', kind: 'number', help: 'Stop an iteration\'s epochs when approx KL passes this (0 = never).', equation: 'ratio' },
  { key: 'ppo.gamma', label: 'γ (discount)', kind: 'number', help: 'How much later rewards count; 1 for short completions.', equation: 'gae' },
  { key: 'ppo.lam', label: 'λ (GAE)', kind: 'number', help: '0: one-step TD (biased, low variance); 1: Monte Carlo (unbiased, high variance).', equation: 'gae' },
  { key: 'ppo.cliprange', label: 'Clip ε', kind: 'number', help: 'How far ρ may move before the surrogate goes flat.', equation: 'clip' },
  { key: 'ppo.cliprange_value', label: 'Value clip', kind: 'number', help: 'How far V may move from the rollout\'s value before its loss is clipped.', equation: 'value-loss' },
  { key: 'ppo.vf_coef', label: 'c₁ (value loss)', kind: 'number', help: 'Weight of the value loss in the PPO loss.', equation: 'ppo-loss' },
  { key: 'ppo.ent_coef', label: 'c₂ (entropy bonus)', kind: 'number', help: 'Weight of the entropy bonus; TRL uses none (0).', equation: 'entropy' },
  { key: 'ppo.temperature', label: 'Rollout temperature', kind: 'number', help: 'Sampling temperature of rollouts; log-probs are taken at the same temperature.', equation: 'ratio' },
  { key: 'ppo.missing_eos_penalty', label: 'Missing-<eos> penalty', kind: 'number', help: 'Subtracted from the score of a completion that never ends (0 = none).', equation: 'effective-reward' },
  // Stage 3b: GRPO / RLOO
  { key: 'grpo.reward', label: 'Reward', kind: 'select', options: ['reward_model', 'gold', 'custom'], help: 'What π_grpo is trained against, as PPO\'s: r_φ, the gold utility (RLVR) or your expression.', equation: 'objective' },
  { key: 'grpo.iterations', label: 'Iterations', kind: 'int', help: 'GRPO iterations: each is one rollout of G completions per prompt and its update.', equation: 'grpo-loss' },
  { key: 'grpo.prompts', label: 'Prompts per rollout', kind: 'int', help: 'Prompts sampled per iteration; each gets G completions (4 × 8 = PPO\'s 32).', equation: 'grpo-advantage' },
  { key: 'grpo.group_size', label: 'Group size G', kind: 'int', help: 'Completions per prompt: the group each completion\'s reward is compared with (2 or more).', equation: 'grpo-advantage' },
  { key: 'grpo.estimator', label: 'Baseline', kind: 'select', options: ['grpo', 'rloo', 'reinforce'], help: 'grpo: the group\'s mean (r_i included); rloo: the mean of the other G − 1 (unbiased); reinforce: the whole batch\'s mean (a group of 1 is then allowed: REINFORCE with a baseline).', equation: 'grpo-advantage' },
  { key: 'grpo.importance_sampling_level', label: 'Ratio level', kind: 'select', options: ['token', 'sequence'], help: 'token: ρ per token (GRPO); sequence: one ratio per completion, the geometric mean of its tokens\' ratios, clipped per completion (GSPO; use ε around 3e-4).', equation: 'grpo-loss' },
  { key: 'grpo.scale_rewards', label: 'Divide by the group\'s std', kind: 'bool', help: 'GRPO divides r_i − mean by the group\'s std; off: Dr. GRPO\'s unscaled advantage (plain RLOO too). Low-spread groups then push less.', equation: 'grpo-advantage' },
  { key: 'grpo.loss_type', label: 'Loss aggregation', kind: 'select', options: ['grpo', 'dr_grpo', 'dapo'], help: 'How per-token losses are summed into the batch\'s loss: the weights w_i.', equation: 'grpo-loss' },
  { key: 'grpo.mini_batches', label: 'Minibatches', kind: 'int', help: 'Minibatches each epoch splits the rollout into.', equation: 'grpo-loss' },
  { key: 'grpo.epochs', label: 'Epochs (μ)', kind: 'int', help: 'Passes over each rollout; with 1 pass and 1 minibatch, ρ = 1 and the clip never acts.', equation: 'grpo-loss' },
  { key: 'grpo.learning_rate', label: 'Learning rate', kind: 'number', help: 'Adam step size for π_θ (PPO\'s, for a fair comparison).', equation: 'grpo-loss' },
  { key: 'grpo.beta', label: 'KL coefficient β', kind: 'number', help: 'Weight of the k3 penalty to π_ref; 0 is TRL\'s default (no reference model needed).', equation: 'grpo-loss' },
  { key: 'grpo.epsilon_low', label: 'ε_low', kind: 'number', help: 'The ratio\'s clip below 1: tokens with Â < 0 stop being pushed down once ρ < 1 − ε_low.', equation: 'grpo-loss' },
  { key: 'grpo.epsilon_high', label: 'ε_high', kind: 'number', help: 'The clip above 1: tokens with Â > 0 stop being pushed up once ρ > 1 + ε_high (DAPO\'s "clip higher": 0.28).', equation: 'grpo-loss' },
  { key: 'grpo.temperature', label: 'Rollout temperature', kind: 'number', help: 'Sampling temperature of rollouts; log-probs are taken at the same temperature.', equation: 'ratio' },
  { key: 'grpo.missing_eos_penalty', label: 'Missing-<eos> penalty', kind: 'number', help: 'Subtracted from the score of a completion that never ends (0 = none).', equation: 'grpo-advantage' },
  // DPO
  { key: 'dpo.beta', label: 'β', kind: 'number', help: 'Scale of the implicit reward β·log(π_θ/π_ref): how tightly DPO stays near π_ref.', equation: 'dpo' },
  { key: 'dpo.learning_rate', label: 'Learning rate', kind: 'number', help: 'Adam step size for DPO (decays linearly to 0).', equation: 'dpo' },
  { key: 'dpo.epochs', label: 'Epochs', kind: 'int', help: 'Passes over the labeled pairs.', equation: 'dpo' },
  { key: 'dpo.batch_size', label: 'Batch', kind: 'int', help: 'Labeled pairs per step.', equation: 'dpo' },
];

export const BACKENDS = ['auto', 'webgpu', 'cpu'];
/** How the page opens: `lesson` (the guided path, `lesson=N` its step) or `lab` (every panel). */
export const MODES = ['lesson', 'lab'];
/** Most workers a CPU-backend step is split across (`workers=` in the URL; `auto`: one per core but one, up to 4). */
export const MAX_WORKERS = 8;

export function getPath(object, path) {
  return path.split('.').reduce((o, k) => (o == null ? undefined : o[k]), object);
}

export function setPath(object, path, value) {
  const keys = path.split('.');
  let node = object;
  for (const k of keys.slice(0, -1)) node = node[k] ??= {};
  node[keys.at(-1)] = value;
}

/** Converts a text value (from a URL or an input) to the setting's type; NaN/garbage stays visible. */
export function coerce(setting, text) {
  switch (setting.kind) {
    case 'bool': return text === true || text === 'true' || text === '1' || text === 'on';
    case 'int': return /^-?\d+$/.test(String(text).trim()) ? Number(text) : Number.NaN;
    case 'number': return String(text).trim() === '' ? Number.NaN : Number(text);
    default: return String(text);
  }
}

/**
 * Writes the settings that differ from the defaults into the URL (no reload), and the view:
 * `mode=lab` for the full lab, `lesson=N` for step N of the lesson (`view` absent: neither).
 */
export function writeUrl(config, defaults, backend, workers = 'auto', view = null) {
  const params = new URLSearchParams();
  if (view?.mode === 'lab') params.set('mode', 'lab');
  else if (view?.mode === 'lesson' && view.lesson) params.set('lesson', String(view.lesson));
  if (backend !== 'auto') params.set('backend', backend);
  if (workers !== 'auto') params.set('workers', String(workers));
  const walk = (obj, prefix) => {
    for (const [k, v] of Object.entries(obj)) {
      const path = prefix ? `${prefix}.${k}` : k;
      if (v && typeof v === 'object') walk(v, path);
      else if (getPath(defaults, path) !== v) params.set(path, String(v));
    }
  };
  walk(config, '');
  const query = params.toString();
  history.replaceState(null, '', query ? `?${query}` : location.pathname);
}
