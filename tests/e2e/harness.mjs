// Shared set-up for the end-to-end tests: serve the built page (dist/) with Vite's preview
// server on a free port, and drive the system Chromium through playwright-core. RLHF_DIST serves
// another build folder instead (`npx vite build --outDir test-results/dist-x`, then
// `RLHF_DIST=test-results/dist-x node --test ...`): a page built aside, leaving dist/ alone.
import { preview } from 'vite';
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const OUT = path.join(ROOT, 'test-results');
mkdirSync(OUT, { recursive: true });

export async function serve() {
  const server = await preview({ root: ROOT, configFile: path.join(ROOT, 'vite.config.js'), build: { outDir: process.env.RLHF_DIST ?? 'dist' }, preview: { port: 0, host: '127.0.0.1', strictPort: false }, logLevel: 'warn' });
  const url = server.resolvedUrls.local[0];
  return { url, close: () => new Promise((resolve) => server.httpServer.close(resolve)) };
}

export async function launch(extraArgs = []) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--no-sandbox', '--enable-unsafe-webgpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage', ...extraArgs],
  });
}

/**
 * A page that records main-thread long tasks (> 50 ms) from its first script on. The lesson is
 * the page's default for a first visit; the tests of the lab's panels open the full lab (`mode:
 * 'lab'`, as a learner who chose "Full lab" would: the choice is remembered in localStorage).
 * `mode: null` leaves the choice to the page.
 */
export async function openPage(browser, url, { mode = 'lab', viewport = { width: 1280, height: 900 } } = {}) {
  const context = await browser.newContext({ viewport });
  if (mode) await context.addInitScript((m) => { try { localStorage.setItem('rlhf-lab-mode', m); } catch { /* about:blank */ } }, mode);
  await context.addInitScript(() => {
    window.__longTasks = [];
    new PerformanceObserver((list) => { for (const e of list.getEntries()) window.__longTasks.push(e.duration); }).observe({ type: 'longtask', buffered: true });
  });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  await page.goto(url);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 120_000 });
  return { page, context, errors };
}

/**
 * Labels from the simulated labeler (in batches of 128) and a trained reward model, as stage 2's
 * panels would make them, through `window.__lab`: `{labels, plan}`.
 */
export async function labelsAndRewardModel(page) {
  return page.evaluate(async () => {
    const lab = window.__lab;
    const simulated = [];
    while (simulated.length < lab.config.reward.simulated_labels) {
      simulated.push(...await lab.client.call('simulateLabels', Math.min(128, lab.config.reward.simulated_labels - simulated.length)));
    }
    await lab.storage.addLabels(simulated.map((s) => s.label));
    lab.events.emit('stage-state', { stage: 'labels', state: 'done', produced: 'labels' });
    const plan = await lab.client.call('rewardBegin', await lab.storage.labelsJsonl());
    const reason = await new Promise((resolve) => {
      const off = lab.client.on((e) => {
        if (e.stage !== 'reward' || e.tag !== 'e2e') return;
        if (e.event === 'stopped') { off(); resolve(e.reason); }
      });
      lab.client.run('reward', null, 'e2e');
    });
    if (reason !== 'done') throw new Error(`the reward model stopped: ${reason}`);
    await lab.client.call('rewardFinish');
    lab.events.emit('stage-state', { stage: 'reward', state: 'done', produced: 'r_φ' });
    return { labels: simulated.length, plan };
  });
}
