// GRPO and RLOO beside PPO, end to end on the CPU backend with the default settings: SFT from its
// panel, labels and the reward model through `window.__lab` (as ppo.test.mjs), then PPO, GRPO and
// RLOO each from its panel against the same π_ref and r_φ. Checks: a bad setting is refused by
// name; the group inspector shows G completions whose Â_i are the group's (mean, std) and PPO's
// per-token advantages for the same prompt beside them; the curves have a point per iteration;
// GRPO raises the gold utility over π_ref; the frontier and the PPO/GRPO/RLOO table hold the
// three runs. Prints reward, gold, KL and wall time of each. Screenshots: test-results/grpo*.png.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { serve, launch, openPage, labelsAndRewardModel, OUT } from './harness.mjs';

const number = (text) => Number(text.trim().replace('−', '-'));

test('GRPO and RLOO run from their panel beside PPO, on the same π_ref and r_φ', { timeout: 1_500_000 }, async () => {
  const server = await serve();
  const browser = await launch();
  const started = Date.now();
  const lap = (what) => console.log(`# ${what}: ${((Date.now() - started) / 1000).toFixed(1)} s`);
  try {
    const { page, errors } = await openPage(browser, `${server.url}?backend=cpu`);
    const grpo = page.locator('#grpo');
    const button = (name) => grpo.getByRole('button', { name, exact: true });
    assert.ok(await button('Start GRPO').isDisabled(), 'blocked until the reward model exists');
    assert.match(await grpo.locator('.waiting').textContent(), /reward model/);

    // A bad setting is refused by name and changes nothing; the length bias is explained in place.
    await grpo.getByText('GRPO settings').click();
    const group = grpo.getByLabel('Group size G', { exact: true });
    await group.fill('1');
    await group.press('Tab');
    await grpo.getByText(/grpo\.group_size/).waitFor();
    assert.equal(await page.evaluate(() => window.__lab.config.grpo.group_size), 8);
    await group.fill('8');
    await group.press('Tab');
    assert.match(await grpo.locator('.length-bias').textContent(), /^grpo — .*length bias/);
    await grpo.getByLabel('Loss aggregation').selectOption('dr_grpo');
    await page.waitForFunction(() => /^dr_grpo — .*no length bias/.test(document.querySelector('#grpo .length-bias').textContent));
    await grpo.getByLabel('Loss aggregation').selectOption('grpo');
    await page.waitForFunction(() => window.__lab.config.grpo.loss_type === 'grpo');

    await page.locator('#sft').getByRole('button', { name: 'Start SFT' }).click();
    await page.locator('#sft').getByRole('button', { name: 'Done' }).waitFor({ timeout: 600_000 });
    lap('SFT done');
    const { labels } = await labelsAndRewardModel(page);
    lap(`${labels} simulated labels and the reward model`);

    // PPO first, from its panel, to the end: its rollout feeds the group inspector's PPO side.
    const runs = {};
    const runPanel = async (id, startName) => {
      const panel = page.locator(`#${id}`);
      await page.waitForFunction((id) => !document.querySelector(`#${id} .controls button.primary`).disabled, id);
      const t0 = Date.now();
      await panel.getByRole('button', { name: startName, exact: true }).click();
      await panel.getByRole('button', { name: 'Done', exact: true }).waitFor({ timeout: 900_000 });
      return (Date.now() - t0) / 1000;
    };
    runs.ppo = await runPanel('ppo', 'Start PPO');
    lap(`PPO done in ${runs.ppo.toFixed(1)} s`);

    runs.grpo = await runPanel('grpo', 'Start GRPO');
    lap(`GRPO done in ${runs.grpo.toFixed(1)} s`);
    console.log(`# ${await grpo.locator('.phase').textContent()}`);

    // The curves: one point per iteration on each series (reward and gold; low, high, region).
    const hosts = grpo.locator('.grpo-curves .chart-host');
    const series = [2, 1, 1, 1, 3, 1, 1];
    assert.equal(await hosts.count(), series.length);
    for (const [i, n] of series.entries()) assert.equal(Number(await hosts.nth(i).getAttribute('data-points')), 60 * n, `curve ${i}`);

    // The group inspector: G = 8 rows; Â_i recomputed from r_i and the shown mean and std.
    const title = grpo.locator('.group-title');
    assert.match(await title.textContent(), /^Group 1 of 4 \(iteration 60\) · prompt: “/);
    const rows = grpo.locator('table.group-table tbody tr');
    assert.equal(await rows.count(), 8);
    const stats = await grpo.locator('.group-inspector .record-summary').textContent();
    const mean = number(/mean r = (−?[\d.]+)/.exec(stats)[1]);
    const std = number(/std r = (−?[\d.]+)/.exec(stats)[1]);
    for (let i = 0; i < 8; i++) {
      const cells = await rows.nth(i).locator('td').allTextContents();
      const [r, baseline, adv] = [number(cells[2]), number(cells[3]), number(cells[4])];
      assert.ok(Math.abs(baseline - mean) < 2e-3, `row ${i}: the baseline is the mean`);
      if (std > 0) assert.ok(Math.abs(adv - (r - mean) / (std + 1e-4)) < 0.02, `row ${i}: Â = ${adv}, r = ${r}, mean ${mean}, std ${std}`);
    }
    // Another group, by keyboard; then PPO's per-token advantages for a prompt its rollout has.
    await button('Next group').focus();
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => /^Group 2 of 4/.test(document.querySelector('#grpo .group-title').textContent));
    let ppoSide = false;
    for (let g = 2; g <= 4 && !ppoSide; g++) {
      ppoSide = await grpo.locator('.ppo-side table.ppo-tokens').count() > 0;
      if (!ppoSide && g < 4) {
        await button('Next group').click();
        await page.waitForFunction((g) => new RegExp(`^Group ${g + 1} of 4`).test(document.querySelector('#grpo .group-title').textContent), g);
      }
    }
    if (!ppoSide) {
      await button('Previous group').click();
      await button('Previous group').click();
      await button('Previous group').click();
      await page.waitForFunction(() => /^Group 1 of 4/.test(document.querySelector('#grpo .group-title').textContent));
      ppoSide = await grpo.locator('.ppo-side table.ppo-tokens').count() > 0;
    }
    console.log(`# PPO's per-token advantages beside a group: ${ppoSide ? 'shown' : 'no group prompt in PPO\'s last rollout'}`);
    if (ppoSide) {
      const gae = await grpo.locator('.ppo-side table.ppo-tokens tbody tr').first().locator('td').allTextContents();
      assert.ok(gae.length > 0 && gae.every((t) => Number.isFinite(number(t))), `per-token Â: ${gae}`);
    } else {
      assert.match(await grpo.locator('.ppo-side').textContent(), /PPO's current rollout has no completion for/);
    }
    await grpo.scrollIntoViewIfNeeded();
    await grpo.screenshot({ path: path.join(OUT, 'grpo.png') });
    await grpo.locator('.group-inspector').screenshot({ path: path.join(OUT, 'grpo-group-inspector.png') });

    // RLOO: the same panel, reset, with the leave-one-out baseline and no std division.
    await button('Reset').click();
    await grpo.getByLabel('Baseline', { exact: true }).selectOption('rloo');
    await page.waitForFunction(() => window.__lab.config.grpo.estimator === 'rloo');
    await grpo.getByLabel('Divide by the group\'s std').uncheck();
    await page.waitForFunction(() => window.__lab.config.grpo.scale_rewards === false);
    runs.rloo = await runPanel('grpo', 'Start GRPO');
    lap(`RLOO done in ${runs.rloo.toFixed(1)} s`);
    const rlooStats = await grpo.locator('.group-inspector .record-summary').textContent();
    assert.match(rlooStats, /against the mean of the other G − 1/);

    // The frontier holds the three panel runs, measured the same way as π_ref.
    await page.waitForFunction(() => ['ppo', 'grpo', 'rloo'].every((m) => Number(document.querySelector('#comparison .chart-host').dataset[m]) >= 1), null, { timeout: 120_000 });
    const points = await page.evaluate(() => window.__lab.storage.getState('frontier'));
    const ref = points.find((p) => p.method === 'ref');
    const fmt = (v) => (Number.isFinite(v) ? v.toFixed(3) : '—');
    console.log(`# π_ref: RM score ${fmt(ref.score)}, gold ${fmt(ref.gold)}`);
    for (const method of ['ppo', 'grpo', 'rloo']) {
      const p = points.find((q) => q.method === method && q.source === 'panel');
      console.log(`# ${method}: RM score ${fmt(p.score)}, gold ${fmt(p.gold)}, KL ${fmt(p.kl)} ± ${fmt(p.kl_std_error)}, wall ${p.wall_s.toFixed(1)} s for ${p.iterations} iterations (${(p.wall_s / p.iterations).toFixed(3)} s each), ${p.steps} gradient steps`);
    }
    const grpoPoint = points.find((p) => p.method === 'grpo' && p.source === 'panel');
    assert.ok(grpoPoint.gold > ref.gold, `GRPO raises the gold utility over π_ref: ${grpoPoint.gold} vs ${ref.gold}`);
    const table = page.locator('#comparison table.online-rl-table');
    const header = await table.locator('thead th').allTextContents();
    assert.match(header.join(' | '), /PPO · β = 0\.05 · panel run \| GRPO · β = 0\.04 · panel run \| RLOO · β = 0\.04 · panel run/);
    const perIteration = await table.getByRole('row', { name: /Wall time per iteration/ }).locator('td').allTextContents();
    // PPO, GRPO and RLOO ran; REINFORCE and GSPO (the table's other columns) did not.
    assert.ok(perIteration.slice(0, 3).every((t) => /^\d+\.\d+ s \(60 iterations/.test(t)), perIteration.join(' | '));
    assert.deepEqual(perIteration.slice(3), ['—', '—']);
    assert.match(header.join(' | '), /REINFORCE · not run yet \| GSPO · not run yet/);
    await table.scrollIntoViewIfNeeded();
    await table.screenshot({ path: path.join(OUT, 'grpo-table.png') });
    await page.locator('#comparison .charts').screenshot({ path: path.join(OUT, 'grpo-frontier.png') });
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    await server.close();
  }
});

test('a NaN in a GRPO update pauses it by name and rolls back; a reload mid-GRPO resumes it', { timeout: 900_000 }, async () => {
  const QUERY = '?backend=cpu&sft.steps=20&reward.simulated_labels=96&reward.epochs=1&grpo.iterations=6';
  const server = await serve();
  const browser = await launch();
  const started = Date.now();
  const lap = (what) => console.log(`# ${what}: ${((Date.now() - started) / 1000).toFixed(1)} s`);
  try {
    let { page, errors } = await openPage(browser, `${server.url}${QUERY}`);
    await page.evaluate(async () => {
      const stages = window.__lab.stages;
      for (const name of ['sft', 'labels', 'reward']) {
        await stages.get(name).start();
        if (stages.get(name).state() !== 'done') throw new Error(`${name} did not finish: ${stages.get(name).state()}`);
      }
    });
    lap('SFT, labels and reward model done');
    const grpo = page.locator('#grpo');
    const button = (name) => grpo.getByRole('button', { name, exact: true });

    // One rollout, then update 3 of the run computes a NaN loss.
    await page.waitForFunction(() => !document.querySelector('#grpo .controls button.primary').disabled);
    await button('Step one phase').click();
    await button('Resume').waitFor();
    await page.waitForFunction(() => !document.querySelector('#grpo .controls button.primary').disabled);
    await page.evaluate(() => window.__lab.client.call('poison', 'grpo', 3));
    await button('Resume').click();
    const alert = page.getByRole('alert').filter({ hasText: 'GRPO stopped' });
    await alert.waitFor({ timeout: 60_000 });
    const message = await alert.textContent();
    console.log(`# ${message.replace('×', '').trim()}`);
    assert.match(message, /grpo step 3: loss is not a finite number; training paused and the model rolled back/);
    await page.waitForFunction(() => document.querySelector('#grpo .controls button.primary').textContent === 'Resume' && !document.querySelector('#grpo .controls button.primary').disabled);
    errors.length = 0; // the fault's message is expected; nothing else may be logged
    await alert.getByRole('button', { name: 'dismiss' }).click();

    // Go on in slow motion, and reload without pausing inside the third iteration.
    await page.locator('#speed').selectOption({ label: 'slow motion' });
    await button('Resume').click();
    for (let waited = 0; ; waited += 100) {
      const step = await page.evaluate(async () => (await window.__lab.storage.getSnapshot('grpo'))?.progress.step ?? -1);
      if (step >= 2) break;
      if (waited > 300_000) throw new Error('GRPO did not reach its third iteration');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const rowsBefore = await page.evaluate(async () => (await window.__lab.storage.metricsOf('grpo')).length);
    await page.reload();
    await page.waitForSelector('body[data-ready="true"]', { timeout: 120_000 });
    const banner = page.getByRole('region', { name: 'resume' });
    await banner.waitFor({ timeout: 30_000 });
    const offer = (await banner.textContent()).replace(/\s+/g, ' ');
    console.log(`# offer: ${offer.trim()}`);
    assert.match(offer, /GRPO at iteration \d of 6/);
    await banner.getByRole('button', { name: 'Resume where I was' }).click();
    await button('Resume').waitFor({ timeout: 120_000 });
    const progress = await grpo.locator('.progress span').textContent();
    console.log(`# after the reload: ${progress}, ${rowsBefore} metric rows before it`);
    assert.match(progress, /^[2-5] \/ 6 iterations/);
    assert.ok(await page.evaluate(async () => (await window.__lab.storage.metricsOf('grpo')).length) >= rowsBefore, 'the GRPO history is kept');
    await page.locator('#speed').selectOption({ label: 'full speed' });
    await button('Resume').click();
    await button('Done').waitFor({ timeout: 300_000 });
    lap('GRPO resumed and done');
    const hosts = grpo.locator('.grpo-curves .chart-host');
    assert.equal(Number(await hosts.first().getAttribute('data-points')), 12, 'reward and gold at each of the 6 iterations, none twice');
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    await server.close();
  }
});
