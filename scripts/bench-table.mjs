// Prints the benchmark's rows as a table, each timing also as a ratio to PyTorch CPU for the
// same preset, and writes them all to a JSON file.
//
// With several rounds (`ROUNDS=n scripts/bench.sh`: every row tagged with its `round`), each
// ratio is taken within its round, against that round's PyTorch figure, so both sides saw the
// same moments of a shared machine; the table shows the median of the rounds' values and ratios,
// and the train step's ratios of every round are listed below it.
import { readFileSync, writeFileSync } from 'node:fs';

const [input, output] = process.argv.slice(2);
const rows = readFileSync(input, 'utf8').split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
const roundOf = (r) => r.round ?? 1;
const rounds = [...new Set(rows.map(roundOf))].sort((a, b) => a - b);
const fmt = (v, digits = 1) => (v == null || !Number.isFinite(v) ? '—' : v.toFixed(digits));

function median(values) {
  const finite = values.filter((v) => v != null && Number.isFinite(v)).sort((a, b) => a - b);
  if (!finite.length) return null;
  const mid = finite.length >> 1;
  return finite.length % 2 ? finite[mid] : (finite[mid - 1] + finite[mid]) / 2;
}

// PyTorch's row for a preset in a round.
const torch = new Map(rows.filter((r) => r.backend === 'pytorch-cpu').map((r) => [`${r.preset}/${roundOf(r)}`, r]));
/** `field` of row `r` over PyTorch's in the same round (null without both). */
function ratioInRound(r, field) {
  const ref = torch.get(`${r.preset}/${roundOf(r)}`)?.[field];
  return ref && r[field] ? r[field] / ref : null;
}

// One line per preset and backend, in first-seen order: the median over its rounds.
const groups = new Map();
for (const r of rows) {
  const key = `${r.preset}/${r.backend}`;
  if (!groups.has(key)) groups.set(key, []);
  groups.get(key).push(r);
}
const TIMINGS = ['train_step_ms', 'token_ms', 'ppo_iteration_ms'];
const COUNTS = ['dispatches_per_step', 'dispatches_per_token', 'submissions_per_step', 'readbacks_per_step', 'readbacks_per_rollout'];
const summary = [...groups.values()].map((group) => {
  const line = { preset: group[0].preset, backend: group[0].backend, rounds: group.length };
  if (group[0].matmul_kernel) line.matmul_kernel = group[0].matmul_kernel;
  for (const field of [...TIMINGS, ...COUNTS, 'train_step_ms_one_worker', 'ppo_iteration_ms_one_worker']) line[field] = median(group.map((r) => r[field]));
  const timelines = group.map((r) => r.split_step_timeline_ms).filter(Boolean);
  if (timelines.length) {
    line.split_step_timeline_ms = Object.fromEntries(Object.keys(timelines[0]).map((k) => [k, median(timelines.map((t) => t[k]))]));
  }
  for (const field of TIMINGS) {
    const ratios = group.map((r) => ratioInRound(r, field)).filter((v) => v != null);
    line[`${field}_torch_ratio`] = median(ratios);
    line[`${field}_torch_ratios`] = ratios;
  }
  return line;
});

