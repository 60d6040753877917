// Crash and reload: the tab is reloaded in the middle of PPO (no pause, as a crash would), and
// the page offers to resume; resuming brings back the labels, the checkpoints, every stage's
// metric history and PPO where it was (at most the last second of steps lost: the worker stores
// them at most a second apart), and PPO then runs to its end. Screenshot: test-results/resume.png.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { serve, launch, openPage, OUT } from './harness.mjs';

const QUERY = '?backend=cpu&sft.steps=20&reward.simulated_labels=96&reward.epochs=1&ppo.iterations=6&ppo.batch_size=8&ppo.mini_batches=2&ppo.epochs=2';

/** What the browser holds: labels, checkpoints, metric rows per stage, PPO's snapshot progress. */
const stored = (page) => page.evaluate(async () => {
  const s = window.__lab.storage;
  const rows = {};
  for (const stage of ['sft', 'reward', 'ppo']) rows[stage] = (await s.metricsOf(stage)).length;
  return {
    labels: await s.labelsJsonl(),
    checkpoints: (await s.listCheckpoints()).map((c) => `${c.role}:${c.size}`).sort(),
    rows,
    ppo: (await s.getSnapshot('ppo'))?.progress ?? null,
  };
});

test('a reload in the middle of PPO resumes with labels, checkpoints and metric history intact', { timeout: 900_000 }, async () => {
  const server = await serve();
  const browser = await launch();
  const started = Date.now();
  const lap = (what) => console.log(`# ${what}: ${((Date.now() - started) / 1000).toFixed(1)} s`);
  try {
    let { page, errors } = await openPage(browser, `${server.url}${QUERY}`);
    // Stages 1 and 2 through the panels' controllers (the lab's "run everything" does the same).
    await page.evaluate(async () => {
      const stages = window.__lab.stages;
      for (const name of ['sft', 'labels', 'reward']) {
        await stages.get(name).start();
        if (stages.get(name).state() !== 'done') throw new Error(`${name} did not finish: ${stages.get(name).state()}`);
      }
    });
    lap('SFT, labels and reward model done');

    // PPO from its panel; reload without pausing once it is inside its third iteration. In slow
    // motion (400 ms between steps): at full speed these 6 small iterations take about a second,
    // and PPO would be done before the reload.
    await page.locator('#speed').selectOption({ label: 'slow motion' });
    await page.locator('#ppo').getByRole('button', { name: 'Start PPO', exact: true }).click();
    for (let waited = 0; ; waited += 100) {
      const step = await page.evaluate(async () => (await window.__lab.storage.getSnapshot('ppo'))?.progress.step ?? -1);
      if (step >= 2) break;
      if (waited > 300_000) throw new Error('PPO did not reach its third iteration');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const before = await stored(page);
    lap(`reloading mid-PPO: PPO snapshot at iteration ${before.ppo.step} of ${before.ppo.total}, ${before.rows.ppo} PPO metric rows`);
    assert.ok(before.ppo.step < before.ppo.total, 'the reload happens before PPO ends');
    assert.ok(before.checkpoints.some((c) => c.startsWith('sft:')) && before.checkpoints.some((c) => c.startsWith('reward:')), before.checkpoints.join());
    await page.reload();
    await page.waitForSelector('body[data-ready="true"]', { timeout: 120_000 });

    // The offer, in words, then the resume.
    const banner = page.getByRole('region', { name: 'resume' });
    await banner.waitFor({ timeout: 30_000 });
    const offer = await banner.textContent();
    console.log(`# offer: ${offer.replace(/\s+/g, ' ').trim()}`);
    assert.match(offer, /SFT done, the reward model done, PPO at iteration \d+ of 6/);
    const atReload = await stored(page);
    await banner.getByRole('button', { name: 'Resume where I was' }).click();
    await page.locator('#ppo').getByRole('button', { name: 'Resume', exact: true }).waitFor({ timeout: 120_000 });
    lap('resumed');

    // Nothing the learner made is lost; at most the last second of steps.
    const after = await stored(page);
    assert.equal(after.labels, before.labels, 'labels intact');
    assert.equal(after.labels.trim().split('\n').length, 96);
    for (const role of ['sft', 'reward']) assert.ok(after.checkpoints.some((c) => c.startsWith(`${role}:`)), `${role} checkpoint intact`);
    assert.equal(after.rows.sft, 20, 'SFT history intact');
    assert.equal(after.rows.reward, before.rows.reward, 'reward history intact');
    assert.ok(after.rows.ppo >= before.rows.ppo, 'PPO history intact');
    assert.ok(atReload.ppo.step >= before.ppo.step);
    const status = await page.evaluate(() => window.__lab.client.call('status'));
    assert.deepEqual({ step: status.ppo.step, done: status.ppo.done }, { step: atReload.ppo.step, done: false }, 'PPO resumed at its last snapshot');
    assert.ok(status.has_reference && status.has_reward_model && status.sft.done && status.reward.done);
    // The panels show it: SFT and the reward model done, PPO paused with its curves redrawn.
    for (const id of ['sft', 'reward']) {
      assert.equal(await page.locator(`#${id} .controls button.primary`).textContent(), 'Done', `${id} panel shows done`);
    }
    const progressText = await page.locator('#ppo .progress span').textContent();
    assert.match(progressText, new RegExp(`^${status.ppo.step} / 6 iterations`));
    assert.equal(await page.locator('.stage-card[data-stage="ppo"]').getAttribute('data-state'), 'paused');
    const ppoRowsAfterResume = after.rows.ppo;

    // PPO goes on from there to the end.
    await page.locator('#ppo').getByRole('button', { name: 'Resume', exact: true }).click();
    await page.locator('#ppo').getByRole('button', { name: 'Done', exact: true }).waitFor({ timeout: 300_000 });
    lap('PPO done after the resume');
    const end = await stored(page);
    // 6 iterations × (1 rollout + 2 epochs × 2 minibatches) = 30 steps in all, each recorded once.
    assert.equal(end.rows.ppo, 30, `PPO rows: ${ppoRowsAfterResume} after resume, ${end.rows.ppo} at the end`);
    // Every PPO curve holds all 6 iterations: 2–3 replayed from the stored history, the rest live.
    const points = await page.$$eval('#ppo .ppo-curves [data-curve]', (boxes) => boxes.map((b) => `${b.dataset.curve}:${b.querySelector('[data-points]')?.dataset.points}`));
    // (Values held, one per series: the score chart draws the RM score and the gold utility.)
    assert.equal(points.join(), 'score:12,kl:6,clipfrac:6,approxkl:6,value:6,entropy:6,length:6');
    // Charts off screen draw when they come into view: bring the last one in, then wait a moment.
    await page.locator('#ppo .ppo-curves [data-curve]').last().scrollIntoViewIfNeeded();
    await page.waitForTimeout(500);
    await page.locator('#ppo').screenshot({ path: path.join(OUT, 'resume.png') });
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    await server.close();
  }
});
