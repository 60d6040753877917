// Debug aid (not a test): runs everything with short settings and prints every main-thread
// long animation frame with the scripts inside it, and what was running then.
import { serve, launch, openPage } from '../tests/e2e/harness.mjs';
const query = process.argv[2] ?? '?backend=cpu&sft.steps=40&reward.simulated_labels=300&ppo.iterations=6&dpo.epochs=1';
const server = await serve();
const browser = await launch();
try {
  const { page } = await openPage(browser, `${server.url}${query}`);
  await page.evaluate(() => {
    window.__frames = [];
    new PerformanceObserver((list) => {
      for (const f of list.getEntries()) {
        if (f.duration < 50) continue;
        const running = [...document.querySelectorAll('.stage-card')].filter((c) => c.dataset.state === 'running').map((c) => c.dataset.stage).join(',');
        window.__frames.push({ t: Math.round(f.startTime), ms: Math.round(f.duration), block: Math.round(f.blockingDuration), render: Math.round(f.startTime + f.duration - f.renderStart), layout: Math.round(f.startTime + f.duration - f.styleAndLayoutStart), running, scripts: f.scripts.map((s) => `${Math.round(s.duration)}ms ${s.invoker} ${s.sourceFunctionName} ${s.sourceURL.split('/').pop()}:${s.sourceCharPosition}`) });
      }
    }).observe({ type: 'long-animation-frame' });
    window.__longTasks.length = 0;
    window.__lt = [];
    new PerformanceObserver((list) => { for (const e of list.getEntries()) window.__lt.push({ t: Math.round(e.startTime), ms: Math.round(e.duration), running: [...document.querySelectorAll('.stage-card')].filter((c) => c.dataset.state === 'running').map((c) => c.dataset.stage).join(',') }); }).observe({ type: 'longtask' });
  });
  await page.locator('#pipeline').getByRole('button', { name: 'Run everything' }).click();
  await page.waitForFunction(() => document.querySelector('.stage-card[data-stage="dpo"]').dataset.state === 'done', null, { timeout: 1_200_000, polling: 500 });
  const { frames, tasks } = await page.evaluate(() => ({ frames: window.__frames, tasks: window.__lt }));
  console.log('long tasks:', JSON.stringify(tasks));
  for (const f of frames) console.log(JSON.stringify(f));
} finally {
  await browser.close();
  await server.close();
}
