// A reload in the middle of the lesson comes back to the same step, with what the browser holds
// (issue: reloading offered to re-run SFT and the reward model although both were stored, and a
// stale "lab in progress … PPO at iteration 0" banner stayed up). The lesson is walked on the CPU
// backend with small settings and reloaded after SFT, after the reward model, after the first
// rollout, mid-PPO (after one iteration, and while PPO runs), at the "Write your own reward" step, at the GRPO step and at the last
// step. After each reload: the same step; nothing it needs offered to be run again; Next enabled;
// no stored stage retrained (its metric rows in the browser's store, one per step trained, and the
// core's step counter are what they were); no resume banner; no console error. A PPO run cut by a
// reload goes on from its last snapshot ("Go on: PPO") and ends with every step recorded once.
// A bad step stored in the browser is ignored. Screenshots: test-results/lesson-reload-*.png.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { serve, launch, openPage, OUT } from './harness.mjs';

const QUERY = '?backend=cpu&sft.steps=20&reward.simulated_labels=96&reward.epochs=1&ppo.iterations=6&ppo.batch_size=8&ppo.mini_batches=2&ppo.epochs=2&grpo.iterations=4&grpo.prompts=2&grpo.group_size=4&dpo.epochs=1';
const PPO_ROWS = 6 * (1 + 2 * 2); // iterations × (one rollout + epochs × minibatches)
const TRAINING = 300_000;

/** What the browser and the core hold: metric rows per stage, and the core's step counters. */
const held = (page) => page.evaluate(async () => {
  const lab = window.__lab;
  const rows = {};
  for (const stage of ['sft', 'reward', 'ppo', 'grpo', 'dpo']) rows[stage] = (await lab.storage.metricsOf(stage)).length;
  const status = await lab.client.call('status');
  const at = (s) => (status[s] ? `${status[s].step}/${status[s].total}${status[s].done ? ' done' : ''}` : 'none');
  return { rows, status: Object.fromEntries(['sft', 'reward', 'ppo', 'grpo', 'dpo'].map((s) => [s, at(s)])) };
});

