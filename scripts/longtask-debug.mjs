// Debug aid (not a test): runs everything with short settings and prints every main-thread
// long animation frame (over MIN_MS, default 50 ms) with the scripts inside it, and what was
// running then.
import { serve, launch, openPage } from '../tests/e2e/harness.mjs';
const query = process.argv[2] ?? '?backend=cpu&sft.steps=40&reward.simulated_labels=300&ppo.iterations=6&dpo.epochs=1';
const MIN_MS = Number(process.env.MIN_MS ?? 50);
const server = await serve();
const browser = await launch();
try {
  const { page } = await openPage(browser, `${server.url}${query}`);
  // THROTTLE=n slows the page's main thread n times (Chrome DevTools' CPU throttling), to find the
  // handlers that would pass 50 ms on a slower or busier machine.
  if (process.env.THROTTLE) await (await page.context().newCDPSession(page)).send('Emulation.setCPUThrottlingRate', { rate: Number(process.env.THROTTLE) });
  await page.evaluate((MIN_MS) => {
    window.__frames = [];
    new PerformanceObserver((list) => {
      for (const f of list.getEntries()) {
        if (f.duration < MIN_MS) continue;
        const running = [...document.querySelectorAll('.stage-card')].filter((c) => c.dataset.state === 'running').map((c) => c.dataset.stage).join(',');
        window.__frames.push({ t: Math.round(f.startTime), ms: Math.round(f.duration), block: Math.round(f.blockingDuration), render: Math.round(f.startTime + f.duration - f.renderStart), layout: Math.round(f.startTime + f.duration - f.styleAndLayoutStart), running, scripts: f.scripts.map((s) => `${Math.round(s.duration)}ms ${s.invoker} ${s.sourceFunctionName} ${s.sourceURL.split('/').pop()}:${s.sourceCharPosition}`) });
      }
    }).observe({ type: 'long-animation-frame' });
    window.__longTasks.length = 0;
    window.__lt = [];
    new PerformanceObserver((list) => { for (const e of list.getEntries()) window.__lt.push({ t: Math.round(e.startTime), ms: Math.round(e.duration), running: [...document.querySelectorAll('.stage-card')].filter((c) => c.dataset.state === 'running').map((c) => c.dataset.stage).join(',') }); }).observe({ type: 'longtask' });
  }, MIN_MS);
  await page.locator('#pipeline').getByRole('button', { name: 'Run everything' }).click();
  await page.waitForFunction(() => document.querySelector('.stage-card[data-stage="dpo"]').dataset.state === 'done', null, { timeout: 1_200_000, polling: 500 });
  const { frames, tasks } = await page.evaluate(() => ({ frames: window.__frames, tasks: window.__lt }));
  console.log('long tasks:', JSON.stringify(tasks));
  for (const f of frames) console.log(JSON.stringify(f));
} finally {
  await browser.close();
  await server.close();
}
