// When an online-RL panel (PPO, GRPO) may train, one rule for both: it starts from π_ref, and
// against r_φ only once the reward model exists; against a program's reward (the gold utility,
// or the learner's own expression: `ppo.reward`, `grpo.reward`) π_ref is enough.

/**
 * Tracks the stages `section`'s run needs. `open()`: whether it may start; `waiting(name)`: what it
 * waits for, in words; `onChange(f)`: called when the answer may have changed (a stage finished or
 * restarted, or the reward source was changed in the settings).
 */
export function onlineGate(store, section) {
  let sftDone = store.stages.get('sft')?.state() === 'done';
  let rewardDone = store.stages.get('reward')?.state() === 'done';
  const listeners = [];
  const againstRewardModel = () => store.config[section].reward === 'reward_model';
  store.events.on('stage-state', ({ stage, state }) => {
    if (stage === 'sft') {
      sftDone = state === 'done';
      if (!sftDone) rewardDone = false;
    }
    if (stage === 'reward') rewardDone = state === 'done';
  });
  store.events.on('config-changed', ({ key }) => {
    if (key === `${section}.reward`) listeners.forEach((f) => f());
  });
  return {
    open: () => (againstRewardModel() ? rewardDone : sftDone),
    waiting: (name) => (againstRewardModel()
      ? `Waiting for the reward model r_φ (stage 2b): ${name} scores with r_φ. Or train against the gold utility or a reward you write: "Reward" in its settings.`
      : `Waiting for π_ref (stage 1): ${name} starts from it.`),
    onChange: (f) => listeners.push(f),
  };
}
