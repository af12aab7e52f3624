// Reusable live-chart module: the notebook widget (js/widget.ts) and the JupyterLab
// sidebar both build on it. No anywidget or JupyterLab dependency: give it an element and
// feed `Dashboard.store` with batches.
//
//   const dash = new Dashboard(el, { windowS: 300, height: 140 });
//   const cpu = dash.panel("CPU");
//   cpu.headline({ metric: "cpu.util_pct" });
//   cpu.chart({ unit: "pct", series: [{ name: "cpu.util_pct", label: "all cores" }] });
//   dash.ingest(batch);          // redraws at most once per animation frame
//   dash.dispose();
//
// Colours, fonts and lines come from CSS custom properties (`--tl-*`, defined in
// charts.css from JupyterLab's `--jp-*` variables with fallbacks for VS Code and plain
// pages), re-read when the page's theme changes.

import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import "./charts.css";
import { BYTE_INCRS, FORMATTERS, MISSING, formatClock, formatTicks, formatValue, niceMax, unitOf as unitOfMetric, type Unit } from "./format";
import { SeriesStore, coreNames, type Batch } from "./series";
import { describeChart } from "./a11y";

export * from "./format";
export * from "./series";

// ---------------------------------------------------------------------------
// Theme

export interface Theme {
  bg: string;
  fg: string;
  dim: string;
  grid: string;
  border: string;
  font: string;
  palette: string[];
  warn: string;
  error: string;
  track: string;
}

const FALLBACK: Theme = {
  bg: "#ffffff",
  fg: "rgba(0,0,0,0.87)",
  dim: "rgba(0,0,0,0.54)",
  grid: "rgba(0,0,0,0.08)",
  border: "#e0e0e0",
  font: "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif",
  palette: ["#1976d2", "#f57c00", "#388e3c", "#8e24aa"],
  warn: "#f57c00",
  error: "#d32f2f",
  track: "#eeeeee",
};

/**
 * Reads the `--tl-*` tokens at `el` (charts.css derives them from JupyterLab's `--jp-*`
 * variables, VS Code's `--vscode-*` ones or built-in light/dark defaults); light defaults
 * where the CSS is not loaded.
 */
export function readTheme(el: Element): Theme {
  const cs = getComputedStyle(el);
  const get = (name: string, fb: string) => cs.getPropertyValue(`--tl-${name}`).trim() || fb;
  const F = FALLBACK;
  return {
    bg: get("bg", F.bg),
    fg: get("fg", F.fg),
    dim: get("fg-dim", F.dim),
    grid: get("grid", F.grid),
    border: get("border", F.border),
    font: get("font", F.font),
    palette: F.palette.map((c, i) => get(`c${i + 1}`, c)),
    warn: get("warn", F.warn),
    error: get("error", F.error),
    track: get("track", F.track),
  };
}

let probe: CanvasRenderingContext2D | null = null;
const rgbaCache = new Map<string, string>();

/** Any CSS colour with the given alpha, as rgba(). */
export function withAlpha(color: string, alpha: number): string {
  const key = `${color}|${alpha}`;
  let out = rgbaCache.get(key);
  if (out) return out;
  probe ??= document.createElement("canvas").getContext("2d");
  if (!probe) return color;
  probe.fillStyle = "#000";
  probe.fillStyle = color;
  const c = String(probe.fillStyle);
  let r = 0;
  let g = 0;
  let b = 0;
  if (c.startsWith("#")) {
    r = parseInt(c.slice(1, 3), 16);
    g = parseInt(c.slice(3, 5), 16);
    b = parseInt(c.slice(5, 7), 16);
  } else {
    const m = c.match(/[\d.]+/g);
    if (m) [r, g, b] = m.map(Number);
  }
  out = `rgba(${r},${g},${b},${alpha})`;
  if (rgbaCache.size > 512) rgbaCache.clear();
  rgbaCache.set(key, out);
  return out;
}

function colorOf(theme: Theme, c: string | number | undefined, i: number): string {
  if (typeof c === "number") return theme.palette[c % theme.palette.length];
  if (c === "dim") return theme.dim;
  if (c === "warn") return theme.warn;
  if (c === "error") return theme.error;
  return c || theme.palette[i % theme.palette.length];
}

