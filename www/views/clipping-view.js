// The clipping view: L^CLIP as a function of ρ, one curve per sign of Â (drawn as L^CLIP/|Â|),
// with every real token of the rollout placed on the curve of its sign. For Â > 0,
// L/|Â| = min(ρ, clip(ρ, 1−ε, 1+ε)); for Â < 0, L/|Â| = −max(ρ, clip(ρ, 1−ε, 1+ε)) (the min of
// two negative numbers picks the larger |·|). Where the curve is flat the clipped term is the
// active one and the token's gradient is zero.
import { el } from './common.js';
import { XYChart } from '../charts.js';
import { equationLink, inlineMath } from '../equations.js';

const clip = (rho, eps) => Math.min(Math.max(rho, 1 - eps), 1 + eps);
/** L^CLIP / |Â| for Â of sign `sign` (+1 or −1). */
export const surrogate = (rho, eps, sign) => (sign >= 0 ? Math.min(rho, clip(rho, eps)) : -Math.max(rho, clip(rho, eps)));

const GRID = Array.from({ length: 201 }, (_, i) => i / 100);

export function clippingView(store) {
  const host = el('div', { class: 'chart-host clip-host' });
  const counts = el('p', { class: 'caption clip-counts', 'aria-live': 'polite' });
  const node = el('div', { class: 'chart clipping-view' },
    el('h3', { text: 'Clipping view: where the update goes flat' }),
    host,
    el('p', { class: 'caption' },
      inlineMath(String.raw`L^{\text{CLIP}} = \min\big(\rho\hat A,\ \mathrm{clip}(\rho, 1-\epsilon, 1+\epsilon)\,\hat A\big)`),
      ' drawn divided by |Â|: for Â > 0 it is min(ρ, clip(ρ)) and goes flat above 1 + ε; for Â < 0 it is −max(ρ, clip(ρ)) and goes flat below 1 − ε. Each dot is one token of this rollout at its ρ after its latest update (ρ = 1 before any). Where a token sits on a flat part the clipped term is the one the min picks: the objective does not change with ρ there, so that token contributes zero gradient and the update stops pushing it. ',
      equationLink('clip')),
    counts);
  // Mount-time width: the host is in the page once the panel is appended; the chart resizes itself.
  let chart = null;
  let eps = null;

  function ensure() {
    chart ??= new XYChart(host, {
      title: 'L^CLIP / |Â| against ρ',
      xLabel: 'ρ = π_θ / π_θold',
      yLabel: 'L^CLIP / |Â|',
      height: 280,
      series: [
        { label: 'Â > 0: min(ρ, clip ρ)', line: true, points: false, color: '#16a34a' },
        { label: 'Â < 0: −max(ρ, clip ρ)', line: true, points: false, color: '#dc2626' },
        { label: 'tokens, Â > 0', color: '#15803d' },
        { label: 'tokens, Â < 0', color: '#b91c1c' },
        { label: 'clipped tokens (flat: zero gradient)', color: '#ea580c' },
      ],
    });
    // XYChart's point filter lists every index whatever `points.show` says, so uPlot would mark
    // all 201 samples of each curve: the curves are lines only.
    for (const si of [1, 2]) chart.plot.series[si].points.filter = () => null;
    return chart;
  }

  function drawCurves(epsilon) {
    const c = ensure();
    if (epsilon === eps) return;
    eps = epsilon;
    c.set(0, GRID, GRID.map((r) => surrogate(r, eps, 1)));
    c.set(1, GRID, GRID.map((r) => surrogate(r, eps, -1)));
    // Each edge: a dashed line over the whole height, and its label (a zero-length segment) low
    // on the left of it, where neither curve runs.
    c.setGuides([1 - eps, 1 + eps].flatMap((x, i) => [
      { x1: x, y1: -2.3, x2: x, y2: 1.5, color: '#6b7280' },
      { x1: x, y1: -1.75, x2: x, y2: -1.75, label: i ? '1 + ε' : '1 − ε', color: '#6b7280' },
    ]));
  }

  return {
    node,
    mount() { drawCurves(0.2); },
    /** Places the batch's (ρ, Â) points of `record` (ε from the record). */
    setRecord(record) {
      drawCurves(record.cliprange);
      const c = ensure();
      const groups = [[[], []], [[], []], [[], []]];
      for (const p of record.points) {
        const sign = p.advantage >= 0 ? 1 : -1;
        const g = p.clipped ? 2 : sign > 0 ? 0 : 1;
        groups[g][0].push(p.ratio);
        groups[g][1].push(surrogate(p.ratio, eps, sign));
      }
      // All series first, then one redraw (XYChart.set redraws each time).
      groups.forEach((xy, i) => { c.data[2 + i] = xy; });
      c.draw();
      host.dataset.tokens = String(record.points.length);
      host.dataset.clipped = String(groups[2][0].length);
      const rhos = record.points.map((p) => p.ratio);
      const lo = Math.min(...rhos);
      const hi = Math.max(...rhos);
      counts.textContent = `${record.points.length} tokens in the rollout of ${record.batch} completions · ${groups[2][0].length} clipped (${(100 * groups[2][0].length / Math.max(1, record.points.length)).toFixed(1)}%) · ρ from ${lo.toFixed(3)} to ${hi.toFixed(3)} · ε = ${eps.toFixed(2)}`;
    },
    clear() {
      if (!chart) return;
      for (let i = 2; i < 5; i++) chart.data[i] = [[], []];
      chart.draw();
      host.dataset.tokens = '0';
      counts.textContent = '';
    },
  };
}
