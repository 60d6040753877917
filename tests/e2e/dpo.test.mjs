// The DPO panel and the PPO-vs-DPO comparison, end to end: SFT through its UI, labels and a
// reward model (through `window.__lab` while the labeling and reward panels are being built),
// DPO from its panel, the β sweep, the frontier with points of both methods, the comparison
// table, and the points coming back after a reload. Screenshots: test-results/dpo.png and
// test-results/comparison.png.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { serve, launch, openPage, OUT } from './harness.mjs';

const QUERY = '?backend=cpu&sft.steps=20&reward.simulated_labels=128&dpo.epochs=1&ppo.iterations=2&ppo.batch_size=8';

/** Labels from the simulated labeler and a trained reward model, as stage 2's panels would make them. */
async function labelsAndRewardModel(page) {
  return page.evaluate(async () => {
    const lab = window.__lab;
    const simulated = await lab.client.call('simulateLabels', lab.config.reward.simulated_labels);
    await lab.storage.addLabels(simulated.map((s) => s.label));
    lab.events.emit('stage-state', { stage: 'labels', state: 'done', produced: 'labels' });
    const plan = await lab.client.call('rewardBegin', await lab.storage.labelsJsonl());
    const writes = [];
    const reason = await new Promise((resolve) => {
      const off = lab.client.on((e) => {
        if (e.stage !== 'reward' || e.tag !== 'e2e') return;
        if (e.event === 'step') writes.push(lab.storage.appendMetrics('reward', e.metrics));
        if (e.event === 'stopped') { off(); resolve(e.reason); }
      });
      lab.client.run('reward', null, 'e2e');
    });
    await Promise.all(writes);
    if (reason !== 'done') throw new Error(`the reward model stopped: ${reason}`);
    await lab.client.call('rewardFinish');
    lab.events.emit('stage-state', { stage: 'reward', state: 'done', produced: 'r_φ' });
    const rows = await lab.storage.metricsOf('reward');
    return { labels: simulated.length, plan, rmAccuracy: rows.filter((m) => 'rm/held_out_accuracy' in m).at(-1)['rm/held_out_accuracy'] };
  });
}

const counts = (page) => page.locator('#comparison .chart-host').first().evaluate((host) => ({ ref: Number(host.dataset.ref), ppo: Number(host.dataset.ppo), grpo: Number(host.dataset.grpo), rloo: Number(host.dataset.rloo), reinforce: Number(host.dataset.reinforce), gspo: Number(host.dataset.gspo), dpo: Number(host.dataset.dpo), points: Number(host.dataset.points) }));

