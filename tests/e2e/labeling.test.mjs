// Stage 2's panels end to end: SFT through its UI, pairs labeled with the keyboard (← → ↓, a
// skip, an undo), the labels still there after a reload, a refused import that changes nothing, a
// valid import, the simulated labeler, and the reward model trained from its panel until its
// accuracy chart, scatter and pair inspector are filled. Screenshots: test-results/labeling.png
// and test-results/reward.png.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { readFile } from 'node:fs/promises';
import { serve, launch, openPage, OUT } from './harness.mjs';

const QUERY = '?backend=cpu&sft.steps=20&reward.simulated_labels=192&reward.epochs=1';

/** The count the labeling panel shows ("12 labels · 7 human · 5 simulated · …"). */
async function shownCount(page) {
  const text = await page.locator('#labeling .label-count').textContent();
  return Number(/^(\d+) labels?/.exec(text)?.[1] ?? NaN);
}

async function waitForCount(page, n, timeout = 30_000) {
  await page.waitForFunction((want) => new RegExp(`^${want} labels? `).test(document.querySelector('#labeling .label-count')?.textContent ?? ''), n, { timeout });
  const stored = await page.evaluate(() => window.__lab.storage.countLabels());
  assert.equal(stored, n, 'the stored count matches the shown one');
}

async function runSft(page) {
  const sft = page.locator('#sft');
  await sft.getByRole('button', { name: /^(Start SFT|Resume)$/ }).click();
  await sft.getByRole('button', { name: 'Done' }).waitFor({ timeout: 300_000 });
}

const stageState = (page, stage) => page.locator(`#pipeline [data-stage="${stage}"]`).getAttribute('data-state');

