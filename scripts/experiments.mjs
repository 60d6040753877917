// The stages' headline numbers, measured in headless Chromium on the CPU backend (the lab's page,
// driven through its worker): SFT held-out loss before/after and samples, the reward model's
// held-out accuracy against the labeler's agreement ceiling on 2,000 simulated labels, PPO's RM
// score, gold utility and KL (default β, then β = 0), DPO's implicit-reward accuracy and the
// frontier points. Each with its wall time. Not a test: a command whose output goes in the notes.
//   node scripts/experiments.mjs [--backend cpu|webgpu] [--only ppo,dpo] [--query 'seed=2&…'] > experiments.jsonl
// --only picks the later stages to run (ppo, dpo); SFT and the reward model always run, being
// their inputs. --query adds URL settings (the seed, any stage setting).
import { serve, launch, openPage } from '../tests/e2e/harness.mjs';

const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const backend = arg('--backend', 'cpu');
const extra = arg('--query', '');
const only = new Set(arg('--only', 'sft,reward,ppo,dpo').split(','));
const log = (record) => console.log(JSON.stringify(record));

const server = await serve();
const browser = await launch();
try {
  const { page } = await openPage(browser, `${server.url}?backend=${backend}${extra ? `&${extra}` : ''}`);
  page.setDefaultTimeout(0);
  const result = await page.evaluate(async (only) => {
    const lab = window.__lab;
    const { client } = lab;
    const out = [];
    const now = () => performance.now();
    const run = (stage) => new Promise((resolve, reject) => {
      const metrics = [];
      const off = client.on((e) => {
        if (e.stage !== stage || e.tag !== 'experiments') return;
        if (e.event === 'step') metrics.push(e.metrics);
        if (e.event === 'stopped') { off(); e.reason === 'done' ? resolve(metrics) : reject(new Error(`${stage}: ${e.reason} ${e.error?.message ?? ''}`)); }
      });
      client.run(stage, null, 'experiments');
    });
    const last = (metrics, key) => metrics.filter((m) => key in m).at(-1)?.[key];
    const first = (metrics, key) => metrics.find((m) => key in m)?.[key];

    // Stage 1: SFT from the shipped base, and from random weights for the untrained loss.
    const bytes = new Uint8Array(await (await fetch('models/base-tiny.rlhf')).arrayBuffer());
    await client.call('baseFromScratch');
    await client.call('sftBegin');
    const scratch = await client.call('step', 'sft');
    await client.call('load', bytes);
    const before = await client.call('samples', 'base', 0.7, 1);
    await client.call('sftBegin');
    let t = now();
    const sft = await run('sft');
    await client.call('sftFinish');
    const after = await client.call('samples', 'sft', 0.7, 1);
    out.push({ stage: 'sft', seconds: (now() - t) / 1000, steps: sft.length, untrained_held_out_loss: scratch['loss/held_out'], base_held_out_loss: first(sft, 'loss/held_out'), final_held_out_loss: last(sft, 'loss/held_out'), final_held_out_accuracy: last(sft, 'accuracy/held_out'), samples: before.map((b, i) => ({ prompt: b.prompt, before: b.completion, after: after[i].completion, gold_before: b.gold, gold_after: after[i].gold })) });

    // Stage 2: 2,000 simulated labels, the reward model.
    t = now();
    const labels = [];
    while (labels.length < lab.config.reward.simulated_labels) {
      const batch = await client.call('simulateLabels', Math.min(64, lab.config.reward.simulated_labels - labels.length));
      labels.push(...batch.map((b) => b.label));
    }
    const labelSeconds = (now() - t) / 1000;
    const jsonl = labels.map((l) => JSON.stringify(l)).join('\n');
    const plan = await client.call('rewardBegin', jsonl);
    t = now();
    const rm = await run('reward');
    await client.call('rewardFinish');
    out.push({ stage: 'reward', label_seconds: labelSeconds, seconds: (now() - t) / 1000, labels: labels.length, plan, held_out_accuracy: last(rm, 'rm/held_out_accuracy'), ceiling: plan.ceiling, gold_correlation: last(rm, 'rm/gold_correlation'), held_out_loss: last(rm, 'rm/held_out_loss') });

    if (!only.includes('ppo') && !only.includes('dpo')) return out;
    // Stage 3: PPO at the default β, then at β = 0.
    const reference = await client.call('evaluate', 'sft', 256, 99);
    for (const beta of only.includes('ppo') ? [lab.config.ppo.kl_coef, 0] : []) {
      const config = structuredClone(lab.config);
      config.ppo.kl_coef = beta;
      if (beta === 0) config.ppo.iterations *= 2;
      await client.call('setConfig', JSON.stringify(config));
      await client.call('ppoBegin');
      t = now();
      const ppo = await run('ppo');
      const seconds = (now() - t) / 1000;
      const rollouts = ppo.filter((m) => m.phase === 0);
      const curve = rollouts.map((m) => ({ iteration: m.iteration, score: m['objective/scores'], gold: m['objective/gold'], kl: m['objective/kl'] }));
      const evaluation = await client.call('evaluate', 'policy', 256, 99);
      const policySamples = await client.call('samples', 'policy', 0.7, 2);
      out.push({ stage: 'ppo', beta, seconds, iterations: rollouts.length, reference, policy: evaluation, first: curve[0], last: curve.at(-1), curve: curve.filter((_, i) => i % 10 === 9 || i === 0), samples: policySamples.slice(0, 5) });
    }
    await client.call('setConfig', JSON.stringify(lab.config));

    if (!only.includes('dpo')) return out;
    // DPO on the same labels, beside the reward model on the same held-out pairs.
    t = now();
    const dpoPlan = await client.call('dpoBegin', jsonl);
    const dpo = await run('dpo');
    const dpoSeconds = (now() - t) / 1000;
    const dpoEvaluation = await client.call('evaluate', 'dpo', 256, 99);
    out.push({ stage: 'dpo', seconds: dpoSeconds, plan: dpoPlan, held_out_accuracy: last(dpo, 'dpo/held_out_accuracy'), rm_held_out_accuracy: last(rm, 'rm/held_out_accuracy'), policy: dpoEvaluation, logps_chosen: [first(dpo, 'logps/chosen'), last(dpo, 'logps/chosen')], logps_rejected: [first(dpo, 'logps/rejected'), last(dpo, 'logps/rejected')], margins: [first(dpo, 'rewards/margins'), last(dpo, 'rewards/margins')] });
    return out;
  }, [...only]);
  for (const record of result) log({ backend, ...record });
} finally {
  await browser.close();
  await server.close();
}