test('DPO trains from its panel and the comparison puts PPO and DPO on one frontier', { timeout: 1_500_000 }, async () => {
  const server = await serve();
  const browser = await launch();
  const started = Date.now();
  const lap = (what) => console.log(`# ${what}: ${((Date.now() - started) / 1000).toFixed(1)} s`);
  try {
    const { page, errors } = await openPage(browser, `${server.url}${QUERY}`);
    const dpo = page.locator('#dpo');
    const comparison = page.locator('#comparison');

    // Blocked until SFT is done and labels exist.
    assert.ok(await dpo.getByRole('button', { name: 'Start DPO' }).isDisabled());
    assert.match(await dpo.locator('.waiting').textContent(), /SFT to finish .* and preference labels/);
    for (const name of ['β', 'Learning rate', 'Epochs', 'Batch']) assert.ok(await dpo.getByLabel(name, { exact: true }).isVisible(), `setting ${name}`);

    await page.locator('#sft').getByRole('button', { name: 'Start SFT' }).click();
    await page.locator('#sft').getByRole('button', { name: 'Done' }).waitFor({ timeout: 300_000 });
    lap('SFT done');
    assert.match(await dpo.locator('.waiting').textContent(), /preference labels/);

    assert.ok(await page.evaluate(() => !!window.__lab), 'the page exposes window.__lab for tests');
    const stage2 = await labelsAndRewardModel(page);
    lap(`labels ${stage2.labels}, reward model ${JSON.stringify(stage2.plan)}, held-out accuracy ${stage2.rmAccuracy.toFixed(3)}`);

    // DPO from its panel.
    const startDpo = dpo.getByRole('button', { name: 'Start DPO' });
    await page.waitForFunction(() => !document.querySelector('#dpo .controls button.primary').disabled);
    await startDpo.click();
    await dpo.getByRole('button', { name: 'Done' }).waitFor({ timeout: 300_000 });
    lap('DPO done');
    const plan = await dpo.locator('.plan').textContent();
    console.log(`# ${plan}`);
    const steps = Number(/: (\d+) steps/.exec(plan)[1]);
    assert.ok(steps >= 1);
    const hosts = dpo.locator('.chart-host');
    assert.equal(await hosts.count(), 4);
    for (let i = 0; i < 4; i++) assert.ok(Number(await hosts.nth(i).getAttribute('data-points')) >= steps, `DPO chart ${i} filled`);
    assert.match(await dpo.locator('.progress span').textContent(), new RegExp(`^${steps} / ${steps} steps`));
    assert.match(await dpo.locator('.rm-number').textContent(), /Reward model r_φ on the same held-out pairs: \d+\.\d% · DPO's implicit reward: \d+\.\d%/);
    console.log(`# ${await dpo.locator('.rm-number').textContent()}`);
    console.log(`# ${await dpo.locator('.surprise').textContent()}`);

    // The pair inspector: tokens with their implicit rewards, and prev/next.
    await dpo.locator('.dpo-inspector .token').first().waitFor();
    const position = dpo.locator('.dpo-inspector .controls span');
    assert.match(await position.textContent(), /held-out pair 1 of \d+/);
    await dpo.getByRole('button', { name: 'Next pair' }).click();
    await page.waitForFunction(() => /pair 2 of/.test(document.querySelector('#dpo .dpo-inspector .controls span').textContent));
    assert.match(await dpo.locator('.pair-summary').textContent(), /margin r\(y_w\) − r\(y_l\) = [+−]\d/);
    assert.ok(await dpo.locator('.dpo-inspector .token').count() >= 2);

    // The DPO policy is on the frontier with π_ref.
    await page.waitForFunction(() => Number(document.querySelector('#comparison .chart-host').dataset.dpo) >= 1, null, { timeout: 120_000 });
    let c = await counts(page);
    assert.equal(c.ref, 1);
    assert.equal(c.dpo, 1);
    await dpo.screenshot({ path: path.join(OUT, 'dpo.png') });
    const panelLossPoints = Number(await hosts.first().getAttribute('data-points'));
    lap('DPO evaluated');

    // The β sweep: PPO at 3 β, GRPO, RLOO, REINFORCE and GSPO at 1 (the reward model exists) and DPO at 3 β.
    await comparison.getByRole('button', { name: 'Run the β sweep' }).click();
    await page.waitForFunction(() => /The sweep is done|stopped/.test(document.querySelector('#comparison .sweep .progress span').textContent), null, { timeout: 900_000, polling: 1000 });
    lap('sweep done');
    assert.match(await comparison.locator('.sweep .progress span').textContent(), /The sweep is done: 10 policies/);
    c = await counts(page);
    console.log(`# frontier points ${JSON.stringify(c)}`);
    assert.equal(c.ppo, 3);
    assert.equal(c.grpo, 1);
    assert.equal(c.rloo, 1);
    assert.equal(c.reinforce, 1);
    assert.equal(c.gspo, 1);
    assert.equal(c.dpo, 4);
    const rows = await comparison.locator('table.frontier-points tbody tr').allTextContents();
    for (const r of rows) console.log(`# ${r}`);
    // The sweep is a stage of its own in the core: the DPO panel's charts, progress and model
    // did not move, and the learner's settings were never touched.
    assert.equal(Number(await hosts.first().getAttribute('data-points')), panelLossPoints, 'the DPO loss chart ignored the sweep');
    assert.match(await dpo.locator('.progress span').textContent(), new RegExp(`^${steps} / ${steps} steps`));
    const config = await page.evaluate(async () => JSON.parse(await window.__lab.client.call('config')));
    assert.equal(config.dpo.beta, 0.1);
    assert.equal(config.ppo.kl_coef, 0.05);

    // Stopping a sweep pauses it between steps and adds no point.
    await comparison.getByRole('button', { name: 'Run the β sweep' }).click();
    await page.waitForFunction(() => /Run 1 of 10/.test(document.querySelector('#comparison .sweep .progress span').textContent), null, { timeout: 60_000, polling: 50 });
    await comparison.getByRole('button', { name: 'Stop the sweep' }).click();
    await page.waitForFunction(() => /paused/.test(document.querySelector('#comparison .sweep .progress span').textContent), null, { timeout: 60_000 });
    assert.deepEqual(await counts(page), c);
    lap('sweep stopped');

    // The PPO panel's own run joins the frontier when it is done (its panel is emulated here
    // while it is being built: an untagged run announced through stage-state).
    const ppoPanel = await page.evaluate(async () => {
      const lab = window.__lab;
      await lab.client.call('ppoBegin');
      lab.events.emit('stage-state', { stage: 'ppo', state: 'running' });
      const reason = await new Promise((resolve) => {
        const off = lab.client.on((e) => { if (e.stage === 'ppo' && !e.tag && e.event === 'stopped') { off(); resolve(e.reason); } });
        lab.client.run('ppo');
      });
      lab.events.emit('stage-state', { stage: 'ppo', state: 'done', produced: 'π_θ, V_ψ' });
      return reason;
    });
    assert.equal(ppoPanel, 'done');
    await page.waitForFunction(() => Number(document.querySelector('#comparison .chart-host').dataset.ppo) === 4, null, { timeout: 60_000 });
    c = await counts(page);
    assert.match(await comparison.locator('table.compare-table thead').textContent(), /PPO\) · β = 0.05 · panel run/);
    lap('PPO panel run on the frontier');

    // The math page's table, measured; samples side by side.
    const table = await comparison.locator('table.compare-table').innerText();
    console.log(table.split('\n').map((l) => `# ${l}`).join('\n'));
    assert.match(table, /held-out accuracy \d+\.\d%/);
    assert.match(table, /4: policy, value \(critic\), reference, reward model/);
    assert.match(table, /measured KL\(π‖π_ref\) = -?\d/);
    await page.waitForFunction(() => document.querySelectorAll('#comparison table.side-by-side thead th').length === 4, null, { timeout: 60_000 });
    assert.equal(await comparison.locator('table.side-by-side tbody tr').count(), 10);
    await comparison.screenshot({ path: path.join(OUT, 'comparison.png') });

    for (const notice of await page.locator('#notices .notice').allTextContents()) console.log(`# notice: ${notice}`);

    // Points persist: after a reload the frontier shows them again.
    await page.reload();
    await page.waitForSelector('body[data-ready="true"]', { timeout: 120_000 });
    const again = await counts(page);
    assert.deepEqual({ ref: again.ref, ppo: again.ppo, dpo: again.dpo }, { ref: c.ref, ppo: c.ppo, dpo: c.dpo });
    const longest = await page.evaluate(() => Math.max(0, ...window.__longTasks));
    console.log(`# longest main-thread task after reload: ${longest} ms`);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    await server.close();
  }
});
