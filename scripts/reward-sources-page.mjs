// The reward sources measured in the page (headless Chromium, CPU backend, tiny preset), for
// seeds 1–3: SFT and the reward model as the page trains them (2,000 simulated labels), then PPO
// from the same π_ref against r_φ and against the gold utility (RLVR), each policy measured on 256
// fresh prompts; then "Show reward hacking" (PPO at β = 0 against the default custom reward),
// its reward and gold against √KL every 5 iterations. Prints one JSON line per run and a summary.
//   node scripts/reward-sources-page.mjs [seeds, default 1,2,3]
import { serve, launch, openPage, labelsAndRewardModel } from '../tests/e2e/harness.mjs';

const seeds = (process.argv[2] ?? '1,2,3').split(',').map(Number);
const server = await serve();
const browser = await launch();
const rows = [];
try {
  for (const seed of seeds) {
    const { page, errors } = await openPage(browser, `${server.url}?backend=cpu&seed=${seed}`);
    const t0 = Date.now();
    await page.locator('#sft').getByRole('button', { name: 'Start SFT' }).click();
    await page.locator('#sft').getByRole('button', { name: 'Done' }).waitFor({ timeout: 600_000 });
    await labelsAndRewardModel(page);
    const setup = (Date.now() - t0) / 1000;
    const reference = await page.evaluate(() => window.__lab.client.call('evaluate', 'sft', 256, 99));
    // One PPO run from π_ref to the end with `reward`, then its policy on 256 fresh prompts.
    const ppo = (reward) => page.evaluate(async (reward) => {
      const lab = window.__lab;
      const done = new Promise((resolve) => {
        const off = lab.client.on((e) => { if (e.stage === 'ppo' && !e.tag && e.event === 'stopped') { off(); resolve(e.reason); } });
      });
      const started = performance.now();
      await lab.stages.get('ppo').restartWith((c) => { c.ppo.reward = reward; }, reward);
      const reason = await done;
      const seconds = (performance.now() - started) / 1000;
      await lab.yourReward.settled();
      const byGold = await lab.client.call('evaluate', 'policy', 256, 99);
      const byOwn = await lab.client.call('evaluateRun', 'ppo', 256, 99);
      return { reason, seconds, iterations: lab.config.ppo.iterations, gold: byGold.gold, kl: byGold.kl, rm_score: byGold.score, own_score: byOwn.score };
    }, reward);
    for (const reward of ['reward_model', 'gold']) {
      const run = { seed, method: 'ppo', reward, ...(await ppo(reward)), reference_gold: reference.gold };
      console.log(JSON.stringify(run));
      rows.push(run);
    }
    const hacking = await page.evaluate(async () => {
      const lab = window.__lab;
      const done = new Promise((resolve) => {
        const off = lab.client.on((e) => { if (e.stage === 'ppo' && !e.tag && e.event === 'stopped') { off(); resolve(e.reason); } });
      });
      const started = performance.now();
      lab.yourReward.showRewardHacking();
      const reason = await done;
      await lab.yourReward.settled();
      return { reason, seconds: (performance.now() - started) / 1000, expression: lab.config.reward.expression, points: lab.yourReward.points() };
    });
    const peak = hacking.points.reduce((b, p) => (p.gold > b.gold ? p : b), hacking.points[0]);
    const last = hacking.points.at(-1);
    const run = { seed, method: 'ppo', reward: 'custom', beta: 0, setup_seconds: setup, ...hacking, peak, last, fell: peak.gold - last.gold, errors };
    console.log(JSON.stringify(run));
    rows.push(run);
    await page.close();
  }
} finally {
  await browser.close();
  server.close();
}
const f = (v, d = 3) => (Number.isFinite(v) ? v.toFixed(d) : '—');
console.log('\n| seed | reward | gold (π_ref → policy) | KL | wall s (60 iterations) |');
console.log('|---|---|---|---|---|');
for (const r of rows.filter((r) => r.reward !== 'custom')) console.log(`| ${r.seed} | ${r.reward === 'gold' ? 'gold (RLVR)' : 'r_φ'} | ${f(r.reference_gold)} → ${f(r.gold)} | ${f(r.kl)} | ${f(r.seconds, 1)} |`);
console.log('\n| seed | reward trained against (0 → end) | gold at 0 | gold peak (iteration, √KL) | gold at the end (√KL) | fall | wall s |');
console.log('|---|---|---|---|---|---|---|');
for (const r of rows.filter((r) => r.reward === 'custom')) {
  console.log(`| ${r.seed} | ${f(r.points[0].proxy, 2)} → ${f(r.last.proxy, 2)} | ${f(r.points[0].gold, 2)} | ${f(r.peak.gold, 2)} (${r.peak.iteration}, ${f(r.peak.sqrt_kl, 2)}) | ${f(r.last.gold, 2)} (${f(r.last.sqrt_kl, 2)}) | ${f(r.fell, 2)} | ${f(r.seconds, 1)} |`);
}
console.log(`\nthe fall shows in ${rows.filter((r) => r.reward === 'custom' && r.fell > 1 && r.peak.iteration > 0 && r.peak.iteration < r.last.iteration).length} of ${seeds.length} seeds`);