const ratio = (v) => (v == null ? '—' : `${v.toFixed(1)}x`);
const header = ['preset', 'backend', 'ms/step', '×torch', 'ms/token', '×torch', 'ms/PPO iter', '×torch', 'disp/step', 'disp/token', 'subm/step', 'reads/step', 'reads/rollout'];
const lines = [header];
for (const s of summary) {
  lines.push([
    s.preset, s.backend,
    fmt(s.train_step_ms), ratio(s.train_step_ms_torch_ratio),
    fmt(s.token_ms, 2), ratio(s.token_ms_torch_ratio),
    fmt(s.ppo_iteration_ms, 0), ratio(s.ppo_iteration_ms_torch_ratio),
    fmt(s.dispatches_per_step, 0), fmt(s.dispatches_per_token, 0), fmt(s.submissions_per_step, 0),
    fmt(s.readbacks_per_step, 0), fmt(s.readbacks_per_rollout, 0),
  ]);
}
const kernels = [...new Set(summary.map((s) => s.matmul_kernel).filter(Boolean))];
if (kernels.length) console.log(`the page's CPU matrix products: ${kernels.join(', ')}`);
if (rounds.length > 1) console.log(`${rounds.length} rounds: each figure is the median of its rounds; each ratio is taken within a round, then the median`);
const widths = header.map((_, i) => Math.max(...lines.map((l) => String(l[i]).length)));
for (const l of lines) console.log(l.map((c, i) => String(c).padStart(widths[i])).join('  '));
if (rounds.length > 1) {
  console.log('\ntrain step against PyTorch, round by round:');
  for (const s of summary.filter((s) => s.train_step_ms_torch_ratios.length && s.backend !== 'pytorch-cpu')) {
    const within = (limit) => s.train_step_ms_torch_ratios.filter((v) => v <= limit).length;
    console.log(`  ${s.preset} · ${s.backend}: ${s.train_step_ms_torch_ratios.map((v) => v.toFixed(2)).join(', ')} (≤ 2x in ${within(2)} of ${s.train_step_ms_torch_ratios.length})`);
  }
}
// The page's split rows also time whole steps on their own path, alternating with the split ones
// (the same moments of a noisy machine): the like-for-like ratio of one worker to several.
for (const s of summary.filter((s) => s.train_step_ms_one_worker != null)) {
  const speedup = (one, split) => (one && split ? `${(one / split).toFixed(2)}x` : '—');
  console.log(`\n${s.preset} · ${s.backend}, alternating with whole steps on the same path${s.rounds > 1 ? ' (medians)' : ''}:`);
  console.log(`  train step     ${fmt(s.train_step_ms_one_worker)} ms whole, ${fmt(s.train_step_ms)} ms split: ${speedup(s.train_step_ms_one_worker, s.train_step_ms)} faster`);
  if (s.ppo_iteration_ms_one_worker != null) console.log(`  PPO iteration  ${fmt(s.ppo_iteration_ms_one_worker, 0)} ms whole, ${fmt(s.ppo_iteration_ms, 0)} ms split: ${speedup(s.ppo_iteration_ms_one_worker, s.ppo_iteration_ms)} faster`);
  const t = s.split_step_timeline_ms;
  if (t?.total != null) {
    console.log(`  a split train step, in ms from its start (the first helper; medians): θ and work ready ${fmt(t.plan)},`);
    console.log(`    at the helper after ${fmt(t.to_helper)} more; its gradient ${fmt(t.helper_gradient)}; its answer back in ${fmt(t.from_helper)};`);
    console.log(`    every helper answered at ${fmt(t.all_answered)}; sum, Adam and metrics ${fmt(t.sum_adam_metrics)}; step ${fmt(t.total)}`);
  }
}
// cubecl's kernel names are full Rust paths with generics: keep the last segment of each path.
function shortKernel(name) {
  const short = name.replace(/(?:[A-Za-z_][A-Za-z0-9_]*::)+/g, '');
  return short.length > 100 ? `${short.slice(0, 97)}…` : short;
}
// Where a training step's dispatches go (cubecl's kernel names, launches per step; first round).
for (const r of rows.filter((r) => r.step_kernels?.length && roundOf(r) === rounds[0])) {
  console.log(`\n${r.preset} · ${r.backend}: the most launched kernels of a training step (of ${fmt(r.dispatches_per_step, 0)})`);
  for (const [kernel, n] of r.step_kernels.slice(0, 12)) console.log(`  ${fmt(n, 0).padStart(5)}  ${shortKernel(kernel)}`);
  if (!r.token_kernels?.length) continue;
  console.log(`${r.preset} · ${r.backend}: the most launched kernels per generated token (of ${fmt(r.dispatches_per_token, 0)})`);
  for (const [kernel, n] of r.token_kernels.slice(0, 12)) console.log(`  ${fmt(n, 1).padStart(5)}  ${shortKernel(kernel)}`);
}
writeFileSync(output, JSON.stringify({ measured: new Date().toISOString(), rounds: rounds.length, summary, rows }, null, 2));
console.error(`wrote ${output}`);