test('a reload at any step of the lesson comes back to that step with what the browser holds', { timeout: 900_000 }, async () => {
  const server = await serve();
  const browser = await launch();
  const t0 = Date.now();
  const lap = (what) => console.log(`# ${((Date.now() - t0) / 1000).toFixed(1)} s: ${what}`);
  try {
    const { page, errors } = await openPage(browser, `${server.url}${QUERY}`, { mode: null });
    const heading = () => page.locator('#lesson h2').textContent();
    const nextReady = page.getByRole('button', { name: /^Next:/, disabled: false });
    const runButton = page.getByRole('button', { name: /^(Run it|Run what is missing|Go on)/ });
    const training = page.getByRole('progressbar', { name: 'Training progress' });
    // Next, or on the last step "Open the full lab": enabled once the step has what it needs.
    const forward = page.getByRole('navigation', { name: 'Lesson steps' }).getByRole('button', { name: /^(Next:|Open the full lab)/, disabled: false });
    const trained = async () => {
      await training.waitFor({ state: 'hidden', timeout: TRAINING });
      await forward.waitFor({ timeout: TRAINING });
    };
    const next = async (n) => {
      await nextReady.click();
      await page.locator('#lesson .lesson-count').filter({ hasText: `Step ${n} of` }).waitFor();
    };

    /** Reloads, and checks the step is the same, nothing is offered again or retrained. */
    async function reload(name, { expectRun = null } = {}) {
      const step = await heading();
      let before = await held(page);
      await page.reload();
      await page.waitForSelector('body[data-ready="true"]', { timeout: 120_000 });
      assert.equal(await heading(), step, `${name}: the same step after the reload`);
      const after = await held(page);
      // (A run cut by the reload comes back at its last snapshot, at most a second behind.)
      if (expectRun) before = after;
      assert.deepEqual(after, before, `${name}: what the browser holds is loaded, nothing trained again`);
      if (expectRun) {
        await page.getByRole('button', { name: expectRun }).waitFor();
      } else {
        await forward.waitFor({ timeout: 30_000 });
        assert.equal(await runButton.count(), 0, `${name}: nothing offered to be run again`);
        assert.match(await page.locator('#lesson .lesson-needs').textContent(), /^(Trained in this browser|$)/);
      }
      assert.equal(await page.getByRole('region', { name: 'resume' }).count(), 0, `${name}: no resume banner`);
      assert.doesNotMatch(await page.locator('#notices').textContent(), /in progress|Resum/, `${name}: no stale notice`);
      // Nothing runs behind the learner's back: a moment later the counters have not moved.
      await page.waitForTimeout(500);
      assert.deepEqual(await held(page), before, `${name}: still nothing trained`);
      await page.screenshot({ path: path.join(OUT, `lesson-reload-${name}.png`) });
      lap(`reloaded ${name} on "${step}": ${JSON.stringify(after.status)}`);
      assert.deepEqual(errors, [], `${name}: no console error`);
    }

    // 1 · SFT.
    await page.getByRole('button', { name: 'Run it: SFT' }).click();
    await trained();
    await reload('after-sft');

    // 2 · five hand labels; 3 · the simulated labeler; 4 · the reward model (trained by Next).
    await next(2);
    for (let i = 0; i < 5; i++) await page.getByRole('button', { name: 'Left is better', disabled: false }).click();
    await nextReady.waitFor({ timeout: 30_000 });
    await next(3);
    await page.getByRole('button', { name: 'Simulate the labels' }).click();
    await trained();
    await next(4);
    await trained();
    await reload('after-reward');
    // The reward model is the stored one: its held-out pairs are there to inspect.
    await page.getByRole('columnheader', { name: 'r_φ' }).waitFor();

    // 5 · one rollout: PPO begun, no iteration finished.
    await next(5);
    await trained();
    await reload('after-rollout');
    await page.locator('#lesson .lesson-live .lesson-figure').filter({ hasText: /^Completion \d+: \d+ tokens/ }).waitFor({ timeout: 10_000 });

    // 6, 7 · one PPO iteration: PPO paused at iteration 1 of 6.
    await next(6);
    await next(7);
    await trained();
    await reload('mid-ppo');
    assert.match((await held(page)).status.ppo, /^1\/6$/);

    // 8 · PPO to the end, cut by a reload while it runs (in slow motion, so that it is caught mid-way).
    await page.evaluate(() => window.__lab.client.speed(250));
    await nextReady.click();
    await page.locator('#lesson .lesson-count').filter({ hasText: 'Step 8 of' }).waitFor();
    for (let waited = 0; ; waited += 100) {
      const at = await page.evaluate(async () => (await window.__lab.storage.getSnapshot('ppo'))?.progress.step ?? 0);
      if (at >= 3) break;
      if (waited > TRAINING) throw new Error('PPO did not reach its fourth iteration');
      await page.waitForTimeout(100);
    }
    await reload('ppo-running', { expectRun: 'Go on: PPO' });
    const cut = await held(page);
    assert.match(cut.status.ppo, /^[3-5]\/6$/, `PPO resumed where its snapshot was: ${cut.status.ppo}`);
    await page.getByRole('button', { name: 'Go on: PPO' }).click();
    await trained();
    assert.equal((await held(page)).rows.ppo, PPO_ROWS, 'PPO went on from its snapshot: every step recorded once');

    // 9 · β = 0; 10 · your own reward (π_ref is all it needs); 11 · GRPO; 12 · DPO and the frontier.
    await next(9);
    await trained();
    await next(10);
    await reload('your-reward');
    await page.getByRole('textbox', { name: 'Your reward' }).waitFor({ state: 'attached' });
    await next(11);
    await trained();
    await reload('grpo');
    await page.getByRole('table').filter({ has: page.getByRole('columnheader', { name: 'Â_i' }) }).waitFor();
    await next(12);
    await trained();
    await page.getByRole('rowheader', { name: 'DPO' }).waitFor({ timeout: 60_000 });
    await reload('last-step');
    for (const policy of ['π_ref', 'PPO', 'GRPO', 'DPO']) await page.getByRole('rowheader', { name: policy, exact: true }).first().waitFor();

    // A step stored in this browser is recalled when the link names none; a bad one is ignored.
    const bare = `${server.url}?backend=cpu`;
    for (const [stored, opens] of [['7', 7], ['999', 1], ['abc', 1], ['-2', 1], ['3.5', 1]]) {
      await page.evaluate((v) => localStorage.setItem('rlhf-lab-lesson-step', v), stored);
      await page.goto(bare);
      await page.waitForSelector('body[data-ready="true"]', { timeout: 120_000 });
      assert.equal(await page.locator('#lesson .lesson-count').textContent(), `Step ${opens} of 12`, `stored step "${stored}"`);
    }
    assert.deepEqual(errors, []);
    lap('done');
  } finally {
    await browser.close();
    await server.close();
  }
});
