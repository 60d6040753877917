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

/**
 * Keeps an online-RL panel's state in step with its gate: blocked while it is closed, ready (or
 * paused, with a run begun) once open; a new π_ref or r_φ clears the panel's run (it was against
 * the old ones); its Reset button discards the stage's snapshots and clears the run. `panel`
 * gives `state()`, `setState(s)`, `begun()`, `refresh()`, `clearRun()`.
 */
export function followGate(store, gate, stage, panel, reset) {
  const reopen = () => {
    const state = panel.state();
    if (state === 'running') return;
    if (gate.open() && state === 'blocked') panel.setState(panel.begun() ? 'paused' : 'ready');
    else if (!gate.open() && state !== 'blocked') panel.setState('blocked');
    else panel.refresh(); // what it waits for may have changed
  };
  store.events.on('stage-state', ({ stage: other, state }) => {
    if (other !== 'reward' && other !== 'sft') return;
    if (state === 'running' && panel.begun() && panel.state() !== 'running') panel.clearRun();
    reopen();
  });
  gate.onChange(reopen);
  reset.addEventListener('click', () => {
    if (panel.state() === 'running') return;
    store.storage.discardSnapshotsFrom(stage).catch(() => {});
    panel.clearRun();
    panel.setState(gate.open() ? 'ready' : 'blocked');
  });
}
