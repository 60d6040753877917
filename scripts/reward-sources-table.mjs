// Summarizes scripts/reward-sources.sh's output directory as the tables of docs/reward-sources.md.
//   node scripts/reward-sources-table.mjs OUT_DIR
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.argv[2];
if (!dir) { console.error('usage: node scripts/reward-sources-table.mjs OUT_DIR'); process.exit(2); }
const lines = (file) => readFileSync(join(dir, file), 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
const f = (v, d = 3) => (Number.isFinite(v) ? v.toFixed(d) : '—');

console.log('| method | reward | seed | gold (π_ref → policy) | reward trained against (end) | KL | s/iteration |');
console.log('|---|---|---|---|---|---|---|');
for (const stage of ['ppo', 'grpo']) for (const source of ['rm', 'gold']) for (const seed of [1, 2, 3]) {
  const file = `${stage}-${source}-${seed}.jsonl`;
  if (!existsSync(join(dir, file))) continue;
  const summary = lines(file).find((o) => o.summary);
  if (!summary) continue;
  const { reference, policy } = summary;
  console.log(`| ${stage.toUpperCase()} | ${source === 'rm' ? 'r_φ' : 'gold (RLVR)'} | ${seed} | ${f(reference.gold)} → ${f(policy.gold)} | ${source === 'rm' ? `r_φ ${f(policy.score)}` : `gold ${f(policy.gold)}`} | ${f(policy.kl)} | ${f(summary.seconds_per_iteration, 2)} |`);
}
console.log('\n| seed | proxy (iteration 0 → end) | gold at 0 | gold peak (iteration, √KL) | gold at the end | fall from the peak | proxy rose at every point after the peak |');
console.log('|---|---|---|---|---|---|---|');
for (const seed of [1, 2, 3]) {
  const file = `hacking-${seed}.jsonl`;
  if (!existsSync(join(dir, file))) continue;
  const points = lines(file).filter((o) => o.overoptimization);
  const peak = points.reduce((b, p) => (p.gold > b.gold ? p : b), points[0]);
  const last = points.at(-1);
  const after = points.filter((p) => p.iteration >= peak.iteration);
  const proxyUp = after.every((p, i) => i === 0 || p.proxy >= after[i - 1].proxy - 0.5);
  console.log(`| ${seed} | ${f(points[0].proxy, 2)} → ${f(last.proxy, 2)} | ${f(points[0].gold, 2)} | ${f(peak.gold, 2)} (${peak.iteration}, ${f(peak.sqrt_kl, 2)}) | ${f(last.gold, 2)} | ${f(peak.gold - last.gold, 2)} | ${proxyUp ? 'yes (within 0.5)' : 'no'} |`);
}
