// Summarizes scripts/methods.sh's runs: per method, the mean over seeds (and each seed's values).
//   node scripts/methods-table.mjs OUT_DIR
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.argv[2];
const f = (v, d = 3) => (Number.isFinite(v) ? v.toFixed(d) : '—');
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
console.log('| method | r_φ score | gold | KL(π‖π_ref) | s/iteration | per seed (gold) |');
console.log('|---|---|---|---|---|---|');
for (const method of ['ppo', 'grpo', 'rloo', 'reinforce', 'gspo']) {
  const runs = [1, 2, 3].map((seed) => join(dir, `method-${method}-${seed}.jsonl`)).filter(existsSync)
    .map((file) => readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l)).find((o) => o.summary)).filter(Boolean);
  if (!runs.length) continue;
  const ref = runs[0].reference;
  console.log(`| ${method.toUpperCase()} | ${f(mean(runs.map((r) => r.policy.score)))} | ${f(mean(runs.map((r) => r.policy.gold)))} | ${f(mean(runs.map((r) => r.policy.kl)))} | ${f(mean(runs.map((r) => r.seconds_per_iteration)), 2)} | ${runs.map((r) => f(r.policy.gold)).join(' / ')} (π_ref ${f(ref.gold)}) |`);
}
