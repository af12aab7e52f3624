// Accessible names and text alternatives, for the widget and the sidebar alike. A card is a
// named group ("CPU", "GPU 0 NVIDIA H200": its title and subtitle); a chart is drawn on a
// canvas, so its plot is an image whose label says what it shows and its current values
// ("CPU utilisation, last 5 minutes: now 23 %, max 99 %"). charts.ts calls describeChart
// on every redraw; the label is rewritten at most every DESCRIBE_EVERY_MS (a screen reader
// is not sent a new label every frame).

import type { ChartSpec, DrawContext } from "./charts";
import { FORMATTERS, finite } from "./format";

/** Least time between two rewrites of a chart's label (ms). */
export const DESCRIBE_EVERY_MS = 3000;

const described = new WeakMap<Element, number>();

/** "last 5 minutes", "last 45 seconds", "last 2 hours". */
export function windowText(seconds: number): string {
  const s = Math.round(seconds);
  const [n, unit] = s >= 5400 ? [Math.round(s / 3600), "hour"] : s >= 90 ? [Math.round(s / 60), "minute"] : [s, "second"];
  return `last ${n} ${unit}${n === 1 ? "" : "s"}`;
}

/**
 * A chart's text alternative from what it draws: `data` is uPlot's [x, ...series] (x in
 * epoch seconds, or steps), only the points from `x0` on count. Limits (dashed series) are
 * named by their value; the others by their newest value and their maximum.
 */
export function chartText(card: string, spec: ChartSpec, data: readonly ArrayLike<number | null | undefined>[], x0: number, x1: number): string {
  const fmt = FORMATTERS[spec.unit];
  const x = data[0] ?? [];
  let from = 0;
  while (from < x.length && (x[from] as number) < x0) from++;
  const parts = spec.series.map((s, i) => {
    let now: number | null = null;
    let max = -Infinity;
    const col = data[i + 1] ?? [];
    for (let j = from; j < col.length; j++) {
      const v = col[j];
      if (!finite(v)) continue;
      now = v;
      max = Math.max(max, v);
    }
    const who = spec.series.length > 1 ? `${s.label} ` : "";
    if (now === null) return `${who}no data`;
    return s.dash ? `${s.label} ${fmt(now)}` : `${who}now ${fmt(now)}, max ${fmt(max)}`;
  });
  const what = spec.title ?? (spec.unit === "pct" ? "utilisation" : "");
  const span = spec.steps ? "by step" : windowText(x1 - x0);
  return `${[card, what].filter(Boolean).join(" ")}, ${span}: ${parts.join("; ")}`;
}

/**
 * Names the chart's card (the closest `.tl-panel`: role group, its title and subtitle) and
 * labels the plot (`plot`, the canvas's container) as an image with its current values.
 */
export function describeChart(plot: HTMLElement, spec: ChartSpec, ctx: DrawContext, data: readonly ArrayLike<number | null | undefined>[]): void {
  const now = performance.now();
  const old = plot.getAttribute("aria-label");
  if (old?.includes(" now ") && now - (described.get(plot) ?? 0) < DESCRIBE_EVERY_MS) return;
  described.set(plot, now);
  const card = plot.closest(".tl-panel");
  const title = card?.querySelector(".tl-panel-title")?.textContent ?? "";
  const name = [title, card?.querySelector(".tl-panel-sub")?.textContent].filter(Boolean).join(" ");
  if (card && name && card.getAttribute("aria-label") !== name) {
    card.setAttribute("role", "group");
    card.setAttribute("aria-label", name);
    // in a group its <header> would be a page banner: it is the card's heading line
    card.querySelector(":scope > header")?.setAttribute("role", "none");
  }
  plot.setAttribute("role", "img");
  const text = chartText(title, spec, data, ctx.x0, ctx.x1);
  if (text !== old) plot.setAttribute("aria-label", text);
}
