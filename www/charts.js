// Line charts on uPlot: small, fast, canvas-based, well kept, and made for streaming series —
// what a chart of thousands of training steps redrawn a few times a second needs (Observable
// Plot and d3 rebuild SVG on every update). Charts never import the model: they draw whatever
// series they are given, and redraw at most a few times a second.
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

const COLORS = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2', '#4b5563'];
const REDRAW_MS = 250;

// Charts off screen are not drawn (their data still grows); one coming into view draws then,
// each after its own small delay, so that many charts never redraw within one task.
let staggerIndex = 0;
const visibility = new IntersectionObserver((entries) => {
  for (const entry of entries) {
    const chart = entry.target.__chart;
    if (!chart) continue;
    chart.visible = entry.isIntersecting;
    if (chart.visible && chart.dirty && !chart.timer) {
      chart.timer = setTimeout(() => { chart.timer = null; chart.draw(); }, 16 * (staggerIndex++ % 8));
    }
  }
}, { rootMargin: '200px' });

/**
 * A chart's height at a given width: its full height from 480 px up, less on a narrower host (a
 * phone), down to 80 %, so that a panel with a chart fits a phone's screen.
 */
function heightAt(full, width) {
  return Math.round(full * Math.min(1, Math.max(0.8, width / 480)));
}

/** Width of a y axis that fits its widest tick label. */
function axisSize(u, values, axisIdx, cycleNum) {
  const axis = u.axes[axisIdx];
  if (cycleNum > 1) return axis._size; // settled: avoid resizing loops
  let size = (axis.ticks.size ?? 0) + (axis.gap ?? 0) + (axis.label ? 20 : 0);
  const longest = (values ?? []).reduce((w, v) => Math.max(w, String(v ?? '').length), 0);
  size += Math.max(4, longest) * 7 + 6;
  return Math.ceil(size);
}

export class LineChart {
  /**
   * @param {HTMLElement} host
   * @param {{title: string, series: {key: string, label: string, dash?: boolean}[], xLabel?: string, height?: number, bands?: {y: number, label: string}[]}} spec
   */
  constructor(host, spec) {
    this.spec = spec;
    this.x = [];
    this.ys = spec.series.map(() => []);
    this.dirty = false;
    this.lastDraw = 0;
    this.guides = spec.guides ?? [];
    const width = Math.max(280, host.clientWidth || 420);
    this.fullHeight = spec.height ?? 200;
    const guidePlugin = {
      hooks: {
        draw: [(u) => {
          const ctx = u.ctx;
          for (const g of this.guides) {
            if (g.y == null || !Number.isFinite(g.y)) continue;
            const y = u.valToPos(g.y, 'y', true);
            ctx.save();
            ctx.strokeStyle = g.color ?? '#6b7280';
            ctx.setLineDash([6, 4]);
            ctx.beginPath();
            ctx.moveTo(u.bbox.left, y);
            ctx.lineTo(u.bbox.left + u.bbox.width, y);
            ctx.stroke();
            ctx.fillStyle = g.color ?? '#6b7280';
            ctx.font = `${12 * devicePixelRatio}px sans-serif`;
            ctx.textAlign = 'left';
            ctx.fillText(g.label, u.bbox.left + 6, y - 4);
            ctx.restore();
          }
        }],
      },
    };
    this.plot = new uPlot({
      title: spec.title,
      width,
      height: heightAt(this.fullHeight, width),
      plugins: [guidePlugin],
      scales: { x: { time: false } },
      // The y axis grows with its labels, so small values (".0010") are not cut off.
      axes: [{ label: spec.xLabel ?? 'step' }, { size: axisSize }],
      series: [
        { label: spec.xLabel ?? 'step' },
        ...spec.series.map((s, i) => ({
          label: s.label,
          stroke: COLORS[i % COLORS.length],
          width: 2,
          dash: s.dash ? [6, 4] : undefined,
          spanGaps: true,
          points: { show: !!s.points },
        })),
      ],
    }, [[], ...spec.series.map(() => [])], host);
    this.element = host;
    this.visible = true;
    this.stagger = 16 * (staggerIndex++ % 8);
    host.__chart = this;
    visibility.observe(host);
    new ResizeObserver(() => {
      const w = Math.max(280, host.clientWidth);
      if (Math.abs(w - this.plot.width) > 4) this.plot.setSize({ width: w, height: heightAt(this.fullHeight, w) });
    }).observe(host);
  }

  /** Adds one x with the values present in `metrics` (missing keys leave a gap). */
  push(x, metrics) {
    this.x.push(x);
    this.spec.series.forEach((s, i) => {
      const v = metrics[s.key];
      this.ys[i].push(Number.isFinite(v) ? v : null);
    });
    this.dirty = true;
    // Read by the end-to-end tests: how many values the chart holds (drawn or not yet).
    this.element.dataset.points = String(this.points);
    this.maybeDraw();
  }

