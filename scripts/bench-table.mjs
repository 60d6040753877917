// Prints the benchmark's rows as a table, each timing also as a ratio to PyTorch CPU for the
// same preset, and writes them all to a JSON file.
import { readFileSync, writeFileSync } from 'node:fs';

const [input, output] = process.argv.slice(2);
const rows = readFileSync(input, 'utf8').split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
const reference = Object.fromEntries(rows.filter((r) => r.backend === 'pytorch-cpu').map((r) => [r.preset, r]));
const fmt = (v, digits = 1) => (v == null || !Number.isFinite(v) ? '—' : v.toFixed(digits));
const ratio = (v, ref) => (ref && v ? `${(v / ref).toFixed(1)}x` : '—');
const header = ['preset', 'backend', 'ms/step', '×torch', 'ms/token', '×torch', 'ms/PPO iter', '×torch', 'disp/step', 'disp/token', 'subm/step', 'reads/step', 'reads/rollout'];
const lines = [header];
for (const r of rows) {
  const ref = reference[r.preset];
  lines.push([
    r.preset, r.backend,
    fmt(r.train_step_ms), ratio(r.train_step_ms, ref?.train_step_ms),
    fmt(r.token_ms, 2), ratio(r.token_ms, ref?.token_ms),
    fmt(r.ppo_iteration_ms, 0), ratio(r.ppo_iteration_ms, ref?.ppo_iteration_ms),
    fmt(r.dispatches_per_step, 0), fmt(r.dispatches_per_token, 0), fmt(r.submissions_per_step, 0),
    fmt(r.readbacks_per_step, 0), fmt(r.readbacks_per_rollout, 0),
  ]);
}
const widths = header.map((_, i) => Math.max(...lines.map((l) => String(l[i]).length)));
for (const l of lines) console.log(l.map((c, i) => String(c).padStart(widths[i])).join('  '));
// The page's split rows also time whole steps on their own path, alternating with the split ones
// (the same moments of a noisy machine): the like-for-like ratio of one worker to several.
for (const r of rows.filter((r) => r.train_step_ms_one_worker != null)) {
  const speedup = (one, split) => (one && split ? `${(one / split).toFixed(2)}x` : '—');
  console.log(`\n${r.preset} · ${r.backend}, alternating with whole steps on the same path:`);
  console.log(`  train step     ${fmt(r.train_step_ms_one_worker)} ms whole, ${fmt(r.train_step_ms)} ms split: ${speedup(r.train_step_ms_one_worker, r.train_step_ms)} faster`);
  if (r.ppo_iteration_ms_one_worker != null) console.log(`  PPO iteration  ${fmt(r.ppo_iteration_ms_one_worker, 0)} ms whole, ${fmt(r.ppo_iteration_ms, 0)} ms split: ${speedup(r.ppo_iteration_ms_one_worker, r.ppo_iteration_ms)} faster`);
}
// cubecl's kernel names are full Rust paths with generics: keep the last segment of each path.
function shortKernel(name) {
  const short = name.replace(/(?:[A-Za-z_][A-Za-z0-9_]*::)+/g, '');
  return short.length > 100 ? `${short.slice(0, 97)}…` : short;
}
// Where a training step's dispatches go (cubecl's kernel names, launches per step).
for (const r of rows.filter((r) => r.step_kernels?.length)) {
  console.log(`\n${r.preset} · ${r.backend}: the most launched kernels of a training step (of ${fmt(r.dispatches_per_step, 0)})`);
  for (const [kernel, n] of r.step_kernels.slice(0, 12)) console.log(`  ${fmt(n, 0).padStart(5)}  ${shortKernel(kernel)}`);
  if (!r.token_kernels?.length) continue;
  console.log(`${r.preset} · ${r.backend}: the most launched kernels per generated token (of ${fmt(r.dispatches_per_token, 0)})`);
  for (const [kernel, n] of r.token_kernels.slice(0, 12)) console.log(`  ${fmt(n, 1).padStart(5)}  ${shortKernel(kernel)}`);
}
writeFileSync(output, JSON.stringify({ measured: new Date().toISOString(), rows }, null, 2));
console.error(`wrote ${output}`);
