// The PPO panel, end to end: SFT through its UI, labels and a reward model through `window.__lab`
// (the labeling and reward panels are built elsewhere), then one PPO iteration from the panel's
// controls, and checks of what it shows: the rollout inspector (one column per token, numbers in
// every row), the GAE stepper (the page's Â at the run's γ, λ equals the core's advantages_raw),
// the clipping view (the rollout's tokens on the curves), the curves, then the run to its end
// (checkpoint, stage done) and "Restart PPO with β = 0". Screenshot: test-results/ppo.png.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { serve, launch, openPage, labelsAndRewardModel, OUT } from './harness.mjs';

const QUERY = '?backend=cpu&sft.steps=20&reward.simulated_labels=128&reward.epochs=1&ppo.iterations=2&ppo.batch_size=8&ppo.mini_batches=2&ppo.epochs=2';

const number = (text) => Number(text.trim().replace('−', '-'));
const points = async (locator) => Number(await locator.getAttribute('data-points'));

test('PPO runs from its panel; inspector, GAE stepper, clipping view and curves show the rollout', { timeout: 900_000 }, async () => {
  const server = await serve();
  const browser = await launch();
  const started = Date.now();
  const lap = (what) => console.log(`# ${what}: ${((Date.now() - started) / 1000).toFixed(1)} s`);
  try {
    const { page, errors } = await openPage(browser, `${server.url}${QUERY}`);
    const ppo = page.locator('#ppo');
    const button = (name) => ppo.getByRole('button', { name, exact: true });

    // Blocked until the reward model is done; β is up front.
    assert.ok(await button('Start PPO').isDisabled());
    assert.match(await ppo.locator('.waiting').textContent(), /reward model/);
    const beta = ppo.getByLabel('KL coefficient β', { exact: true });
    assert.ok(await beta.isVisible(), 'the β control is visible without opening the settings');
    assert.equal(await beta.inputValue(), '0.05');
    assert.match(await ppo.locator('.beta-box').textContent(), /Near 0, watch the RM score climb while the gold utility stalls or falls and KL runs away/);

    await page.locator('#sft').getByRole('button', { name: 'Start SFT' }).click();
    await page.locator('#sft').getByRole('button', { name: 'Done' }).waitFor({ timeout: 300_000 });
    lap('SFT done');
    assert.ok(await page.evaluate(() => !!window.__lab), 'the page exposes window.__lab for tests');
    const stage2 = await labelsAndRewardModel(page);
    lap(`labels ${stage2.labels}, reward model ${JSON.stringify(stage2.plan)}`);

    // One iteration through the panel's controls: 1 rollout + 2 epochs × 2 minibatches.
    await page.waitForFunction(() => !document.querySelector('#ppo .controls button.primary').disabled);
    // From here on, every script that runs inside a long animation frame, with its duration.
    await page.evaluate(() => {
      window.__longTasks.length = 0;
      window.__scripts = [];
      new PerformanceObserver((list) => {
        for (const frame of list.getEntries()) for (const s of frame.scripts) window.__scripts.push({ ms: Math.round(s.duration), invoker: s.invoker, fn: s.sourceFunctionName });
      }).observe({ type: 'long-animation-frame' });
    });
    await button('One iteration').click();
    await page.waitForFunction(() => /^1 \/ 2 iterations/.test(document.querySelector('#ppo .progress span').textContent)
      && document.querySelector('#ppo .controls button.primary').textContent === 'Resume'
      && !document.querySelector('#ppo .controls button.primary').disabled, null, { timeout: 300_000, polling: 200 });
    lap('one PPO iteration');
    console.log(`# ${await ppo.locator('.phase').textContent()}`);
    assert.match(await ppo.locator('.phase').textContent(), /Iteration 1 of 2 done after 4 minibatch updates/);
    const stored = await page.evaluate(() => window.__lab.storage.metricsOf('ppo'));
    assert.equal(stored.length, 5, 'one rollout and four updates persisted');

    // The rollout inspector: one column per token, a number in every cell of every row. It fills
    // when it is on screen (off screen it only marks itself stale), so look at it as a person would.
    await ppo.locator('.rollout-inspector').scrollIntoViewIfNeeded();
    await ppo.locator('.rollout-inspector table tbody tr').first().waitFor();
    const index = Number(await ppo.getByLabel('Completion', { exact: true }).inputValue());
    const record = await page.evaluate((i) => window.__lab.client.call('ppoRecord', i), index);
    const T = record.tokens.length;
    console.log(`# record ${index}: ${T} tokens [${record.tokens.join(' ')}], score ${record.score.toFixed(3)}, gold ${record.gold.toFixed(3)}, γ ${record.gamma}, λ ${record.lam}, ε ${record.cliprange}, ${record.points.length} points`);
    const table = ppo.locator('.rollout-inspector table');
    assert.equal(await table.locator('thead th.tok').count(), T);
    assert.deepEqual(await table.locator('thead th.tok .word').allTextContents(), record.tokens);
    const rows = await table.locator('tbody tr').evaluateAll((trs) => trs.map((tr) => ({ row: tr.dataset.row, cells: [...tr.querySelectorAll('td')].map((td) => td.textContent) })));
    assert.equal(rows.length, 12);
    for (const { row, cells } of rows) {
      assert.equal(cells.length, T, `row ${row}`);
      for (const c of cells) assert.ok(Number.isFinite(number(c)), `row ${row}: "${c}" is a number`);
    }
    const shown = Object.fromEntries(rows.map(({ row, cells }) => [row, cells.map(number)]));
    for (let t = 0; t < T; t++) {
      assert.ok(Math.abs(shown.advantages_raw[t] - record.advantages_raw[t]) <= 0.0005 + 1e-9, `Â raw at ${t}`);
      assert.ok(Math.abs(shown.ratio[t] - record.ratio[t]) <= 0.0005 + 1e-9, `ρ at ${t}`);
    }
    assert.equal(await ppo.locator('.rollout-inspector tbody th[scope=row] a.eq-link').count(), 12, 'every row label links to its equation');

    // The GAE stepper: at the run's γ, λ the page's Â equals the core's advantages_raw.
    const stepper = ppo.locator('.gae-stepper');
    const jsAdvantages = async () => stepper.evaluate((n) => ({ gamma: Number(n.dataset.gamma), lam: Number(n.dataset.lam), adv: JSON.parse(n.dataset.advantages) }));
    let js = await jsAdvantages();
    assert.equal(js.gamma, record.gamma);
    assert.equal(js.lam, record.lam);
    const worst = (a, b) => Math.max(...a.map((v, i) => Math.abs(v - b[i])));
    assert.equal(js.adv.length, T);
    const diff = worst(js.adv, record.advantages_raw);
    console.log(`# GAE stepper at γ=${js.gamma}, λ=${js.lam}: max |Â_js − Â_core| = ${diff}`);
    assert.ok(diff <= 1e-5, `JS Â differs from advantages_raw by ${diff}`);
    // λ = 0: Â is the one-step TD error δ.
    await ppo.getByRole('button', { name: 'λ = 0 (one-step TD)' }).click();
    js = await jsAdvantages();
    assert.equal(js.lam, 0);
    assert.ok(worst(js.adv, record.deltas) <= 1e-5, 'at λ = 0, Â = δ');
    await ppo.getByRole('button', { name: 'λ = 1 (Monte Carlo)' }).click();
    js = await jsAdvantages();
    const mc = record.rewards.map((_, t) => record.rewards.slice(t).reduce((s, r, l) => s + r * record.gamma ** l, 0) - record.values[t]);
    assert.ok(worst(js.adv, mc) <= 1e-4, 'at λ = 1, Â = Monte-Carlo return − V');
    const lamSlider = ppo.getByRole('slider', { name: 'λ in the stepper' });
    await lamSlider.evaluate((input) => { input.value = '0.5'; input.dispatchEvent(new Event('input', { bubbles: true })); });
    assert.equal((await jsAdvantages()).lam, 0.5);
    await ppo.getByRole('button', { name: 'Use the run\'s γ, λ' }).click();
    assert.ok(worst((await jsAdvantages()).adv, record.advantages_raw) <= 1e-5);
    // Step through the recursion: Reset, then δ_{T−1}, then Â_{T−1}.
    await ppo.getByRole('button', { name: 'Reset the GAE recursion' }).click();
    assert.match(await stepper.locator('.gae-now').textContent(), /^Ready/);
    await ppo.getByRole('button', { name: 'Step the GAE recursion' }).click();
    assert.match(await stepper.locator('.gae-now').textContent(), new RegExp(`^t = ${T - 1}: δ_${T - 1} =`));
    await ppo.getByRole('button', { name: 'Step the GAE recursion' }).click();
    assert.match(await stepper.locator('.gae-now').textContent(), new RegExp(`^t = ${T - 1}: Â_${T - 1} = δ_${T - 1} \\+ γλ·Â_${T} =`));
    await ppo.getByRole('button', { name: 'Play the GAE recursion' }).click();
    await page.waitForFunction(() => /done: Â for all/.test(document.querySelector('#ppo .gae-now').textContent), null, { timeout: 30_000 });

    // The clipping view: every real token of the batch on the curves.
    const clipHost = ppo.locator('.clipping-view .chart-host');
    const tokens = Number(await clipHost.getAttribute('data-tokens'));
    assert.equal(tokens, record.points.length);
    assert.ok(tokens >= 8, `${tokens} tokens in the clipping view`);
    assert.equal(await points(clipHost), 2 * 201 + tokens, 'two curves of 201 points and the tokens');
    console.log(`# clipping view: ${await ppo.locator('.clip-counts').textContent()}`);

    // Curves: one point per iteration (two on the score chart).
    const curve = (id) => ppo.locator(`.ppo-curves [data-curve=${id}] .chart-host`);
    await page.waitForTimeout(400); // charts redraw at most every 250 ms
    assert.equal(await points(curve('score')), 2);
    for (const id of ['kl', 'clipfrac', 'approxkl', 'value', 'entropy', 'length']) assert.equal(await points(curve(id)), 1, `curve ${id}`);
    assert.equal(await ppo.locator('table.ppo-samples tbody tr').count(), 10);
    // The panel's own work (an iteration, the inspector, stepping and playing GAE), before any
    // screenshot. A long task also counts style, layout and paint, which grow with the machine's
    // load (this machine's 2 cores are shared): the check is on the scripts, the longest of which
    // must stay under 50 ms (100 ms allowed for a loaded machine).
    const panelTasks = await page.evaluate(() => window.__longTasks.map(Math.round));
    const scripts = await page.evaluate(() => window.__scripts.sort((a, b) => b.ms - a.ms).slice(0, 3));
    console.log(`# main-thread tasks over 50 ms during the PPO iteration and the checks: [${panelTasks.join(', ')}]; longest scripts: ${JSON.stringify(scripts)}`);
    assert.ok(scripts.every((x) => x.ms < 100), `scripts over 100 ms: ${JSON.stringify(scripts)}`);
    await ppo.screenshot({ path: path.join(OUT, 'ppo.png') });
    // Close-ups at full resolution: the curves, the inspector, the stepper beside the clipping view.
    await ppo.locator('.ppo-curves').screenshot({ path: path.join(OUT, 'ppo-curves.png') });
    await ppo.locator('.rollout-inspector').screenshot({ path: path.join(OUT, 'ppo-inspector.png') });
    await ppo.locator('.ppo-pair').screenshot({ path: path.join(OUT, 'ppo-gae-clipping.png') });

    // Step one phase: the second rollout.
    await button('Step one phase').click();
    await page.waitForFunction(() => /^Iteration 2 of 2: rollout sampled/.test(document.querySelector('#ppo .phase').textContent)
      && document.querySelector('#ppo .controls button.primary').textContent === 'Resume', null, { timeout: 120_000 });
    // To the end: the checkpoint is stored and the stage is done.
    await button('Resume').click();
    await button('Done').waitFor({ timeout: 300_000 });
    lap('PPO done');
    const checkpoints = await page.evaluate(() => window.__lab.storage.listCheckpoints());
    assert.ok(checkpoints.some((c) => c.role === 'policy' && c.size > 0), 'π_θ saved');
    assert.equal(await page.evaluate(() => window.__lab.stages.get('ppo').state()), 'done');
    for (const id of ['score', 'clipfrac']) assert.equal(await points(curve(id)), id === 'score' ? 4 : 2);
    await ppo.screenshot({ path: path.join(OUT, 'ppo-done.png') });

    // Restart with β = 0: through the validated config path, into the URL, and a new run.
    await button('Restart PPO with β = 0').click();
    await page.waitForFunction(() => window.__lab.config.ppo.kl_coef === 0 && /ppo\.kl_coef=0/.test(location.search));
    assert.equal(await beta.inputValue(), '0');
    assert.equal(JSON.parse(await page.evaluate(() => window.__lab.client.call('config'))).ppo.kl_coef, 0);
    await button('Done').waitFor({ timeout: 300_000 });
    lap('PPO with β = 0 done');
    assert.match(await ppo.locator('.beta-now').textContent(), /β = 0 /);
    for (const notice of await page.locator('#notices .notice').allTextContents()) console.log(`# notice: ${notice}`);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    await server.close();
  }
});