test('labels are made, kept, imported and simulated, and the reward model trains on them', { timeout: 1_200_000 }, async () => {
  const server = await serve();
  const browser = await launch();
  const started = Date.now();
  const lap = (what) => console.log(`# ${what}: ${((Date.now() - started) / 1000).toFixed(1)} s`);
  try {
    const { page, errors } = await openPage(browser, `${server.url}${QUERY}`);
    let labeling = page.locator('#labeling');
    const reward = page.locator('#reward');

    // Blocked until SFT is done.
    assert.equal(await stageState(page, 'labels'), 'blocked');
    assert.ok(await labeling.getByRole('button', { name: 'Left is better' }).isDisabled());
    assert.ok(await reward.getByRole('button', { name: 'Train reward model' }).isDisabled());
    assert.match(await labeling.locator('.waiting').textContent(), /Waiting for SFT/);
    for (const name of ['Simulated labels', 'Labeler noise τ', 'Pair sampling temperature']) assert.ok(await labeling.getByLabel(name, { exact: true }).isVisible(), `labeling setting ${name}`);
    for (const name of ['Learning rate', 'Batch', 'Epochs', 'Held-out share']) assert.ok(await reward.getByLabel(name, { exact: true }).isVisible(), `reward setting ${name}`);

    await runSft(page);
    lap('SFT done');
    const leftButton = labeling.getByRole('button', { name: 'Left is better' });
    await page.waitForFunction(() => !document.querySelector('#labeling button[aria-label="Left is better"]').disabled, null, { timeout: 60_000 });
    assert.notEqual(await stageState(page, 'labels'), 'blocked');
    assert.ok(await leftButton.isEnabled());

    // Judge with the keyboard: the keys work once focus is inside the panel.
    await labeling.locator('.pair-prompt').click();
    const shown = () => labeling.locator('.pair-card').evaluate((card) => ({ prompt: card.querySelector('.pair-prompt').textContent, first: card.querySelectorAll('.completion')[0].textContent, second: card.querySelectorAll('.completion')[1].textContent }));
    await page.keyboard.press('ArrowLeft');
    await waitForCount(page, 1);
    await page.keyboard.press('ArrowRight');
    await waitForCount(page, 2);
    const tiePair = await shown();
    await page.keyboard.press('ArrowDown');
    await waitForCount(page, 3);
    const skipped = await shown();
    await page.keyboard.press('Space');
    await labeling.locator('.said').filter({ hasText: 'Skipped' }).waitFor();
    assert.notDeepEqual(await shown(), skipped, 'space shows the next pair');
    assert.equal(await shownCount(page), 3, 'a skip stores nothing');
    await page.keyboard.press('u');
    await waitForCount(page, 2);
    assert.deepEqual(await shown(), tiePair, 'undo shows the undone pair again');
    for (const [key, n] of [['ArrowDown', 3], ['ArrowLeft', 4], ['ArrowRight', 5], ['ArrowDown', 6], ['ArrowLeft', 7]]) {
      await page.keyboard.press(key);
      await waitForCount(page, n);
    }
    const human = await page.evaluate(() => window.__lab.storage.labels());
    assert.deepEqual(human.map((l) => l.preference), ['first', 'second', 'tie', 'first', 'second', 'tie', 'first']);
    assert.ok(human.every((l) => l.source === 'human' && l.vocab && l.time > 0));
    assert.equal(human[2].prompt, tiePair.prompt.trim());
    assert.match(await labeling.locator('.label-count').textContent(), /^7 labels · 7 human · 0 simulated/);
    lap('7 labels from the keyboard');

    // A reload loses none: the count shows at once, the panel is not blocked.
    await page.reload();
    await page.waitForSelector('body[data-ready="true"]', { timeout: 120_000 });
    labeling = page.locator('#labeling');
    assert.equal(await shownCount(page), 7);
    assert.equal(await stageState(page, 'labels'), 'ready');
    lap('reloaded');

    // A malformed file is refused whole; an oversized one is refused before it is read.
    const exported = (await page.evaluate(() => window.__lab.storage.labelsJsonl())).trim().split('\n');
    const bad = `${exported[0]}\n${exported[1].replace('"preference":"second"', '"preference":"both"')}\n${exported[2]}\n`;
    await page.setInputFiles('#labels-import', { name: 'bad.jsonl', mimeType: 'application/jsonl', buffer: Buffer.from(bad) });
    await labeling.locator('.import-error').filter({ hasText: 'line 2' }).waitFor();
    assert.equal(await labeling.getByRole('alert').filter({ hasText: 'bad.jsonl was not imported' }).count(), 1);
    assert.equal(await shownCount(page), 7);
    assert.equal(await page.evaluate(() => window.__lab.storage.countLabels()), 7, 'nothing stored');
    const otherVocab = `${exported[0]}\n${exported[0].replace(/"vocab":"[^"]*"/, '"vocab":"some-other-vocab"')}\n`;
    await page.setInputFiles('#labels-import', { name: 'other.jsonl', mimeType: 'application/jsonl', buffer: Buffer.from(otherVocab) });
    await labeling.locator('.import-error').filter({ hasText: 'other.jsonl' }).waitFor();
    assert.match(await labeling.locator('.import-error').textContent(), /^other\.jsonl was not imported: line 2: made for vocabulary some-other-vocab/);
    await page.setInputFiles('#labels-import', { name: 'huge.jsonl', mimeType: 'application/jsonl', buffer: Buffer.alloc(16 * 2 ** 20 + 1, 0x20) });
    await labeling.locator('.import-error').filter({ hasText: '16 MB' }).waitFor();
    assert.equal(await page.evaluate(() => window.__lab.storage.countLabels()), 7, 'nothing stored');

    // The downloaded file imports whole.
    const [download] = await Promise.all([page.waitForEvent('download'), labeling.getByRole('button', { name: 'Download labels' }).click()]);
    assert.match(download.suggestedFilename(), /\.jsonl$/);
    const file = await readFile(await download.path());
    assert.equal(file.toString().trim().split('\n').length, 7);
    await page.setInputFiles('#labels-import', { name: 'labels.jsonl', mimeType: 'application/jsonl', buffer: file });
    await waitForCount(page, 14);
    assert.match(await labeling.locator('.import-status').textContent(), /Imported 7 labels from labels\.jsonl/);
    assert.equal(await labeling.locator('.import-error').textContent(), '');
    lap('imports');

    // After the reload π_ref must be made again before new pairs can be sampled.
    await runSft(page);
    lap('SFT again');
    await labeling.getByRole('button', { name: 'Simulate labels' }).click();
    await waitForCount(page, 14 + 192, 300_000);
    await page.waitForFunction(() => document.querySelector('#pipeline [data-stage="labels"]').dataset.state === 'done');
    const agreement = await labeling.locator('.agreement').textContent();
    assert.match(agreement, /in \d+ of \d+ pairs \([\d.]+%\)/);
    console.log(`# ${agreement}`);
    assert.match(await labeling.locator('.label-count').textContent(), /^206 labels · 14 human · 192 simulated/);
    lap('192 simulated labels');
    await page.waitForFunction(() => !document.querySelector('#labeling button[aria-label="Left is better"]').disabled);
    await labeling.screenshot({ path: path.join(OUT, 'labeling.png') });

    // The reward model, from its panel.
    await reward.getByRole('button', { name: 'Train reward model' }).click();
    await reward.getByRole('button', { name: 'Done' }).waitFor({ timeout: 300_000 });
    lap('reward model done');
    const plan = await reward.locator('.plan').textContent();
    console.log(`# ${plan}`);
    assert.match(plan, /Plan: \d+ training pairs and \d+ held-out pairs/);
    assert.match(await reward.locator('.ceiling-note').textContent(), /Agreement ceiling on the held-out labels: [\d.]+%|No ceiling: human labels/);
    const points = async (name) => Number(await reward.locator(`.${name} .chart-host`).getAttribute('data-points'));
    assert.ok(await points('rm-accuracy') > 0, 'the accuracy chart has points');
    assert.ok(await points('rm-loss') > 0, 'the loss chart has points');
    assert.ok(await points('rm-scatter') > 0, 'the scatter has points');
    const position = reward.locator('.rm-inspector .controls span');
    assert.match(await position.textContent(), /^Held-out pair 1 of \d+$/);
    await reward.getByRole('button', { name: 'Next pair' }).click();
    assert.match(await position.textContent(), /^Held-out pair 2 of \d+$/);
    assert.match(await reward.locator('.rm-verdict').textContent(), /σ\(r₁ − r₂\)/);
    const stored = await page.evaluate(async () => ({
      checkpoints: (await window.__lab.storage.listCheckpoints()).map((c) => c.role),
      metrics: await window.__lab.storage.metricsOf('reward'),
    }));
    assert.ok(stored.checkpoints.includes('reward'), 'r_φ is saved');
    const last = stored.metrics.filter((m) => Number.isFinite(m['rm/held_out_accuracy'])).at(-1);
    console.log(`# reward steps ${stored.metrics.length}, held-out accuracy ${last['rm/held_out_accuracy'].toFixed(3)}, gold correlation ${last['rm/gold_correlation'].toFixed(3)}, train accuracy ${stored.metrics.at(-1)['rm/accuracy'].toFixed(3)}`);
    assert.equal(await stageState(page, 'reward'), 'done');
    await reward.screenshot({ path: path.join(OUT, 'reward-with-human-labels.png') });

    // Simulated labels only: the held-out pairs have an agreement ceiling, drawn on the accuracy chart.
    page.once('dialog', (dialog) => dialog.accept());
    await labeling.getByRole('button', { name: 'Delete all labels…' }).click();
    await waitForCount(page, 0);
    await labeling.getByRole('button', { name: 'Simulate labels' }).click();
    await waitForCount(page, 192, 300_000);
    await reward.getByRole('button', { name: 'Reset' }).click();
    await reward.getByRole('button', { name: 'Train reward model' }).click();
    await reward.getByRole('button', { name: 'Done' }).waitFor({ timeout: 300_000 });
    const ceiling = await reward.locator('.ceiling-note').textContent();
    console.log(`# ${ceiling}`);
    assert.match(ceiling, /^Agreement ceiling on the held-out labels: [\d.]+% \(simulated labeler, τ = 0\.5\)/);
    assert.ok(await points('rm-scatter') > 0, 'the scatter has points');
    lap('reward model on simulated labels done');
    await reward.screenshot({ path: path.join(OUT, 'reward.png') });
    await page.screenshot({ path: path.join(OUT, 'labeling-page.png'), fullPage: true });
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    await server.close();
  }
});
