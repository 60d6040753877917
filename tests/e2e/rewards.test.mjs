// Rewards the learner chooses, end to end on the CPU backend: the expression box refuses hostile
// text by column and changes nothing; after SFT it previews a reward on π_ref's samples; GRPO
// trains against the gold utility (RLVR) with no reward model at all; "Show reward hacking" runs
// PPO at β = 0 against the learner's reward and draws the reward trained against and gold against
// √KL — the reward keeps rising while gold peaks and falls. Screenshot: test-results/rewards.png.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { serve, launch, openPage, OUT } from './harness.mjs';

test('a reward the learner writes, a verifiable reward, and reward hacking in one click', { timeout: 900_000 }, async () => {
  const server = await serve();
  const browser = await launch();
  const started = Date.now();
  const lap = (what) => console.log(`# ${what}: ${((Date.now() - started) / 1000).toFixed(1)} s`);
  try {
    const { page, errors } = await openPage(browser, `${server.url}?backend=cpu&grpo.iterations=3`);
    // Every formula the trainers compute is checked in the equations panel against its function.
    await page.evaluate(() => window.__lab.equations.ready);
    const checks = await page.$$eval('#equations .check', (lines) => lines.map((l) => [l.dataset.equation, l.dataset.agrees, l.textContent]));
    assert.ok(checks.length >= 13, `${checks.length} formulas checked`);
    for (const [equation, agrees, text] of checks) assert.equal(agrees, 'true', `${equation}: ${text}`);
    assert.match(await page.locator('#eq-value-loss').textContent(), /What the lab computes/);
    const panel = page.locator('#your-reward');
    const box = panel.locator('#reward-expression');
    const error = panel.locator('#reward-expression-error');
    const defaultExpression = await page.evaluate(() => window.__lab.config.reward.expression);

    // Hostile text is refused with its column; the settings keep the last good expression.
    for (const [text, reason] of [
      ['2*count("zzz")', /column 10.*zzz/],
      ['<script>alert(1)</script>', /column 1/],
      ['sentiment + 1e309', /column 13/],
      ['sentiment +', /column/],
      ['x'.repeat(500), /400/],
    ]) {
      await box.fill(text);
      await panel.getByRole('button', { name: 'Check and preview' }).click();
      await page.waitForFunction(() => document.querySelector('#reward-expression-error').textContent.length > 0);
      const message = await error.textContent();
      assert.match(message, /^reward\.expression: /, message);
      assert.match(message, reason, `${text.slice(0, 30)} → ${message}`);
      assert.equal(await page.evaluate(() => window.__lab.config.reward.expression), defaultExpression, 'a refused expression changes nothing');
    }

    // GRPO against gold needs π_ref only; against r_φ it would wait for stage 2.
    const grpo = page.locator('#grpo');
    await grpo.getByText('GRPO settings').click();
    await grpo.getByLabel('Reward', { exact: true }).selectOption('gold');
    await page.waitForFunction(() => window.__lab.config.grpo.reward === 'gold');
    assert.match(await grpo.locator('.waiting').textContent(), /π_ref/);

    await page.locator('#sft').getByRole('button', { name: 'Start SFT' }).click();
    await page.locator('#sft').getByRole('button', { name: 'Done' }).waitFor({ timeout: 600_000 });
    lap('SFT done');

    // A good expression is applied and previewed on π_ref's samples.
    await box.fill('2*count("great") + sentiment - 0.1*length_over(12)');
    await panel.getByRole('button', { name: 'Check and preview' }).click();
    await page.waitForFunction(() => document.querySelectorAll('#your-reward .reward-preview tbody tr').length > 0);
    assert.equal(await error.textContent(), '');
    const preview = await panel.locator('.reward-preview tbody tr').count();
    assert.ok(preview >= 5, `${preview} preview rows`);

    // RLVR: GRPO against the gold utility with no reward model; its reward is gold itself.
    const rewards = await page.evaluate(() => new Promise((resolve) => {
      const lab = window.__lab;
      const seen = [];
      const off = lab.client.on((e) => {
        if (e.stage === 'grpo' && e.event === 'step' && e.metrics.phase === 0) seen.push([e.metrics.reward, e.metrics.gold]);
        if (e.stage === 'grpo' && e.event === 'stopped') { off(); resolve(seen); }
      });
      document.querySelector('#grpo .controls button.primary').click();
    }));
    assert.equal(rewards.length, 3);
    for (const [reward, gold] of rewards) assert.ok(Math.abs(reward - gold) < 1e-9, `reward ${reward} is gold ${gold}`);
    assert.notEqual(await page.evaluate(() => window.__lab.stages.get('reward').state()), 'done', 'no reward model was trained');
    lap('GRPO against gold');

    // Show reward hacking: PPO at β = 0 against the learner's reward, measured every 5 iterations.
    await panel.getByRole('button', { name: 'Show reward hacking' }).click();
    await page.locator('#ppo').getByRole('button', { name: 'Done', exact: true }).waitFor({ timeout: 600_000 });
    await page.evaluate(() => window.__lab.yourReward.settled());
    const points = await page.evaluate(() => window.__lab.yourReward.points());
    lap(`reward hacking: ${points.length} points`);
    const config = await page.evaluate(() => window.__lab.config.ppo);
    assert.equal(config.reward, 'custom');
    assert.equal(config.kl_coef, 0);
    assert.equal(points.length, 1 + config.iterations / 5);
    const peak = points.reduce((b, p) => (p.gold > b.gold ? p : b), points[0]);
    const [first, last] = [points[0], points.at(-1)];
    console.log(`# proxy ${first.proxy.toFixed(2)} → ${last.proxy.toFixed(2)}; gold ${first.gold.toFixed(2)}, peak ${peak.gold.toFixed(2)} at iteration ${peak.iteration} (√KL ${peak.sqrt_kl.toFixed(2)}), final ${last.gold.toFixed(2)} (√KL ${last.sqrt_kl.toFixed(2)})`);
    assert.equal(first.iteration, 0);
    assert.ok(first.sqrt_kl < 0.05, `the first point is π_ref: √KL ${first.sqrt_kl}`);
    assert.ok(last.proxy > first.proxy + 5, 'the reward trained against climbs');
    assert.ok(peak.gold > first.gold && peak.iteration > 0 && peak.iteration < last.iteration, 'gold rises first, then peaks before the end');
    assert.ok(peak.gold - last.gold > 1, `gold falls after its peak (${peak.gold} → ${last.gold})`);
    assert.match(await panel.locator('[aria-live]').first().textContent(), /Gold peaked at/);
    await panel.scrollIntoViewIfNeeded();
    await page.screenshot({ path: path.join(OUT, 'rewards.png'), fullPage: false });
    await panel.screenshot({ path: path.join(OUT, 'rewards-panel.png') });
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    server.close();
  }
});
