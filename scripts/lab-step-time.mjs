// Benchmark aid (not a test): the lab page's own training loop, as a learner runs it. Opens the
// page on the CPU backend, runs SFT from "Run everything", and prints the median gap between SFT
// step events (steps 20–80) for each `workers=` setting asked: the step time the learner sees,
// with the page's storage and UI work included, which the benchmark page leaves out.
// Usage: node scripts/lab-step-time.mjs [workers...]   (default: 1 2)
import { serve, launch, openPage } from '../tests/e2e/harness.mjs';

const settings = process.argv.slice(2).length ? process.argv.slice(2) : ['1', '2'];
const server = await serve();
const browser = await launch();
try {
  for (const workers of settings) {
    const { page } = await openPage(browser, `${server.url}?backend=cpu&workers=${workers}`);
    await page.waitForFunction(() => window.__lab?.client);
    await page.evaluate(() => {
      window.__stepTimes = [];
      window.__lab.client.on((e) => { if (e.event === 'step' && e.stage === 'sft') window.__stepTimes.push(performance.now()); });
    });
    await page.locator('#pipeline').getByRole('button', { name: 'Run everything' }).click();
    await page.waitForFunction(() => window.__stepTimes.length >= 81, null, { timeout: 600_000, polling: 200 });
    const times = await page.evaluate(() => window.__stepTimes.slice(20, 81));
    const gaps = times.slice(1).map((t, i) => t - times[i]).sort((a, b) => a - b);
    const quantile = (q) => gaps[Math.floor(q * (gaps.length - 1))].toFixed(1);
    console.log(`workers=${workers}: SFT step in the lab page, median of ${gaps.length} gaps: ${quantile(0.5)} ms (p10 ${quantile(0.1)}, p90 ${quantile(0.9)})`);
    await page.close();
  }
} finally {
  await browser.close();
  await server.close();
}