// ---------------------------------------------------------------------------
// DOM helpers

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  cls?: string,
  attrs?: Record<string, string>,
  text?: string,
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (attrs) for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (text != null) e.textContent = text;
  return e;
}

/** Sets text only when it changed (cheap at 60 Hz, keeps selections stable). */
function setText(e: Element, t: string): void {
  if (e.textContent !== t) e.textContent = t;
}

/** Anything the dashboard redraws and disposes. */
export interface Part {
  update(ctx: DrawContext): void;
  /** Called after a theme change. */
  restyle?(theme: Theme): void;
  /** Called with the new chart height (px). */
  setHeight?(h: number): void;
  dispose(): void;
}

export interface DrawContext {
  store: SeriesStore;
  /** Visible time range (epoch seconds). */
  x0: number;
  x1: number;
  /** Latest values older than this (s) count as absent. */
  staleS: number;
  theme: Theme;
}

// ---------------------------------------------------------------------------
// Headline numbers

export interface HeadlineSpec {
  /** Metric shown; also the element's `data-metric`. */
  metric: string;
  /** Small caption after the value ("load", "read"). */
  label?: string;
  /** Custom text from the current value; defaults to the unit of the metric name. */
  format?: (v: number, ctx: DrawContext) => string;
  /** Extra class: "tl-big" for the panel's main number. */
  cls?: string;
  /** Colour swatch (palette index) shown before the value. */
  swatch?: number;
  /** Hide while the value is missing or zero (swap on a machine without swap). */
  optional?: boolean;
}

export class Headline implements Part {
  readonly el: HTMLElement;
  readonly value: HTMLElement;
  #swatch?: HTMLElement;

  #spec: HeadlineSpec;