  setGuides(guides) { this.guides = guides; this.dirty = true; this.maybeDraw(); }

  clear() {
    this.x = [];
    this.ys = this.spec.series.map(() => []);
    this.dirty = true;
    this.draw();
  }

  /** Number of drawn points of the first series that are numbers. */
  get points() { return this.ys.reduce((n, ys) => n + ys.filter((v) => v != null).length, 0); }

  maybeDraw() {
    if (!this.visible || this.timer) return; // drawn when it comes into view
    const wait = Math.max(0, REDRAW_MS - (performance.now() - this.lastDraw)) + this.stagger;
    this.timer = setTimeout(() => { this.timer = null; this.draw(); }, wait);
  }

  draw() {
    if (!this.dirty) return;
    this.dirty = false;
    this.lastDraw = performance.now();
    this.plot.setData([this.x, ...this.ys]);
    // Read by the end-to-end tests: how many values the chart holds, and how many are drawn
    // (fewer while it waits off screen to be drawn).
    this.element.dataset.points = String(this.points);
    this.element.dataset.drawn = String(this.points);
  }
}

/**
 * An x–y chart of point clouds and curves (uPlot's faceted mode): each series is its own list
 * of (x, y) pairs, so x need not be shared or sorted. For scatters (r(y_w) against r(y_l)), the
 * clipping view (L^CLIP against ρ) and the reward–KL frontier.
 */
export class XYChart {
  /**
   * @param {HTMLElement} host
   * @param {{title: string, xLabel: string, yLabel: string, height?: number,
   *          series: {label: string, line?: boolean, points?: boolean, color?: string, dash?: boolean}[],
   *          guides?: {x1: number, y1: number, x2: number, y2: number, label?: string}[]}} spec
   */
  constructor(host, spec) {
    this.spec = spec;
    this.element = host;
    this.data = spec.series.map(() => [[], []]);
    this.segments = spec.guides ?? [];
    const width = Math.max(280, host.clientWidth || 420);
    this.fullHeight = spec.height ?? 240;
    const segmentPlugin = {
      hooks: {
        draw: [(u) => {
          const ctx = u.ctx;
          for (const g of this.segments) {
            ctx.save();
            ctx.strokeStyle = g.color ?? '#9ca3af';
            ctx.setLineDash([5, 4]);
            ctx.beginPath();
            ctx.moveTo(u.valToPos(g.x1, 'x', true), u.valToPos(g.y1, 'y', true));
            ctx.lineTo(u.valToPos(g.x2, 'x', true), u.valToPos(g.y2, 'y', true));
            ctx.stroke();
            if (g.label) {
              ctx.fillStyle = g.color ?? '#6b7280';
              ctx.font = `${11 * devicePixelRatio}px sans-serif`;
              ctx.fillText(g.label, u.valToPos(g.x2, 'x', true) - 60 * devicePixelRatio, u.valToPos(g.y2, 'y', true) + 14 * devicePixelRatio);
            }
            ctx.restore();
          }
        }],
      },
    };
    this.plot = new uPlot({
      mode: 2,
      title: spec.title,
      width,
      height: heightAt(this.fullHeight, width),
      plugins: [segmentPlugin],
      scales: { x: { time: false, auto: true }, y: { auto: true } },
      axes: [{ label: spec.xLabel }, { label: spec.yLabel, size: axisSize }],
      legend: { live: false },
      series: [
        {},
        ...spec.series.map((s, i) => ({
          label: s.label,
          stroke: s.color ?? COLORS[i % COLORS.length],
          fill: s.points !== false && !s.line ? `${s.color ?? COLORS[i % COLORS.length]}55` : undefined,
          width: s.line ? 2 : 1,
          dash: s.dash ? [6, 4] : undefined,
          paths: s.line ? undefined : () => null,
          // In facet mode uPlot walks mode 1's x-index range, which is empty here: ask for every point.
          points: { show: s.points ?? !s.line, size: 6, filter: (u, si, show) => (show ? u.data[si][0].map((_, k) => k) : null) },
        })),
      ],
    }, [null, ...this.data], host);
    new ResizeObserver(() => {
      const w = Math.max(280, host.clientWidth);
      if (Math.abs(w - this.plot.width) > 4) this.plot.setSize({ width: w, height: heightAt(this.fullHeight, w) });
    }).observe(host);
  }

  /** Replaces series `i`'s points. */
  set(i, xs, ys) {
    this.data[i] = [Array.from(xs), Array.from(ys)];
    this.draw();
  }

  setGuides(segments) { this.segments = segments; this.draw(); }

  get points() { return this.data.reduce((n, [xs]) => n + xs.length, 0); }

  draw() {
    this.plot.setData([null, ...this.data]);
    this.element.dataset.points = String(this.points);
    this.element.dataset.drawn = String(this.points);
  }
}
