// REINFORCE and GSPO run in the page as choices of the GRPO panel (the baseline, the ratio level),
// land on the frontier under their own names, and fill their columns of the comparison table.
// Small settings on the CPU backend: 20 SFT steps, 96 simulated labels, 3 iterations each.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { serve, launch, openPage, labelsAndRewardModel } from './harness.mjs';

test('REINFORCE and GSPO run from the GRPO panel and reach the frontier and the table', { timeout: 600_000 }, async () => {
  const server = await serve();
  const browser = await launch();
  try {
    const QUERY = '?backend=cpu&sft.steps=20&reward.simulated_labels=96&reward.epochs=1&grpo.iterations=3'
      + '&grpo.estimator=reinforce&grpo.group_size=1&grpo.prompts=16&grpo.epochs=1&grpo.mini_batches=1&grpo.scale_rewards=false';
    const { page, errors } = await openPage(browser, `${server.url}${QUERY}`);
    await page.locator('#sft').getByRole('button', { name: 'Start SFT' }).click();
    await page.locator('#sft').getByRole('button', { name: 'Done' }).waitFor({ timeout: 300_000 });
    await labelsAndRewardModel(page);
    const grpo = page.locator('#grpo');
    const runPanel = async () => {
      await page.waitForFunction(() => !document.querySelector('#grpo .controls button.primary').disabled);
      await grpo.getByRole('button', { name: 'Start GRPO', exact: true }).click();
      await grpo.getByRole('button', { name: 'Done', exact: true }).waitFor({ timeout: 300_000 });
    };

    // REINFORCE: one completion per prompt, the batch's mean as baseline, one step per rollout.
    await runPanel();
    assert.equal(await page.evaluate(() => window.__lab.stages.get('grpo').method()), 'REINFORCE');
    await page.waitForFunction(() => Number(document.querySelector('#comparison [data-ref]').dataset.reinforce) > 0, null, { timeout: 120_000 });

    // GSPO: GRPO's baseline with one ratio per completion, from the panel's settings.
    await grpo.getByRole('button', { name: 'Reset', exact: true }).click();
    await grpo.getByText('GRPO settings').click();
    const set = async (label, value, select = false) => {
      const input = grpo.getByLabel(label, { exact: true });
      if (select) await input.selectOption(value); else { await input.fill(value); await input.press('Tab'); }
    };
    await set('Baseline', 'grpo', true);
    await set('Group size G', '4');
    await set('Prompts per rollout', '4');
    await set('Ratio level', 'sequence', true);
    await set('ε_low', '0.0003');
    await set('ε_high', '0.0004');
    await page.waitForFunction(() => window.__lab.config.grpo.epsilon_high === 0.0004 && window.__lab.config.grpo.importance_sampling_level === 'sequence');
    await runPanel();
    assert.equal(await page.evaluate(() => window.__lab.stages.get('grpo').method()), 'GSPO');
    await page.waitForFunction(() => Number(document.querySelector('#comparison [data-ref]').dataset.gspo) > 0, null, { timeout: 120_000 });

    const table = page.locator('#comparison table.online-rl-table');
    const header = (await table.locator('thead th').allTextContents()).join(' | ');
    assert.match(header, /REINFORCE · β = 0\.04 · panel run/);
    assert.match(header, /GSPO · β = 0\.04 · panel run/);
    const ratio = await table.getByRole('row', { name: /^Ratio/ }).locator('td').allTextContents();
    assert.match(ratio.at(-1), /geometric mean/);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    server.close();
  }
});
