// The lab as a new user meets it (issue 6): a shared link opens it configured (a bad value in the
// link is reported and replaced by its default), "Run everything" runs every stage with the
// defaults to the end on the CPU backend, with a pause and a resume on the way; no main-thread
// task passes 50 ms while training; a checkpoint is saved (downloaded), the page reloaded, and
// the checkpoint loaded back. Screenshots of each stage: test-results/lab-*.png.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { readFile } from 'node:fs/promises';
import { serve, launch, openPage, OUT } from './harness.mjs';

// A teacher's link: CPU backend, seed 2, DPO's β at 0.2, and one value that is not a number.
const SHARED = '?backend=cpu&seed=2&dpo.beta=0.2&sft.learning_rate=banana';
const STAGES = ['sft', 'labels', 'reward', 'ppo', 'dpo'];

const cardState = (page, stage) => page.locator(`.stage-card[data-stage="${stage}"]`).getAttribute('data-state');

test('a shared link, run everything to the end with a pause, save, reload, load', { timeout: 2_400_000 }, async () => {
  const server = await serve();
  const browser = await launch();
  const started = Date.now();
  const lap = (what) => console.log(`# ${what}: ${((Date.now() - started) / 1000).toFixed(1)} s`);
  try {
    const { page, errors } = await openPage(browser, `${server.url}${SHARED}`);
    const pipeline = page.locator('#pipeline');

    // The link: the bad value is reported and replaced, the good ones applied.
    await page.getByRole('status').filter({ hasText: 'CPU backend' }).waitFor();
    const refused = page.getByRole('status', { name: 'Link parts not taken' });
    assert.match(await refused.first().textContent(), /sft\.learning_rate/);
    const defaultLr = await page.evaluate(() => String(window.__lab.defaults.sft.learning_rate));
    assert.equal(await page.locator('#setting-sft-learning_rate').inputValue(), defaultLr);
    assert.equal(await page.locator('#setting-dpo-beta').inputValue(), '0.2');
    assert.equal(await page.evaluate(() => window.__lab.config.seed), 2);
    assert.doesNotMatch(page.url(), /banana/, 'the refused value is gone from the link');

    // Run everything; measure main-thread long tasks from here on.
    // Long tasks with their start, so that the ones a screenshot causes (Playwright renders the
    // whole page for it) can be told apart from the page's own.
    await page.evaluate(() => {
      window.__timedTasks = [];
      const running = () => [...document.querySelectorAll('.stage-card')].filter((c) => c.dataset.state === 'running').map((c) => c.dataset.stage).join() || 'nothing';
      new PerformanceObserver((list) => { for (const e of list.getEntries()) window.__timedTasks.push({ start: e.startTime, ms: e.duration, running: running() }); }).observe({ type: 'longtask' });
      // What a long frame spent its time on, to find the cause when the bound fails.
      window.__frames = [];
      new PerformanceObserver((list) => {
        for (const f of list.getEntries()) {
          if (f.duration < 50) continue;
          const running = [...document.querySelectorAll('.stage-card')].filter((c) => c.dataset.state === 'running').map((c) => c.dataset.stage).join();
          window.__frames.push(`${Math.round(f.startTime)} ms: ${Math.round(f.duration)} ms frame (${Math.round(f.startTime + f.duration - f.styleAndLayoutStart)} ms style+layout+paint) while ${running || 'nothing'} ran; scripts: ${f.scripts.map((x) => `${Math.round(x.duration)} ms ${x.invoker} ${x.sourceFunctionName || ""}@${(x.sourceURL || "").split("/").pop()}:${x.sourceCharPosition}`).join(', ') || 'none'}`);
        }
      }).observe({ type: 'long-animation-frame' });
    });
    const now = () => page.evaluate(() => performance.now());
    await pipeline.getByRole('button', { name: 'Run everything' }).click();
    await page.waitForFunction(() => document.querySelector('.stage-card[data-stage="ppo"]').dataset.state === 'running', null, { timeout: 1_200_000, polling: 250 });
    lap('PPO running');
    await page.waitForFunction(() => /^[1-9]\d* \/ 60 iterations/.test(document.querySelector('#ppo .progress span').textContent), null, { timeout: 300_000, polling: 250 });

    // Pause from the pipeline (keyboard shortcut p), check it holds, resume with "Run everything".
    await page.keyboard.press('4'); // select PPO
    await page.keyboard.press('p');
    await page.waitForFunction(() => document.querySelector('.stage-card[data-stage="ppo"]').dataset.state === 'paused', null, { timeout: 60_000 });
    const pausedAt = await page.locator('#ppo .progress span').textContent();
    await page.waitForTimeout(2_000);
    assert.equal(await page.locator('#ppo .progress span').textContent(), pausedAt, 'nothing moves while paused');
    lap(`paused at ${pausedAt}`);
    const shotFrom = await now();
    await page.screenshot({ path: path.join(OUT, 'lab-paused.png') });
    const shotTo = await now();
    await pipeline.getByRole('button', { name: 'Run everything' }).click();
    await page.waitForFunction(() => document.querySelector('.stage-card[data-stage="dpo"]').dataset.state === 'done', null, { timeout: 1_500_000, polling: 500 });
    lap('every stage done');
    for (const stage of STAGES) assert.equal(await cardState(page, stage), 'done', `${stage} done`);

    const timed = await page.evaluate(() => window.__timedTasks.slice());
    const duringShot = timed.filter((t) => t.start + t.ms >= shotFrom && t.start <= shotTo);
    const longTasks = timed.filter((t) => !duringShot.includes(t)).map((t) => t.ms);
    const longest = Math.max(0, ...longTasks);
    for (const line of await page.evaluate(() => window.__frames)) console.log(`#   ${line}`);
    for (const t of timed.filter((t) => !duringShot.includes(t))) console.log(`#   long task at ${Math.round(t.start)} ms: ${Math.round(t.ms)} ms while ${t.running} ran (or just after)`);
    console.log(`# main-thread long tasks while training: ${longTasks.length}, longest ${longest.toFixed(0)} ms (left out: ${duringShot.length} during the paused screenshot, ${duringShot.map((t) => t.ms.toFixed(0)).join(', ') || 'none'})`);
    assert.ok(longest < 50, `a main-thread task took ${longest} ms`);

    // What each stage shows.
    await page.screenshot({ path: path.join(OUT, 'lab-full.png'), fullPage: true });
    for (const id of ['pipeline', 'sft', 'labeling', 'reward', 'ppo', 'dpo']) {
      // Charts off screen draw when they come into view (within ~150 ms): look, then wait a moment.
      await page.locator(`#${id}`).scrollIntoViewIfNeeded();
      await page.waitForTimeout(750);
      // The rollout inspector (and the stepper and clipping view it feeds) rebuilds only when on
      // screen: scroll to it as a reader would before the panel's screenshot.
      const inspector = page.locator(`#${id} .rollout-inspector`);
      if (await inspector.count()) {
        await inspector.scrollIntoViewIfNeeded();
        await page.locator(`#${id} .rollout-inspector table tbody tr`).first().waitFor({ timeout: 30_000 });
        await page.waitForTimeout(750);
      }
      await page.locator(`#${id}`).screenshot({ path: path.join(OUT, `lab-${id}.png`) });
    }
    const summary = await page.evaluate(async () => {
      const rows = {};
      for (const stage of ['sft', 'reward', 'ppo', 'dpo']) {
        const metrics = await window.__lab.storage.metricsOf(stage);
        rows[stage] = { rows: metrics.length, last: metrics.at(-1) };
      }
      return rows;
    });
    for (const [stage, { rows, last }] of Object.entries(summary)) {
      const keys = ['loss/held_out', 'rm/held_out_accuracy', 'objective/rm_score', 'objective/gold', 'objective/kl', 'dpo/held_out_accuracy'].filter((k) => last && k in last);
      console.log(`# ${stage}: ${rows} steps; last ${keys.map((k) => `${k}=${Number(last[k]).toFixed(3)}`).join(' ')}`);
    }

    // Save: download π_ref's checkpoint from the data panel.
    const data = page.locator('#data');
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      data.getByRole('button', { name: 'Download sft checkpoint' }).click(),
    ]);
    const saved = path.join(OUT, 'lab-sft.rlhf');
    await download.saveAs(saved);
    const bytes = await readFile(saved);
    lap(`saved ${download.suggestedFilename()} (${bytes.length} bytes)`);

    // Reload, start over (the stored run is not resumed), and load the saved file.
    await page.reload();
    await page.waitForSelector('body[data-ready="true"]', { timeout: 120_000 });
    await page.getByRole('region', { name: 'resume' }).getByRole('button', { name: 'Start over' }).click();
    assert.equal(await cardState(page, 'sft'), 'ready');
    await data.getByLabel('Upload a checkpoint').setInputFiles(saved);
    await page.waitForFunction(() => document.querySelector('.stage-card[data-stage="sft"]').dataset.state === 'done', null, { timeout: 60_000 });
    const status = await page.evaluate(() => window.__lab.client.call('status'));
    assert.ok(status.has_reference, 'π_ref is loaded from the file');
    assert.equal(await cardState(page, 'reward'), 'ready', 'the reward model can train on the loaded π_ref');
    await page.locator('#sft').screenshot({ path: path.join(OUT, 'lab-loaded.png') });
    lap('checkpoint loaded after the reload');
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    await server.close();
  }
});