  constructor(parent: HTMLElement, spec: HeadlineSpec) {
    this.#spec = spec;
    this.el = h("span", `tl-headline ${spec.cls ?? ""}`.trim());
    if (spec.swatch != null) {
      this.#swatch = h("i", "tl-swatch");
      this.el.append(this.#swatch);
    }
    this.value = h("span", "tl-value", { "data-metric": spec.metric }, MISSING);
    this.el.append(this.value);
    if (spec.label) this.el.append(h("span", "tl-caption", undefined, spec.label));
    parent.append(this.el);
  }

  update(ctx: DrawContext): void {
    const v = ctx.store.latest(this.#spec.metric, ctx.staleS);
    const t = Number.isNaN(v) ? MISSING : this.#spec.format ? this.#spec.format(v, ctx) : FORMATTERS[unitOfMetric(this.#spec.metric)](v);
    setText(this.value, t);
    if (this.#spec.optional) this.el.hidden = !(v > 0);
    const dv = Number.isNaN(v) ? "" : String(v);
    if (this.value.getAttribute("data-value") !== dv) this.value.setAttribute("data-value", dv);
    if (this.#swatch && this.#spec.swatch != null) this.#swatch.style.background = colorOf(ctx.theme, this.#spec.swatch, 0);
  }

  dispose(): void {
    this.el.remove();
  }
}

// ---------------------------------------------------------------------------
// Line charts (uPlot)

export interface SeriesSpec {
  /** Metric name (column in the store). */
  name: string;
  label: string;
  /** Palette index, "dim"/"warn"/"error", or a CSS colour; default: next palette colour. */
  color?: string | number;
  /** Dashed reference line (limits). */
  dash?: boolean;
  /** Gradient fill under the line (default: true for the first series, unless dashed). */
  fill?: boolean;
  /** Value used where the column is absent (e.g. a limit known from `init`). */
  fallback?: () => number | null | undefined;
  /** Hide this series from the legend. */
  noLegend?: boolean;
}

export interface ChartSpec {
  series: SeriesSpec[];
  unit: Unit;
  /** "pct": fixed 0–100; "auto" (default): 0 to a rounded-up maximum of the visible data. */
  range?: "pct" | "auto";
  /** Minimum span of an auto y axis (so idle noise doesn't fill the chart). */
  minMax?: number;
  /** Chart height in px; default: the dashboard's height. */
  height?: number;
  /** Height as a fraction of the dashboard's chart height (small charts in GPU cards). */
  heightScale?: number;
  legend?: boolean;
  /** Caption over the chart. */
  title?: string;
  /**
   * x is a step number (a run's logged metrics), not a time: numeric x axis, y axis from
   * the data's own range, gaps between logged values joined.
   */
  steps?: boolean;
}

/** The value axis's unit, over its tick labels (which abbreviate: "16G", "20M"). */
const AXIS_UNITS: Record<Unit, string> = { bytes: "bytes", rate: "bytes/s", pct: "%", temp: "°C", watts: "W", number: "", value: "" };

// uPlot keeps every cursor-sync group it ever saw in a module-level map: recycle the keys
// of disposed dashboards so that map stays as small as the number of live dashboards.
let syncSeq = 0;
const freeSyncKeys: string[] = [];

export class Chart implements Part {
  readonly el: HTMLElement;
  #plotEl: HTMLElement;
  #legendEl?: HTMLElement;
  #hoverEl: HTMLElement;
  #legendVals: HTMLElement[] = [];
  #legendSw: HTMLElement[] = [];
  #u: uPlot | null = null;
  #width = 0;
  #height: number;
  #data: uPlot.AlignedData = [[]];
  #cursorIdx: number | null = null;
  #x: [number, number] = [0, 1];
  /** The newest value of the dashed (limit) series; 0 when none. */
  #limit = 0;
  #theme: Theme;

  constructor(
    parent: HTMLElement,
    readonly spec: ChartSpec,
    theme: Theme,
    height: number,
    syncKey: string,
    observe: (el: Element, cb: (w: number) => void) => () => void,
  ) {
    this.#syncKey = syncKey;
    this.#observe = observe;
    this.#theme = theme;
    this.#height = spec.height ?? Math.round(height * (spec.heightScale ?? 1));
    this.el = h("div", "tl-chart");
    // Above the plot: the value axis's unit (over the axis) and the chart's title, if any.
    const head = h("div", "tl-chart-head");
    head.append(h("span", "tl-axis-unit", undefined, spec.steps ? "value" : AXIS_UNITS[spec.unit]));
    if (spec.title) head.append(h("span", "tl-chart-title", undefined, spec.title));
    this.el.append(head);
    this.#plotEl = h("div", "tl-plot");
    this.#plotEl.style.height = `${this.#height}px`;
    this.#hoverEl = h("div", "tl-hover");
    this.#hoverEl.hidden = true;
    this.el.append(this.#plotEl);
    if (spec.legend !== false) {
      this.#legendEl = h("div", "tl-legend");
      spec.series.forEach((s, i) => {
        if (s.noLegend) return;
        const item = h("span", "tl-legend-item", { "data-series": s.name });
        const sw = h("i", s.dash ? "tl-swatch tl-swatch-dash" : "tl-swatch");
        const val = h("span", "tl-legend-value", undefined, MISSING);
        item.append(sw, h("span", "tl-legend-label", undefined, s.label), val);
        this.#legendEl!.append(item);
        this.#legendVals[i] = val;
        this.#legendSw[i] = sw;
      });
      this.el.append(this.#legendEl);
    }
    parent.append(this.el);
    this.#unobserve = this.#observe(this.#plotEl, (w) => this.#resize(w));
  }

  #unobserve: () => void;
  #syncKey: string;
  #observe: (el: Element, cb: (w: number) => void) => () => void;

  #build(): void {
    this.#u?.destroy();
    const th = this.#theme;
    const spec = this.spec;
    const unit = spec.unit;
    const steps = spec.steps;
    const font = `10px ${th.font}`;
    const axis = { stroke: th.dim, font, grid: { stroke: th.grid, width: 1 }, ticks: { show: false }, gap: 3 };
    const opts: uPlot.Options = {
      width: Math.max(this.#width, 50),
      height: this.#height,
      padding: [6, 8, 0, 0],
      legend: { show: false },
      cursor: {
        y: false,
        drag: { x: false, y: false, setScale: false },
        points: { size: 5, width: 1.5 },
        sync: { key: this.#syncKey },
      },
      select: { show: false, left: 0, top: 0, width: 0, height: 0 },
      scales: {
        x: { time: !steps, range: () => this.#x },
        y: {
          range: steps ? undefined : (_u, _min, max) => {
            if (spec.range === "pct") return [0, 100];
            // A limit line (dashed) at or above the data: the axis ends just above it.
            const lim = this.#limit;
            if (lim > 0 && !(max > lim)) return [0, lim * 1.03];
            const m = Math.max(Number.isFinite(max) ? max : 0, spec.minMax ?? 1);
            return [0, niceMax(m * 1.04, unit === "bytes")];
          },
        },
      },
      axes: [
        {
          ...axis,
          space: 64,
          size: 18,
          // Clock labels; one that would be cut at either edge is left out.
          values: steps ? undefined : (u, splits, _ax, _space, incr) => {
            const half = incr >= 60 ? 15 : 24;
            const w = u.over.clientWidth || u.width;
            return splits.map((v) => {
              const px = u.valToPos(v, "x");
              return px < half - 44 || px > w - half + 6 ? "" : formatClock(v, incr >= 60);
            });
          },
        },
        {
          ...axis,
          // Steps: a run's own numbers (a learning rate of 0.001 needs its digits).
          values: (_u, splits) => (steps ? splits.map(formatValue) : formatTicks(unit, splits)),
          size: 38,
          space: 22,
          ...(unit === "bytes" ? { incrs: BYTE_INCRS } : {}),
        },
      ],
      series: [
        {},
        ...spec.series.map((s, i) => {
          const color = colorOf(th, s.color, i);
          const fill = s.fill ?? (i === 0 && !s.dash);
          const ser: uPlot.Series = {
            label: s.label,
            stroke: color,
            width: s.dash ? 1.25 : 1.5,
            spanGaps: steps,
          };
          // Steps: uPlot's default, dots where the points are few (a metric logged once).
          if (!steps) ser.points = { show: false };
          if (s.dash) ser.dash = [4, 4];
          if (fill)
            ser.fill = (u: uPlot) => {
              const g = u.ctx.createLinearGradient(0, u.bbox.top, 0, u.bbox.top + u.bbox.height);
              g.addColorStop(0, withAlpha(color, 0.28));
              g.addColorStop(1, withAlpha(color, 0.03));
              return g;
            };
          return ser;
        }),
      ],
      hooks: {
        // The value axis's top, for tests and tools (a memory axis ends just above its limit).
        setScale: [(u, key) => key === "y" && this.#plotEl.setAttribute("data-y-max", String(Math.round(u.scales.y.max ?? 0)))],
        setCursor: [
          (u) => {
            this.#cursorIdx = u.cursor.idx ?? null;
            this.#updateLegend();
            this.#updateHover(u);
          },
        ],
      },
    };
    this.#u = new uPlot(opts, this.#data, this.#plotEl);
    this.#plotEl.append(this.#hoverEl);
    this.#legendSw.forEach((sw, i) => {
      if (sw) sw.style.setProperty("--tl-sw", colorOf(th, spec.series[i].color, i));
    });
  }

  #resize(w: number): void {
    w = Math.floor(w);
    if (w <= 0 || w === this.#width) return;
    this.#width = w;
    if (!this.#u) this.#build();
    else this.#u.setSize({ width: w, height: this.#height });
  }

  setHeight(hpx: number): void {
    const nh = this.spec.height ?? Math.round(hpx * (this.spec.heightScale ?? 1));
    if (nh === this.#height) return;
    this.#height = nh;
    this.#plotEl.style.height = `${nh}px`;
    this.#u?.setSize({ width: Math.max(this.#width, 50), height: nh });
  }

  restyle(theme: Theme): void {
    this.#theme = theme;
    if (this.#u) this.#build();
  }

  update(ctx: DrawContext): void {
    const { store } = ctx;
    const t = store.times();
    const cols: (number | null)[][] = this.spec.series.map((s) => {
      if (store.has(s.name)) return store.toChartArray(s.name);
      const v = s.fallback?.();
      return new Array(t.length).fill(v != null && Number.isFinite(v) ? v : null);
    });
    this.#data = [store.chartTimes(), ...cols] as uPlot.AlignedData;
    let lim = 0;
    this.spec.series.forEach((s, i) => {
      if (!s.dash) return;
      const col = cols[i];
      for (let j = col.length - 1; j >= 0; j--) if (col[j] != null) { lim = Math.max(lim, col[j]!); break; }
    });
    this.#limit = lim;
    this.#x = [ctx.x0, ctx.x1];
    if (!this.#u && this.#width > 0) this.#build();
    this.#u?.setData(this.#data);
    this.#updateLegend();
    describeChart(this.#plotEl, this.spec, ctx, this.#data); // a11y.ts: card name, text alternative
  }

  /** Time and values under the cursor (all charts of a dashboard follow one cursor). */
  #updateHover(u: uPlot): void {
    const i = u.cursor.idx;
    const el = this.#hoverEl;
    const t = i == null ? undefined : (this.#data[0][i] as number | undefined);
    if (i == null || t == null || u.cursor.left == null || u.cursor.left < 0) {
      el.hidden = true;
      return;
    }
    const fmt = FORMATTERS[this.spec.unit];
    el.textContent = "";
    el.append(h("span", "tl-hover-time", undefined, this.spec.steps ? `step ${t}` : formatClock(t)));
    this.spec.series.forEach((s, k) => {
      const v = (this.#data[k + 1] as (number | null)[] | undefined)?.[i];
      if (v == null && s.dash) return;
      const item = h("span", "tl-hover-item");
      const sw = h("i", s.dash ? "tl-swatch tl-swatch-dash" : "tl-swatch");
      sw.style.setProperty("--tl-sw", colorOf(this.#theme, s.color, k));
      item.append(sw, `${s.label} ${fmt(v)}`);
      el.append(item);
    });
    el.hidden = false;
    // Keep the box on the side away from the cursor.
    const left = u.cursor.left < u.bbox.width / devicePixelRatio / 2;
    el.classList.toggle("tl-hover-right", left);
  }

  #updateLegend(): void {
    if (!this.#legendEl) return;
    const fmt = FORMATTERS[this.spec.unit];
    const n = this.#data[0].length;
    this.spec.series.forEach((s, i) => {
      const el = this.#legendVals[i];
      if (!el) return;
      const col = this.#data[i + 1] as (number | null)[] | undefined;
      let v: number | null | undefined = null;
      if (col && n) {
        if (this.#cursorIdx != null) v = col[this.#cursorIdx];
        else for (let j = n - 1; j >= 0 && v == null; j--) v = col[j];
      }
      setText(el, fmt(v));
    });
  }

  dispose(): void {
    this.#unobserve();
    this.#u?.destroy();
    this.#u = null;
    this.el.remove();
  }
}

// ---------------------------------------------------------------------------
// Per-core strip

/** One small column per logical core, height and colour by its latest utilisation. */
export class CoreStrip implements Part {
  readonly el: HTMLElement;
  #canvas: HTMLCanvasElement;
  #label: HTMLElement;
  #width = 0;
  #vals: number[] = [];
  #theme: Theme;
  #unobserve: () => void;

  constructor(
    parent: HTMLElement,
    theme: Theme,
    observe: (el: Element, cb: (w: number) => void) => () => void,
    rowHeight = 22,
  ) {
    this.#rowHeight = rowHeight;
    this.#theme = theme;
    this.el = h("div", "tl-cores");
    this.#canvas = h("canvas", "tl-cores-canvas", { "data-metric": "cpu.core.*.util_pct" });
    this.#label = h("div", "tl-cores-label");
    this.el.append(this.#canvas, this.#label);
    parent.append(this.el);
    this.#canvas.addEventListener("mousemove", this.#onMove);
    this.#canvas.addEventListener("mouseleave", this.#onLeave);
    this.#unobserve = observe(this.el, (w) => {
      this.#width = Math.floor(w);
      this.#draw();
    });
  }

  #layout(): { cols: number; rows: number; cw: number } {
    const n = this.#vals.length;
    const w = Math.max(this.#width, 1);
    // Cells at least 4 px wide: wrap into rows when there are many cores.
    const perRow = Math.max(1, Math.min(n, Math.floor(w / 4)));
    const rows = Math.max(1, Math.ceil(n / perRow));
    const cols = Math.ceil(n / rows);
    return { cols, rows, cw: w / Math.max(cols, 1) };
  }

  #hovering = false;
  #rowHeight: number;

  #onMove = (e: MouseEvent) => {
    this.#hovering = true;
    const r = this.#canvas.getBoundingClientRect();
    const { cols, rows, cw } = this.#layout();
    const rh = r.height / rows;
    const i = Math.floor((e.clientY - r.top) / rh) * cols + Math.floor((e.clientX - r.left) / cw);
    const v = this.#vals[i];
    this.#label.textContent = i >= 0 && i < this.#vals.length ? `core ${i}: ${FORMATTERS.pct(v)}` : this.#summary();
  };

  #onLeave = () => {
    this.#hovering = false;
    this.#label.textContent = this.#summary();
  };

  #summary(): string {
    const n = this.#vals.length;
    if (!n) return "";
    const ok = this.#vals.filter((v) => Number.isFinite(v));
    const busy = ok.filter((v) => v >= 50).length;
    const max = ok.length ? Math.max(...ok) : NaN;
    return `${n} cores · ${busy} busy · max ${FORMATTERS.pct(max)}`;
  }

  update(ctx: DrawContext): void {
    const names = coreNames(ctx.store.names());
    this.#vals = names.map((n) => ctx.store.latest(n, ctx.staleS));
    this.el.hidden = names.length === 0;
    this.#canvas.setAttribute("data-values", this.#vals.map((v) => (Number.isFinite(v) ? Math.round(v) : "")).join(","));
    if (!this.#hovering) this.#label.textContent = this.#summary();
    this.#draw();
  }

  restyle(theme: Theme): void {
    this.#theme = theme;
    this.#draw();
  }

  #draw(): void {
    const n = this.#vals.length;
    if (!n || this.#width <= 0) return;
    const { cols, rows, cw } = this.#layout();
    const dpr = window.devicePixelRatio || 1;
    const rowH = rows > 1 ? Math.max(8, Math.round(this.#rowHeight / Math.min(rows, 3))) : this.#rowHeight;
    const H = rowH * rows;
    const cv = this.#canvas;
    if (cv.width !== Math.round(this.#width * dpr) || cv.height !== Math.round(H * dpr)) {
      cv.width = Math.round(this.#width * dpr);
      cv.height = Math.round(H * dpr);
      cv.style.width = `${this.#width}px`;
      cv.style.height = `${H}px`;
    }
    const g = cv.getContext("2d");
    if (!g) return;
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, this.#width, H);
    const gap = cw >= 8 ? 2 : 1;
    const th = this.#theme;
    for (let i = 0; i < n; i++) {
      const r = Math.floor(i / cols);
      const c = i % cols;
      const x = c * cw;
      const y = r * rowH;
      const w = Math.max(1, cw - gap);
      const hh = rowH - (rows > 1 ? 2 : 0);
      g.fillStyle = th.track;
      g.fillRect(x, y, w, hh);
      const v = this.#vals[i];
      if (!Number.isFinite(v)) continue;
      const f = Math.min(Math.max(v, 0), 100) / 100;
      const col = v >= 90 ? th.warn : th.palette[0];
      g.fillStyle = withAlpha(col, Math.round((0.35 + 0.65 * f) * 20) / 20);
      const fh = Math.max(f > 0 ? 1.5 : 0, hh * f);
      g.fillRect(x, y + hh - fh, w, fh);
    }
  }

  dispose(): void {
    this.#unobserve();
    this.#canvas.removeEventListener("mousemove", this.#onMove);
    this.#canvas.removeEventListener("mouseleave", this.#onLeave);
    this.el.remove();
  }
}

// ---------------------------------------------------------------------------
// Panels and the dashboard

export class Panel implements Part {
  readonly el: HTMLElement;
  readonly head: HTMLElement;
  readonly titleEl: HTMLElement;
  readonly subEl: HTMLElement;
  readonly badges: HTMLElement;
  readonly headlines: HTMLElement;
  readonly body: HTMLElement;
  #parts: Part[] = [];
  #custom: ((ctx: DrawContext) => void)[] = [];
  #dash: Dashboard;

  constructor(
    dash: Dashboard,
    parent: HTMLElement,
    title: string,
    sub = "",
    cls = "",
  ) {
    this.#dash = dash;
    this.el = h("section", `tl-panel ${cls}`.trim());
    this.head = h("header", "tl-panel-head");
    this.titleEl = h("span", "tl-panel-title", undefined, title);
    this.subEl = h("span", "tl-panel-sub", undefined, sub);
    this.badges = h("span", "tl-badges");
    this.head.append(this.titleEl, this.subEl, this.badges);
    this.headlines = h("div", "tl-headlines");
    this.body = h("div", "tl-panel-body");
    this.el.append(this.head, this.headlines, this.body);
    parent.append(this.el);
  }

  headline(spec: HeadlineSpec): Headline {
    const x = new Headline(this.headlines, spec);
    this.#parts.push(x);
    return x;
  }

  /** A line chart; pass `into` to place it somewhere other than the panel body (a row). */
  chart(spec: ChartSpec, into?: HTMLElement): Chart {
    const c = new Chart(into ?? this.body, spec, this.#dash.theme, this.#dash.height, this.#dash.syncKey, this.#dash.observe);
    this.#parts.push(c);
    return c;
  }

  cores(): CoreStrip {
    const s = new CoreStrip(this.body, this.#dash.theme, this.#dash.observe);
    this.#parts.push(s);
    return s;
  }

  /** A badge in the header, shown while `when` returns a truthy text (its content). */
  badge(cls: string, when: (ctx: DrawContext) => string | null | undefined, title?: (ctx: DrawContext) => string): HTMLElement {
    const b = h("span", `tl-badge ${cls}`);
    b.hidden = true;
    this.badges.append(b);
    this.#custom.push((ctx) => {
      const t = when(ctx);
      b.hidden = !t;
      if (t) setText(b, t);
      if (title) b.title = title(ctx);
    });
    return b;
  }

  /** Runs `fn` on every redraw (custom text, attributes). */
  onUpdate(fn: (ctx: DrawContext) => void): void {
    this.#custom.push(fn);
  }

  update(ctx: DrawContext): void {
    if (this.el.hidden) return;
    for (const p of this.#parts) p.update(ctx);
    for (const f of this.#custom) f(ctx);
  }

  restyle(theme: Theme): void {
    for (const p of this.#parts) p.restyle?.(theme);
  }

  setHeight(hpx: number): void {
    for (const p of this.#parts) p.setHeight?.(hpx);
  }

  dispose(): void {
    for (const p of this.#parts) p.dispose();
    this.#parts = [];
    this.#custom = [];
    this.el.remove();
  }
}

export interface DashboardOptions {
  /** Seconds of data kept and shown. */
  windowS?: number;
  /** Chart height in px (0 or missing: 140). */
  height?: number;
  /** Sampling interval (s): values older than 5 intervals (at least 5 s) count as absent. */
  intervalS?: number;
}

/**
 * Owns the series store, the panels, the redraw loop (one per animation frame at most),
 * resizing (one ResizeObserver) and theme tracking. `dispose()` frees all of it.
 */
export class Dashboard {
  readonly store = new SeriesStore();
  readonly root: HTMLElement;
  readonly syncKey = freeSyncKeys.pop() ?? `tl-sync-${++syncSeq}`;
  theme: Theme;
  height: number;
  windowS: number;
  intervalS: number;
  /** The view never starts before this x (a run's start); with `windowS` = Infinity it starts here. */
  start = -Infinity;
  #panels: Panel[] = [];
  #frame = 0;
  #ro: ResizeObserver | null = null;
  #roCallbacks = new Map<Element, (w: number) => void>();
  #mo: MutationObserver | null = null;
  #mq: MediaQueryList | null = null;
  #onDraw: (() => void)[] = [];
  #disposed = false;

  constructor(root: HTMLElement, opts: DashboardOptions = {}) {
    this.root = root;
    this.root.classList.add("tl-theme");
    this.height = opts.height && opts.height > 0 ? opts.height : 140;
    this.windowS = opts.windowS && opts.windowS > 0 ? opts.windowS : 300;
    this.intervalS = opts.intervalS && opts.intervalS > 0 ? opts.intervalS : 1;
    this.theme = readTheme(root);
    if (typeof ResizeObserver !== "undefined") {
      this.#ro = new ResizeObserver((entries) => {
        for (const e of entries) this.#roCallbacks.get(e.target)?.(e.contentRect.width);
      });
    }
    // JupyterLab flips data-jp-theme-* on <body>; VS Code flips body classes.
    if (typeof MutationObserver !== "undefined") {
      this.#mo = new MutationObserver(() => this.refreshTheme());
      const filter = { attributes: true, attributeFilter: ["class", "style", "data-jp-theme-name", "data-jp-theme-light", "data-vscode-theme-kind"] };
      this.#mo.observe(document.body, filter);
      this.#mo.observe(document.documentElement, filter);
    }
    if (typeof matchMedia !== "undefined") {
      this.#mq = matchMedia("(prefers-color-scheme: dark)");
      this.#mq.addEventListener?.("change", this.refreshTheme);
    }
  }

  /** Registers a width callback for `el`; returns the unregister function. */
  readonly observe = (el: Element, cb: (w: number) => void): (() => void) => {
    this.#roCallbacks.set(el, cb);
    if (this.#ro) this.#ro.observe(el);
    else requestAnimationFrame(() => cb((el as HTMLElement).clientWidth || 300));
    return () => {
      this.#roCallbacks.delete(el);
      this.#ro?.unobserve(el);
    };
  };

  panel(title: string, sub = "", parent: HTMLElement = this.root, cls = ""): Panel {
    const p = new Panel(this, parent, title, sub, cls);
    this.#panels.push(p);
    return p;
  }

  removePanel(p: Panel): void {
    this.#panels = this.#panels.filter((x) => x !== p);
    p.dispose();
  }

  /** Called after each redraw (for the host's own text and attributes). */
  afterDraw(fn: () => void): void {
    this.#onDraw.push(fn);
  }

  /** Appends a batch, trims to the window and schedules a redraw. Returns rows appended. */
  ingest(batch: Batch): number {
    const k = this.store.append(batch);
    this.store.trim(this.windowS);
    this.schedule();
    return k;
  }

  /** Drops all data (a new `init`). */
  reset(): void {
    this.store.clear();
    this.schedule();
  }

  setWindow(s: number): void {
    if (!(s > 0) || s === this.windowS) return;
    this.windowS = s;
    this.store.trim(s);
    this.schedule();
  }

  setHeight(hpx: number): void {
    const v = hpx > 0 ? hpx : 140;
    if (v === this.height) return;
    this.height = v;
    for (const p of this.#panels) p.setHeight(v);
    this.schedule();
  }

  refreshTheme = (): void => {
    if (this.#disposed) return;
    const t = readTheme(this.root);
    if (JSON.stringify(t) === JSON.stringify(this.theme)) return;
    this.theme = t;
    for (const p of this.#panels) p.restyle(t);
    this.schedule();
  };

  /** Requests a redraw on the next animation frame (coalesced). */
  schedule(): void {
    if (this.#frame || this.#disposed) return;
    this.#frame = requestAnimationFrame(() => {
      this.#frame = 0;
      this.draw();
    });
  }

  /** Redraws now. */
  draw(): void {
    if (this.#disposed) return;
    const last = this.store.lastTime();
    const x1 = Number.isFinite(last) ? last : Date.now() / 1000;
    const ctx: DrawContext = {
      store: this.store,
      // At least one unit wide: uPlot cannot draw an empty x range.
      x0: Math.min(Math.max(this.start, x1 - this.windowS), x1 - 1),
      x1,
      staleS: Math.max(5, 5 * this.intervalS),
      theme: this.theme,
    };
    for (const p of this.#panels) p.update(ctx);
    for (const f of this.#onDraw) f();
  }

  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    if (this.#frame) cancelAnimationFrame(this.#frame);
    this.#frame = 0;
    for (const p of this.#panels) p.dispose();
    this.#panels = [];
    this.#onDraw = [];
    this.#ro?.disconnect();
    this.#ro = null;
    this.#roCallbacks.clear();
    this.#mo?.disconnect();
    this.#mo = null;
    this.#mq?.removeEventListener?.("change", this.refreshTheme);
    this.#mq = null;
    this.store.clear();
    this.root.classList.remove("tl-theme");
    freeSyncKeys.push(this.syncKey);
  }
}

/** Convenience: a standalone chart with its own dashboard (for one-off uses). */
export function createChart(el: HTMLElement, spec: ChartSpec, opts: DashboardOptions = {}): { dashboard: Dashboard; chart: Chart } {
  const dashboard = new Dashboard(el, opts);
  const chart = dashboard.panel(spec.title ?? "").chart({ ...spec, title: undefined });
  return { dashboard, chart };
}
