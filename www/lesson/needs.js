// What a lesson step needs trained before it can show real numbers, and how to get it: every
// need runs through the lab's own stage controllers (views/*.js, `store.stages`), the same ones
// the pipeline's "Run everything" drives, so the lesson holds no training logic of its own.

const stage = (store, name) => store.stages.get(name);
const stateOf = (store, name) => stage(store, name)?.state();

/** Resolves when `name` is not running (a run begun elsewhere, e.g. on an earlier step). */
function idle(store, name) {
  if (stateOf(store, name) !== 'running') return Promise.resolve();
  return new Promise((resolve) => {
    const off = store.events.on('stage-state', ({ stage: s, state }) => {
      if (s === name && state !== 'running') { off(); resolve(); }
    });
  });
}

/** PPO iterations finished in the current run (0 before any), from the core's status. */
async function ppoIterations(store) {
  const status = await store.client.call('status');
  return status.ppo?.step ?? 0;
}

/**
 * Each need: `label` (what the learner is told is missing), `stage` (whose progress to show),
 * `done(store)` (async), `run(store, lesson)`.
 */
export const NEEDS = {
  sft: {
    label: 'π_ref, from SFT (it starts from the shipped pretrained base model)',
    stage: 'sft',
    done: async (store) => stateOf(store, 'sft') === 'done',
    run: (store) => stage(store, 'sft').start(),
  },
  labels: {
    label: 'preference labels (the simulated labeler makes the rest)',
    stage: 'labels',
    done: async (store) => stateOf(store, 'labels') === 'done',
    run: (store) => stage(store, 'labels').start(),
  },
  reward: {
    label: 'the reward model r_φ, trained on the labels',
    stage: 'reward',
    done: async (store) => stateOf(store, 'reward') === 'done',
    run: (store) => stage(store, 'reward').start(),
  },
  rollout: {
    label: 'one PPO rollout, sampled from π_θ and scored by r_φ',
    stage: 'ppo',
    done: async (store) => ['paused', 'done'].includes(stateOf(store, 'ppo')),
    run: (store) => stage(store, 'ppo').step(),
  },
  update: {
    label: 'one PPO iteration: the rollout\'s minibatch updates',
    stage: 'ppo',
    done: async (store) => stateOf(store, 'ppo') === 'done' || (stateOf(store, 'ppo') === 'paused' && (await ppoIterations(store)) >= 1),
    run: (store) => stage(store, 'ppo').iteration(),
  },
  ppo: {
    label: 'PPO to its last iteration',
    stage: 'ppo',
    done: async (store) => stateOf(store, 'ppo') === 'done',
    run: (store) => stage(store, 'ppo').start(),
  },
  zeroBeta: {
    label: 'PPO again from π_ref with β = 0 (no KL leash)',
    stage: 'ppo',
    done: async (store) => stateOf(store, 'ppo') === 'done' && store.config.ppo.kl_coef === 0,
    run: async (store, lesson) => {
      // A β = 0 run stopped half-way (a reload in the middle of it) goes on from where it was.
      if (store.config.ppo.kl_coef === 0 && stateOf(store, 'ppo') === 'paused') return stage(store, 'ppo').start();
      await lesson.keepBaseline();
      await stage(store, 'ppo').restartWithZeroBeta();
    },
  },
  grpo: {
    label: 'GRPO from π_ref against the same r_φ (G completions per prompt, no value model)',
    stage: 'grpo',
    done: async (store) => stateOf(store, 'grpo') === 'done',
    run: (store) => stage(store, 'grpo').start(),
  },
  dpo: {
    label: 'DPO on the same labels',
    stage: 'dpo',
    done: async (store) => stateOf(store, 'dpo') === 'done',
    run: (store) => stage(store, 'dpo').start(),
  },
};

/** The needs of `list` that are not met yet, in order. */
export async function missing(store, list) {
  const out = [];
  for (const name of list) if (!(await NEEDS[name].done(store))) out.push(name);
  return out;
}

/**
 * Runs the unmet needs of `list` in order. `onNeed(name)` is called as each begins. Resolves
 * with the names still unmet (empty when all are met; a need that ends unmet — paused, an error
 * the stage has reported — stops the rest).
 */
export async function runNeeds(store, list, lesson, onNeed = () => {}) {
  for (const name of list) {
    const need = NEEDS[name];
    await idle(store, need.stage);
    if (await need.done(store)) continue;
    onNeed(name);
    await need.run(store, lesson);
    await idle(store, need.stage);
    if (!(await need.done(store))) return missing(store, list);
  }
  return [];
}
