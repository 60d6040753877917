// Data-parallel steps on the CPU backend (src/engine/data_parallel.rs, src/app/shard.rs, www/shards.js): with `workers=2` in the
// link the page says so, splits each SFT step between its training worker and a helper worker,
// and trains exactly as one worker does (the same losses, to float rounding). A helper that fails
// ends the splitting with a notice, and training goes on, still on the same numbers. A bad
// `workers=` value is refused like any bad link setting. Reward-model and DPO steps and PPO's
// minibatch updates are split too: from the same π_ref, labels and r_φ (carried from one page to
// the other), two workers give one worker's metrics, PPO's rollouts included.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { serve, launch, openPage, OUT } from './harness.mjs';

const STEPS = 8;

/** SFT through the page's controls; the training loss of each step, from the worker's events. */
async function sftLosses(browser, server, link, { sabotageAfter = null } = {}) {
  const { page, context, errors } = await openPage(browser, `${server.url}${link}&sft.steps=${STEPS}&sft.eval_every=4`);
  await page.getByRole('status').filter({ hasText: 'CPU backend' }).waitFor();
  const badge = await page.locator('#backend').textContent();
  await page.evaluate((sabotageAfter) => {
    window.__losses = [];
    window.__lab.client.on((e) => {
      if (e.event !== 'step' || e.stage !== 'sft') return;
      window.__losses.push(e.metrics['loss/train']);
      if (window.__losses.length === sabotageAfter) window.__lab.client.sabotageShards();
    });
  }, sabotageAfter);
  await page.getByRole('button', { name: 'Start SFT' }).click();
  await page.getByRole('button', { name: 'Done' }).waitFor({ timeout: 300_000 });
  const losses = await page.evaluate(() => window.__losses);
  return { page, context, errors, badge, losses };
}

function assertClose(got, expected, what) {
  assert.equal(got.length, expected.length, `${what}: ${got.length} steps, not ${expected.length}`);
  got.forEach((loss, i) => assert.ok(Math.abs(loss - expected[i]) <= 1e-5 * Math.max(1, Math.abs(expected[i])), `${what}, step ${i + 1}: ${loss} against ${expected[i]}`));
}

test('two workers train as one does; a failing helper leaves one, with a notice', { timeout: 900_000 }, async () => {
  const server = await serve();
  const browser = await launch();
  try {
    const one = await sftLosses(browser, server, '?backend=cpu&workers=1');
    assert.doesNotMatch(one.badge, /workers/);
    assert.deepEqual(one.errors, []);
    await one.context.close();

    const two = await sftLosses(browser, server, '?backend=cpu&workers=2');
    assert.match(two.badge, /· 2 workers/);
    assertClose(two.losses, one.losses, 'two workers');
    assert.ok(two.losses.at(-1) < two.losses[0], `SFT lowered the loss: ${two.losses}`);
    assert.match(two.page.url(), /workers=2/, 'the link keeps the setting');
    await two.page.screenshot({ path: path.join(OUT, 'workers.png') });
    assert.deepEqual(two.errors, []);
    await two.context.close();

    const broken = await sftLosses(browser, server, '?backend=cpu&workers=2', { sabotageAfter: 3 });
    const notice = broken.page.locator('.notice').filter({ hasText: 'no longer split across workers' });
    assert.match(await notice.textContent(), /θ has \d+ values; the model has \d+ parameters/);
    assertClose(broken.losses, one.losses, 'after a helper failed');
    assert.deepEqual(broken.errors, []);
    await broken.context.close();

    const { page, context } = await openPage(browser, `${server.url}?backend=cpu&workers=lots`);
    const refused = page.getByRole('status', { name: 'Link parts not taken' });
    assert.match(await refused.first().textContent(), /workers: must be auto or a whole number from 1 to 8/);
    await context.close();
  } finally {
    await browser.close();
    await server.close();
  }
});

const STAGES_LINK = '?backend=cpu&preset=micro&sft.steps=4&reward.simulated_labels=32&reward.epochs=1&dpo.epochs=1&dpo.batch_size=8&ppo.iterations=2&ppo.batch_size=8&ppo.mini_batches=2&ppo.epochs=2';

/** Runs `stage` to its end through the page's worker; every step's metrics. */
function runToEnd(page, stage) {
  return page.evaluate((stage) => new Promise((resolve, reject) => {
    const lab = window.__lab;
    const steps = [];
    const off = lab.client.on((e) => {
      if (e.stage !== stage || e.tag !== 'e2e') return;
      if (e.event === 'step') steps.push({ ...e.metrics, split: e.split });
      if (e.event === 'stopped') {
        off();
        if (e.reason === 'done') resolve(steps);
        else reject(new Error(`${stage} stopped: ${e.reason} ${e.error?.message ?? ''}`));
      }
    });
    lab.client.run(stage, null, 'e2e');
  }), stage);
}

/** Every metric of `split` equals `whole`'s within 1e-5 (relative above 1), step by step. */
function assertSameMetrics(split, whole, what, { shifted = [] } = {}) {
  assert.equal(split.length, whole.length, `${what}: ${split.length} steps, not ${whole.length}`);
  let compared = 0;
  whole.forEach((expected, i) => {
    assert.deepEqual(Object.keys(split[i]).sort(), Object.keys(expected).sort(), `${what}, step ${i + 1}'s metrics`);
    // Metrics that carry a constant any split may shift (see the reward model's below) must all
    // move by the same amount.
    const shift = shifted.length ? split[i][shifted[0]] - expected[shifted[0]] : 0;
    for (const [name, value] of Object.entries(expected)) {
      const got = split[i][name] - (shifted.includes(name) ? shift : 0);
      assert.ok(Math.abs(got - value) <= 1e-5 * Math.max(1, Math.abs(value)), `${what}, step ${i + 1}, ${name}: ${split[i][name]} with two workers against ${value} with one`);
      compared += 1;
    }
  });
  return compared;
}

