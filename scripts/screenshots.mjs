// The README's screenshots of the real page: the full lab after "Run everything" on the CPU
// backend (the PPO panel, 1440 × 900) into docs/images/lab.png. The lesson's image comes from
// the lesson's end-to-end test (a step at 1440 × 900). Needs the page built (scripts/build.sh).
//
//   node scripts/screenshots.mjs
import path from 'node:path';
import { serve, launch, ROOT } from '../tests/e2e/harness.mjs';

const server = await serve();
const browser = await launch();
try {
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const page = await context.newPage();
  await page.goto(`${server.url}?mode=lab&backend=cpu`);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 120_000 });
  await page.getByRole('button', { name: 'Run everything' }).click();
  await page.waitForFunction(() => document.querySelector('.stage-card[data-stage="dpo"]').dataset.state === 'done', null, { timeout: 900_000, polling: 500 });
  await page.locator('#ppo').scrollIntoViewIfNeeded();
  await page.evaluate(() => document.getElementById('ppo').scrollIntoView({ block: 'start' }));
  await page.waitForTimeout(1000);
  const out = path.join(ROOT, 'docs/images/lab.png');
  await page.screenshot({ path: out });
  console.log(`wrote ${out}`);
} finally {
  await browser.close();
  await server.close();
}
