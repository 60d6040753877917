// The guided lesson (issue 30), walked as a learner would, by role and name only (getByRole: hidden panels of the full lab never match), at a phone's
// size (390 × 844) and a laptop's (1440 × 900), on the CPU backend: a first visit opens the
// lesson at step 1; every step trains what it needs from Next (SFT, the simulated labels, the
// reward model, one rollout, one iteration, PPO to the end, PPO at β = 0, GRPO, DPO) and shows the
// learner's own numbers; each step's one thing to try is tried; no page overflows sideways;
// keyboard focus is visible; a teacher's link to step 6 opens there and offers to run what it
// needs; "Full lab" is one click away and remembered. No console error and no main-thread task
// over 50 ms (screenshots left out: Playwright renders the page for them). Screenshots of every
// step: test-results/lesson-shots/ (LESSON_SHOTS to move them). Prints how long each step waited.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { mkdirSync } from 'node:fs';
import { serve, launch, openPage } from './harness.mjs';

const SHOTS = process.env.LESSON_SHOTS ?? 'test-results/lesson-shots';
mkdirSync(SHOTS, { recursive: true });
// LESSON_SIZES=390x844 walks one size only (to look at a layout change quickly).
const SIZES = [{ width: 390, height: 844 }, { width: 1440, height: 900 }]
  .filter((s) => !process.env.LESSON_SIZES || process.env.LESSON_SIZES.split(',').includes(`${s.width}x${s.height}`));
const TITLES = [
  'Supervised fine-tuning makes π_ref',
  'Label five pairs by hand',
  'A simulated labeler for the rest',
  'The Bradley–Terry loss on one pair',
  'One rollout, token by token',
  'Advantages by GAE, stepped backward',
  'The ratio and the clip on that rollout',
  'Reward, KL and gold over PPO',
  'Reward hacking at β = 0',
  'Write your own reward',
  'GRPO: the group is the baseline',
  'DPO and the reward–KL frontier',
];
const TRAINING = 900_000;

/** Records main-thread long tasks with their start, so the ones during screenshots can be left out. */
async function watchLongTasks(page) {
  await page.evaluate(() => {
    window.__timedTasks = [];
    new PerformanceObserver((list) => { for (const e of list.getEntries()) window.__timedTasks.push({ start: e.startTime, ms: e.duration }); }).observe({ type: 'longtask' });
  });
  // What a long frame spent its time on, and on which step: to find the cause when the bound fails.
  await page.evaluate(() => {
    window.__frames = [];
    new PerformanceObserver((list) => {
      for (const f of list.getEntries()) {
        if (f.duration < 50) continue;
        const step = document.querySelector('#lesson h2')?.textContent ?? '';
        window.__frames.push({ start: f.startTime, text: `${Math.round(f.startTime)} ms: ${Math.round(f.duration)} ms frame (${Math.round(f.startTime + f.duration - f.styleAndLayoutStart)} ms style+layout+paint) on "${step}"; scripts: ${f.scripts.map((x) => `${Math.round(x.duration)} ms ${x.invoker} ${x.sourceFunctionName ?? ''}`).join(', ') || 'none'}` });
      }
    }).observe({ type: 'long-animation-frame' });
  });
  // The observer sees a long task: one made on purpose is recorded, then forgotten.
  await page.evaluate(() => { setTimeout(() => { const t = performance.now(); while (performance.now() - t < 80) { /* busy */ } }, 0); });
  await page.waitForFunction(() => window.__timedTasks.some((t) => t.ms >= 80), null, { timeout: 5_000 });
  await page.evaluate(() => { window.__timedTasks.length = 0; });
}