test('reward-model, DPO and PPO steps split across two workers give one worker\'s metrics', { timeout: 900_000 }, async () => {
  const server = await serve();
  const browser = await launch();
  try {
    // One worker: SFT, simulated labels, the reward model and PPO; π_ref, the labels and r_φ
    // are kept for the other page.
    const one = await openPage(browser, `${server.url}${STAGES_LINK}&workers=1`);
    await one.page.getByRole('status').filter({ hasText: 'CPU backend' }).waitFor();
    await one.page.locator('#sft').getByRole('button', { name: 'Start SFT' }).click();
    await one.page.locator('#sft').getByRole('button', { name: 'Done' }).waitFor({ timeout: 300_000 });
    const { labels, sft } = await one.page.evaluate(async () => {
      const lab = window.__lab;
      const simulated = await lab.client.call('simulateLabels', lab.config.reward.simulated_labels);
      const labels = simulated.map((s) => JSON.stringify(s.label)).join('\n');
      await lab.client.call('rewardBegin', labels);
      return { labels, sft: Array.from(await lab.client.call('save', 'sft')) };
    });
    const rewardWhole = await runToEnd(one.page, 'reward');
    const reward = await one.page.evaluate(async () => {
      const lab = window.__lab;
      await lab.client.call('rewardFinish');
      const bytes = Array.from(await lab.client.call('save', 'reward'));
      await lab.client.call('ppoBegin');
      return bytes;
    });
    const ppoWhole = await runToEnd(one.page, 'ppo');
    await one.page.evaluate((labels) => window.__lab.client.call('dpoBegin', labels), labels);
    const dpoWhole = await runToEnd(one.page, 'dpo');

    // Two workers: the same π_ref and labels, the reward model trained split; then PPO from
    // the first page's r_φ (the two reward models differ in a constant shift of their scores).
    const two = await openPage(browser, `${server.url}${STAGES_LINK}&workers=2`);
    await two.page.getByRole('status').filter({ hasText: 'CPU backend' }).waitFor();
    assert.match(await two.page.locator('#backend').textContent(), /· 2 workers/);
    await two.page.evaluate(async ({ sft, labels }) => {
      const lab = window.__lab;
      await lab.client.call('load', new Uint8Array(sft));
      await lab.client.call('rewardBegin', labels);
    }, { sft, labels });
    const rewardSplit = await runToEnd(two.page, 'reward');
    await two.page.evaluate(async (reward) => {
      const lab = window.__lab;
      await lab.client.call('load', new Uint8Array(reward));
      await lab.client.call('ppoBegin');
    }, reward);
    const ppoSplit = await runToEnd(two.page, 'ppo');
    await two.page.evaluate((labels) => window.__lab.client.call('dpoBegin', labels), labels);
    const dpoSplit = await runToEnd(two.page, 'dpo');

    // With two workers every reward and DPO step and every PPO update was split, each rollout
    // taken whole; with one worker nothing was.
    assert.ok(rewardWhole.length >= 2, `${rewardWhole.length} reward steps`);
    assert.ok(dpoWhole.length >= 2, `${dpoWhole.length} DPO steps`);
    assert.deepEqual([...rewardSplit, ...dpoSplit].map((m) => m.split), [...rewardSplit, ...dpoSplit].map(() => true));
    assert.equal(ppoWhole.length, 10); // 2 iterations × (1 rollout + 2 epochs × 2 minibatches)
    const whole = [...rewardWhole, ...ppoWhole, ...dpoWhole];
    assert.deepEqual(whole.map((m) => m.split), whole.map(() => false));
    assert.deepEqual(ppoSplit.map((m) => m.split), ppoSplit.map((m) => m.phase === 1));
    for (const m of [...whole, ...rewardSplit, ...ppoSplit, ...dpoSplit]) delete m.split;

    // The Bradley–Terry loss sees only differences of scores: the head's bias gets a zero
    // gradient up to rounding, which Adam turns into steps of up to ±lr (src/rlhf/stages/reward.rs),
    // so the mean scores of chosen and rejected completions may move together.
    const rewardCompared = assertSameMetrics(rewardSplit, rewardWhole, 'reward model', { shifted: ['rewards/chosen', 'rewards/rejected'] });
    const ppoCompared = assertSameMetrics(ppoSplit, ppoWhole, 'PPO');
    const dpoCompared = assertSameMetrics(dpoSplit, dpoWhole, 'DPO');
    assert.ok(ppoWhole.some((m) => m.phase === 1 && Math.abs(m['val/ratio'] - 1) > 1e-4), 'the updates moved the policy');
    console.log(`# ${rewardCompared} reward-model, ${dpoCompared} DPO and ${ppoCompared} PPO metrics equal within 1e-5`);
    const notices = await two.page.locator('.notice').filter({ hasText: 'no longer split across workers' }).count();
    assert.equal(notices, 0, 'the helpers did not fail');
    assert.deepEqual(one.errors, []);
    assert.deepEqual(two.errors, []);
  } finally {
    await browser.close();
    await server.close();
  }
});
