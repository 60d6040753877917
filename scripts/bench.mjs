// The browser half of the benchmark: serves dist/ and opens bench.html in headless Chromium,
// once on the CPU backend and once on WebGPU; prints each result row as a JSON line.
//   node scripts/bench.mjs [--cpu-presets micro,tiny,small] [--webgpu-presets micro,tiny]
//                          [--cpu-matmul fastest,simd128,flex]
// `--cpu-matmul` runs the CPU backend once per matrix product listed (src/engine/cpu/matmul.rs); rows of
// any but `fastest` are named after it, e.g. `browser-cpu [flex gemm]`.
import { serve, launch } from '../tests/e2e/harness.mjs';

const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const runs = [
  ...arg('--cpu-matmul', 'fastest').split(',').map((matmul) => ({ backend: 'cpu', presets: arg('--cpu-presets', 'micro,tiny,small'), plan: 'full', matmul })),
  // WebGPU here is SwiftShader (a GPU emulated on the CPU): a few repetitions only.
  { backend: 'webgpu', presets: arg('--webgpu-presets', 'micro,tiny'), plan: arg('--webgpu-plan', 'quick') },
].filter((r) => r.presets);

const server = await serve();
const browser = await launch();
try {
  for (const run of runs) {
    const page = await browser.newPage();
    const started = Date.now();
    await page.goto(`${server.url}bench.html?backend=${run.backend}&presets=${run.presets}&plan=${run.plan}&matmul=${run.matmul ?? 'fastest'}`);
    await page.waitForFunction(() => window.__bench, null, { timeout: 60 * 60 * 1000, polling: 1000 });
    const result = await page.evaluate(() => window.__bench);
    if (!result.ok) throw new Error(`${run.backend}: ${result.error}`);
    process.stderr.write(`bench: ${run.backend} (${result.backend.adapter}) took ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
    // The CPU backend's matrix products: `relaxed-simd fma` where the page loaded that kernel.
    const cpu = result.backend.backend === 'cpu';
    const kernel = cpu ? { matmul_kernel: result.matmul_kernel } : {};
    const named = (backend) => (cpu && run.matmul !== 'fastest' ? `${backend} [${result.matmul_kernel}]` : backend);
    for (const row of result.rows) console.log(JSON.stringify({ ...row, backend: named(row.backend), adapter: result.backend.adapter, ...kernel }));
    await page.close();
  }
} finally {
  await browser.close();
  await server.close();
}