for (const size of SIZES) {
  const tag = `${size.width}x${size.height}`;
  test(`the lesson at ${tag}, end to end on the CPU backend`, { timeout: 2_400_000 }, async () => {
    const server = await serve();
    const browser = await launch();
    const t0 = Date.now();
    const seconds = (from) => ((Date.now() - from) / 1000).toFixed(1);
    const waits = [];
    const heights = [];
    const shotWindows = [];
    try {
      // A first visit: no mode remembered, nothing in the link but the backend.
      const { page, errors } = await openPage(browser, `${server.url}?backend=cpu`, { mode: null, viewport: size });
      await watchLongTasks(page);
      const now = () => page.evaluate(() => performance.now());
      const heading = (n) => page.getByRole('heading', { level: 2, name: TITLES[n - 1], exact: true });
      const next = page.getByRole('button', { name: /^Next:/ });
      const nextReady = page.getByRole('button', { name: /^Next:/, disabled: false });
      const training = page.getByRole('progressbar', { name: 'Training progress' });

      const tabs = ['Idea', 'Live panel', 'Try this'];
      /** On a phone, shows one of the step's views by its tab (a wider screen shows all three). */
      async function show(name) {
        const tab = page.getByRole('tab', { name, exact: true });
        if (await tab.count()) await tab.click();
      }
      async function shot(name) {
        const from = await now();
        await page.screenshot({ path: path.join(SHOTS, `${name}.png`) });
        shotWindows.push([from, await now()]);
      }
      /**
       * The page's height once its layout has settled (charts size themselves a frame or two late)
       * and every chart in view has drawn what it holds (one coming into view draws a moment
       * later); the charts in view that still had not drawn their points after 60 frames.
       */
      async function height() {
        return page.evaluate(async () => {
          const frame = () => new Promise((resolve) => requestAnimationFrame(resolve));
          const undrawn = () => [...document.querySelectorAll('[data-points]')]
            .filter((c) => c.checkVisibility() && c.dataset.drawn !== c.dataset.points)
            .map((c) => `${c.closest('[data-curve]')?.dataset.curve ?? c.querySelector('.u-title')?.textContent ?? 'a chart'}: ${c.dataset.drawn ?? 0} of ${c.dataset.points} drawn`);
          let last = -1; let same = 0;
          for (let i = 0; i < 60 && (same < 3 || undrawn().length); i++) {
            await frame();
            const h = document.documentElement.scrollHeight;
            same = h === last ? same + 1 : 0; last = h;
          }
          return [last, window.innerHeight, undrawn()];
        });
      }
      /**
       * The step fits the screen: no sideways scroll; no scroll down either, on a wide screen for
       * the whole step and on a phone for each of its views (shown one at a time by its tab).
       * Screenshots of the step (of each view, on a phone).
       */
      async function fits(n) {
        const [scroll, inner] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
        assert.ok(scroll <= inner, `step ${n} overflows sideways at ${tag}: ${scroll} px wide in a ${inner} px window`);
        const name = `${tag}-step${String(n).padStart(2, '0')}`;
        const phone = (await page.getByRole('tab').count()) > 0;
        for (const view of phone ? tabs : ['']) {
          if (view) await show(view);
          const [tall, screen, undrawn] = await height();
          heights.push({ step: n, view, tall, screen });
          await shot(view ? `${name}-${view.split(' ')[0].toLowerCase()}` : name);
          assert.deepEqual(undrawn, [], `step ${n}${view ? ` (${view})` : ''} shows charts without their points at ${tag}`);
          assert.ok(tall <= screen, `step ${n}${view ? ` (${view})` : ''} does not fit the screen at ${tag}: ${tall} px tall in a ${screen} px window`);
        }
      }
      /** Waits for the step's training (if any) to finish: its progress gone, Next enabled. */
      async function trained(n, started) {
        await training.waitFor({ state: 'hidden', timeout: TRAINING });
        if (n < TITLES.length) await nextReady.waitFor({ timeout: TRAINING });
        const s = (Date.now() - started) / 1000;
        waits.push({ step: n, s });
        return s;
      }
      async function goNext(n) {
        const started = Date.now();
        await nextReady.click();
        await heading(n).waitFor();
        // The link follows in a task of its own, just after the click's.
        await page.waitForFunction((k) => new RegExp(`[?&]lesson=${k}(&|$)`).test(location.search), n, { timeout: 5_000 });
        await page.waitForFunction(() => document.activeElement?.id === 'lesson-title', null, { timeout: 5_000 });
        return started;
      }

      // ---- 1 · SFT: the lesson is the first visit's default.
      await heading(1).waitFor();
      assert.match(page.url(), /[?&]lesson=1(&|$)/);
      await page.getByRole('button', { name: 'Lesson', pressed: true }).waitFor();
      assert.ok(await next.isDisabled(), 'Next waits for π_ref');
      let started = Date.now();
      await page.getByRole('button', { name: 'Run it: SFT' }).click();
      await trained(1, started);
      // On a phone the step's views are tabs, moved between by the arrow keys.
      if (size.width < 600) {
        const idea = page.getByRole('tab', { name: 'Idea', selected: true });
        await idea.focus();
        await page.keyboard.press('ArrowRight');
        await page.getByRole('tab', { name: 'Live panel', selected: true }).waitFor();
        await page.getByRole('tabpanel', { name: 'Live panel' }).waitFor();
        await page.keyboard.press('End');
        await page.getByRole('tab', { name: 'Try this', selected: true }).waitFor();
      }
      // Try: the temperature slider by keyboard, then sample.
      await show('Try this');
      const temperature = page.getByRole('slider', { name: 'Sampling temperature', exact: true });
      await temperature.focus();
      for (let i = 0; i < 3; i++) await page.keyboard.press('ArrowRight');
      assert.equal(await temperature.inputValue(), '1');
      await page.getByRole('button', { name: 'Sample from π_ref' }).click();
      await page.getByRole('columnheader', { name: 'π_ref writes' }).waitFor();
      // Focus is visible when it moves by keyboard.
      await page.getByRole('button', { name: 'Sample from π_ref' }).focus();
      await page.keyboard.press('Shift+Tab');
      await page.keyboard.press('Tab');
      const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
      assert.notEqual(outline, 'none', 'a focused control shows an outline');
      await fits(1);

      // ---- 2 · five pairs by hand, by keys and by buttons.
      started = await goNext(2);
      waits.push({ step: 2, s: (Date.now() - started) / 1000 });
      await show('Live panel');
      const pair = page.getByRole('group', { name: /^Pair to judge/ });
      await page.getByRole('button', { name: 'Left is better', disabled: false }).waitFor();
      await pair.focus();
      await page.keyboard.press('ArrowLeft');
      await page.keyboard.press('ArrowRight');
      await page.keyboard.press('ArrowDown');
      assert.ok(await next.isDisabled(), 'Next waits for five hand labels');
      await page.getByRole('button', { name: 'Right is better', disabled: false }).click();
      await page.getByRole('button', { name: 'Left is better', disabled: false }).click();
      await nextReady.waitFor({ timeout: 30_000 });
      await page.getByRole('status').filter({ hasText: 'Your hand labels: 5 of 5.' }).waitFor({ timeout: 10_000 });
      await fits(2);

      // ---- 3 · the simulated labeler, at a chosen τ.
      started = await goNext(3);
      await show('Try this');
      const tau = page.getByRole('textbox', { name: 'Labeler noise τ' });
      await tau.fill('0.5');
      await tau.press('Tab');
      await page.getByRole('button', { name: 'Simulate the labels' }).click();
      await training.waitFor({ timeout: 30_000 });
      await trained(3, started);
      await fits(3);

      // ---- 4 · the Bradley–Terry loss: Next trains the reward model.
      started = await goNext(4);
      await trained(4, started);
      await show('Try this');
      const pick = page.getByRole('slider', { name: 'Held-out pair' });
      await pick.focus();
      await page.keyboard.press('ArrowRight');
      await page.keyboard.press('ArrowRight');
      await page.getByRole('columnheader', { name: 'r_φ' }).waitFor();
      await fits(4);

      // ---- 5 · one rollout: Next samples it.
      started = await goNext(5);
      await trained(5, started);
      await show('Live panel');
      const completion = page.getByRole('combobox', { name: 'Completion', exact: true });
      await completion.selectOption({ index: 2 });
      await page.getByRole('region', { name: 'Rollout inspector: one column per token' }).waitFor();
      await fits(5);

      // ---- 6 · GAE, stepped backward, and λ moved.
      started = await goNext(6);
      await trained(6, started);
      await show('Live panel');
      await page.getByRole('button', { name: 'Reset the GAE recursion', disabled: false }).click();
      for (let i = 0; i < 3; i++) await page.getByRole('button', { name: 'Step the GAE recursion' }).click();
      const lam = page.getByRole('slider', { name: 'λ in the stepper' });
      await lam.focus();
      await page.keyboard.press('Home');
      assert.equal(await lam.inputValue(), '0');
      await page.getByRole('region', { name: 'GAE recursion table' }).waitFor();
      await fits(6);

      // ---- 7 · the ratio and the clip: Next runs one iteration.
      started = await goNext(7);
      await trained(7, started);
      await fits(7);

      // ---- 8 · PPO to the end; the second chart chosen.
      started = await goNext(8);
      await trained(8, started);
      await show('Try this');
      await page.getByRole('combobox', { name: 'Second chart' }).selectOption({ label: 'clip fraction' });
      await fits(8);

      // ---- 9 · β = 0: the comparison with the run before, and the reward model's blind spot.
      started = await goNext(9);
      await trained(9, started);
      await show('Live panel');
      await page.getByRole('row', { name: /^β = 0 / }).waitFor();
      assert.equal(await page.getByRole('row', { name: /^β = / }).count(), 2, 'both PPO runs are in the comparison');
      await show('Try this');
      await page.getByRole('rowheader', { name: /^relevance/ }).waitFor();
      await page.getByRole('button', { name: 'Sample from π_θ (β = 0)' }).click();
      await page.getByRole('columnheader', { name: 'π_θ writes' }).waitFor();
      await fits(9);

      // ---- 10 · your own reward: a bad expression is refused with its column; the default,
      // trained against from π_ref at β = 0, climbs while gold peaks and falls.
      started = await goNext(10);
      await show('Try this');
      const expression = page.getByRole('textbox', { name: 'Your reward' });
      const fallback = await expression.inputValue();
      assert.match(fallback, /count\("great"\)/);
      await expression.fill('2*count("great") + zzz');
      await expression.press('Tab');
      const refused = page.getByRole('alert').filter({ hasText: /column \d+/ });
      await refused.waitFor({ timeout: 10_000 });
      console.log(`# ${tag}: a bad reward is refused: ${await refused.textContent()}`);
      assert.equal(await page.evaluate(() => window.__lab.config.reward.expression), fallback, 'a refused expression changes nothing');
      await expression.fill(fallback);
      await expression.press('Tab');
      await refused.waitFor({ state: 'hidden', timeout: 10_000 });
      const trainFrom = Date.now();
      await page.getByRole('button', { name: 'Train against it (β = 0)' }).click();
      await page.waitForFunction(() => window.__lab.config.ppo.reward === 'custom' && window.__lab.stages.get('ppo').state() === 'done', null, { timeout: TRAINING, polling: 500 });
      const points = await page.evaluate(async () => { await window.__lab.yourReward.settled(); return window.__lab.yourReward.points(); });
      waits.push({ step: 10, s: (Date.now() - trainFrom) / 1000 });
      const peak = Math.max(...points.map((p) => p.gold));
      const last = points.reduce((a, p) => (p.iteration > a.iteration ? p : a));
      const origin = points.reduce((a, p) => (p.iteration < a.iteration ? p : a));
      console.log(`# ${tag}: your reward's run: ${points.map((p) => `${p.iteration}: proxy ${p.proxy.toFixed(2)} gold ${p.gold.toFixed(2)} √KL ${p.sqrt_kl.toFixed(2)}`).join('; ')}`);
      assert.ok(peak - last.gold > 1, `gold fell from its peak ${peak} to ${last.gold}`);
      assert.ok(last.proxy > origin.proxy + 5, `the reward trained against climbed: ${origin.proxy} → ${last.proxy}`);
      await nextReady.waitFor({ timeout: 30_000 });
      await show('Live panel');
      await page.locator('#lesson').getByText(/^Gold peaked at /).waitFor({ timeout: 10_000 });
      await fits(10);

      // ---- 11 · GRPO against the same r_φ: its curve, its numbers, one group of its last rollout.
      started = await goNext(11);
      await trained(11, started);
      await show('Live panel');
      await page.getByRole('paragraph').filter({ hasText: /^Your run: \d+ prompts × G = \d+ completions per iteration, \d+ iterations: reward r_φ / }).waitFor();
      await show('Try this');
      const group = page.getByRole('table').filter({ has: page.getByRole('columnheader', { name: 'Â_i' }) });
      await group.waitFor();
      const first = await page.getByText(/^Group 1 of \d+ · /).textContent();
      await page.getByRole('button', { name: 'Another group' }).click();
      await page.getByText(/^Group 2 of \d+ · /).waitFor();
      assert.equal(await group.getByRole('row').count(), 1 + 8, `one row per completion of the group (G = 8) after ${first}`);
      await fits(11);

      // ---- 12 · DPO and the frontier, with the GRPO policy on it.
      started = await goNext(12);
      await trained(12, started);
      await show('Try this');
      await page.getByRole('rowheader', { name: 'DPO' }).waitFor({ timeout: 60_000 });
      await page.getByRole('rowheader', { name: 'GRPO' }).waitFor({ timeout: 60_000 });
      await fits(12);
      const total = seconds(t0);

      // ---- The full lab, one click away and remembered.
      await page.getByRole('button', { name: 'Open the full lab' }).click();
      await page.getByRole('heading', { name: 'The pipeline' }).waitFor();
      assert.match(page.url(), /[?&]mode=lab(&|$)/);
      await page.getByRole('button', { name: 'Full lab', pressed: true }).waitFor();
      await page.getByRole('button', { name: 'Lesson' }).click();
      await heading(12).waitFor();

      const timed = await page.evaluate(() => window.__timedTasks.slice());
      const own = timed.filter((t) => !shotWindows.some(([a, b]) => t.start + t.ms >= a && t.start <= b));
      const longest = Math.max(0, ...own.map((t) => t.ms));
      console.log(`# ${tag}: the whole lesson took ${total} s on the CPU backend (from the first visit to step ${TITLES.length} done)`);
      for (const w of waits) console.log(`#   step ${w.step} (${TITLES[w.step - 1]}): waited ${w.s.toFixed(1)} s`);
      console.log(`# ${tag}: main-thread long tasks: ${own.length} over 50 ms outside screenshots, longest ${longest.toFixed(0)} ms (${timed.length - own.length} during the ${shotWindows.length} screenshots left out)`);
      console.log(`# ${tag}: console errors: ${errors.length}`);
      console.log(`# ${tag}: page height per step: ${heights.map((h) => `${h.step}${h.view ? ` ${h.view}` : ''}: ${h.tall} px (${(h.tall / h.screen).toFixed(2)} screens)`).join(', ')}`);
      const frames = await page.evaluate(() => window.__frames);
      for (const f of frames.filter((x) => !shotWindows.some(([a, b]) => x.start >= a - 100 && x.start <= b))) console.log(`#   long frame ${f.text}`);
      assert.ok(longest < 50, `a main-thread task took ${longest.toFixed(0)} ms`);
      assert.deepEqual(errors, []);

      // ---- A teacher's link to step 6, on a browser that has trained nothing.
      if (size.width === SIZES[0].width) {
        const fresh = await openPage(browser, `${server.url}?backend=cpu&lesson=6`, { mode: null, viewport: size });
        const p = fresh.page;
        await p.getByRole('heading', { level: 2, name: TITLES[5], exact: true }).waitFor();
        const runMissing = p.getByRole('button', { name: /^Run what is missing/ });
        await runMissing.waitFor();
        assert.ok(await p.getByRole('button', { name: /^Next:/ }).isDisabled(), 'Next waits for what step 6 needs');
        const from = Date.now();
        await runMissing.click();
        await p.getByRole('progressbar', { name: 'Training progress' }).waitFor({ state: 'hidden', timeout: TRAINING });
        await p.getByRole('button', { name: /^Next:/, disabled: false }).waitFor({ timeout: TRAINING });
        // A phone shows the live panel by its tab (the link is tried at the first size walked).
        const liveTab = p.getByRole('tab', { name: 'Live panel' });
        if (await liveTab.count()) await liveTab.click();
        await p.getByRole('region', { name: 'GAE recursion table' }).waitFor();
        console.log(`# ${tag}: a link to step 6 on a fresh browser: ran what it needs in ${seconds(from)} s`);
        await p.screenshot({ path: path.join(SHOTS, `${tag}-link-step06.png`) });
        assert.deepEqual(fresh.errors, []);
        await fresh.context.close();
      }
    } finally {
      await browser.close();
      await server.close();
    }
  });
}
