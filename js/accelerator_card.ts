// One card per accelerator, whatever the vendor and kind (NVIDIA or AMD GPU, Ascend NPU, TPU
// chip): the notebook widget and the JupyterLab sidebar both build it here. A card shows the
// vendor and what the device reports, and nothing it does not: a headline or chart appears
// once its metric has a value (an AMD card without per-process memory, a TPU without power,
// shows no empty chart for them).

import {
  finite,
  formatBytesOf,
  formatWattsOf,
  h,
  isThrottled,
  throttleReasons,
  type Dashboard,
  type DrawContext,
  type Headline,
  type Panel,
} from "./charts";
import type { AcceleratorKind } from "./series";
import type { PanelEntry } from "./host_panels";

/** A device's facts: `info.accelerators[]` of the widget, `system/info` in the sidebar. */
export interface AcceleratorFacts {
  index: number;
  kind?: AcceleratorKind;
  vendor?: string;
  name?: string;
  uuid?: string;
  /** "ok", "idle" (present, nothing to read: a TPU without a program) or "lost". */
  state?: string;
  idle_reason?: string;
  mem_total_bytes?: number | null;
  power_limit_w?: number | null;
  temp_slowdown_c?: number | null;
}

export interface AcceleratorCardOptions {
  /** The sidebar's narrow layout: charts stacked and smaller, no legends. */
  compact?: boolean;
  /** The newest facts (a `hardware_update` can change them); default: the ones given. */
  facts?: () => AcceleratorFacts;
}

const VENDORS: Record<string, string> = { nvidia: "NVIDIA", amd: "AMD", google: "Google", huawei: "Huawei" };

/** What each kind's utilisation measures (the catalogue says how they differ). */
const UTIL_TITLE: Record<AcceleratorKind, string> = { gpu: "utilisation", npu: "AI Core", tpu: "duty cycle" };

const HEALTH = ["ok", "warning", "alarm", "critical"];

/** Degrees below the device's slowdown temperature at which the card says "hot". */
const TEMP_MARGIN_C = 5;

export function vendorLabel(vendor: string | undefined): string {
  return vendor ? (VENDORS[vendor] ?? vendor) : "";
}

/** `gpu.0`: the prefix of the device's metrics, and the card's `data-device`. */
export function deviceKey(d: { kind?: string; index: number }): string {
  return `${d.kind ?? "gpu"}.${d.index}`;
}


/** Adds one device's card to `grid`; returns it with the metric names it shows. */
export function buildAcceleratorCard(dash: Dashboard, grid: HTMLElement, d: AcceleratorFacts, opts: AcceleratorCardOptions = {}): PanelEntry {
  const kind: AcceleratorKind = d.kind ?? "gpu";
  const key = deviceKey({ kind, index: d.index });
  const m = (k: string) => `${key}.${k}`;
  const facts = opts.facts ?? (() => d);
  // Facts without a vendor come from versions that knew only NVIDIA GPUs.
  const vendor = () => facts().vendor ?? d.vendor ?? (kind === "gpu" ? "nvidia" : "");
  const latest = (ctx: DrawContext, k: string) => ctx.store.latest(m(k), ctx.staleS);
  const latestOr = (ctx: DrawContext, k: string, fb: number | null | undefined) => {
    const v = latest(ctx, k);
    return finite(v) ? v : (fb ?? NaN);
  };

  const card = dash.panel(`${kind.toUpperCase()} ${d.index}`, d.name || "", grid, `tl-accel tl-${kind}`);
  card.el.setAttribute("data-device", key);
  card.el.setAttribute("data-kind", kind);
  if (kind === "gpu") card.el.setAttribute("data-gpu", String(d.index));
  const tag = h("span", "tl-vendor");
  card.titleEl.after(tag);
  addBadges(card, facts, vendor, latest);

  // Each part is shown once the device has reported its metric (or a known fallback).
  const parts: [HTMLElement, string[]][] = [];
  const shown = (hl: Headline | { el: HTMLElement }, ...metrics: string[]) => parts.push([hl.el, metrics]);
  shown(card.headline({ metric: m("util_pct"), cls: "tl-big" }), "util_pct");
  shown(card.headline({ metric: m("mem_used_bytes"), label: kind === "gpu" ? "memory" : "HBM", format: (v, ctx) => formatBytesOf(v, latestOr(ctx, "mem_total_bytes", facts().mem_total_bytes)) }), "mem_used_bytes");
  shown(card.headline({ metric: m("temp_c") }), "temp_c");
  shown(card.headline({ metric: m("power_w"), format: (v, ctx) => formatWattsOf(v, latestOr(ctx, "power_limit_w", facts().power_limit_w)) }), "power_w");

  const compact = !!opts.compact;
  const row = compact ? card.body : h("div", "tl-row");
  if (!compact) card.body.append(row);
  const small = compact ? { legend: false, heightScale: 0.8 } : {};
  const utilTitle = kind === "gpu" && d.vendor === "amd" ? "GFX activity" : UTIL_TITLE[kind];
  shown(card.chart({ unit: "pct", range: "pct", title: utilTitle, legend: false, ...small, series: [{ name: m("util_pct"), label: utilTitle }] }, row), "util_pct");
  shown(
    card.chart(
      {
        unit: "bytes",
        title: kind === "gpu" ? "memory" : "HBM",
        minMax: 1024 ** 3,
        ...small,
        series: [
          { name: m("mem_used_bytes"), label: "used", color: 3 },
          { name: m("mem_total_bytes"), label: "total", color: "dim", dash: true, fallback: () => facts().mem_total_bytes },
        ],
      },
      row,
    ),
    "mem_used_bytes",
  );

  card.onUpdate((ctx) => {
    const f = facts();
    const v = vendor();
    if (tag.textContent !== vendorLabel(v)) tag.textContent = vendorLabel(v);
    tag.hidden = !v;
    if (v) card.el.setAttribute("data-vendor", v);
    if (f.name && card.subEl.textContent !== f.name) card.subEl.textContent = f.name;
    for (const [el, metrics] of parts) {
      const on = metrics.some((k) => ctx.store.has(m(k)));
      if (el.hidden === on) el.hidden = !on;
    }
    const quiet = !finite(latest(ctx, "util_pct")) && !finite(latest(ctx, "mem_used_bytes"));
    card.el.classList.toggle("tl-idle", quiet && f.state === "idle");
    card.el.classList.toggle("tl-stale", quiet && f.state !== "idle" && ctx.store.length > 0);
  });
  return { panel: card, metrics: ["util_pct", "mem_used_bytes", "mem_total_bytes", "temp_c", "power_w", "throttle_reasons"].map(m) };
}

function addBadges(card: Panel, facts: () => AcceleratorFacts, vendor: () => string, latest: (ctx: DrawContext, k: string) => number): void {
  card.badge(
    "tl-badge-throttle",
    (ctx) => {
      const mask = latest(ctx, "throttle_reasons");
      if (!isThrottled(mask, vendor())) return null;
      const r = throttleReasons(mask, vendor());
      return r.length === 1 ? `throttled · ${r[0]}` : "throttled";
    },
    (ctx) => `throttle reasons: ${throttleReasons(latest(ctx, "throttle_reasons"), vendor()).join(", ")}`,
  );
  card.badge(
    "tl-badge-ecc",
    (ctx) => {
      const u = latest(ctx, "ecc_uncorrected_errors");
      const c = latest(ctx, "ecc_corrected_errors");
      if (finite(u) && u > 0) return `ECC ${u} uncorrected`;
      if (finite(c) && c > 0) return `ECC ${c} corrected`;
      return null;
    },
    () => "ECC memory errors reported by the driver",
  );
  card.badge(
    "tl-badge-temp",
    (ctx) => {
      const t = latest(ctx, "temp_c");
      const slow = facts().temp_slowdown_c;
      return finite(t) && finite(slow) && t >= slow - TEMP_MARGIN_C ? `hot · ${Math.round(t)} °C` : null;
    },
    () => `slowdown at ${facts().temp_slowdown_c ?? "?"} °C`,
  );
  card.badge(
    "tl-badge-health",
    (ctx) => {
      const v = latest(ctx, "health");
      return finite(v) && v > 0 ? `health · ${HEALTH[v] ?? v}` : null;
    },
    () => "health as the driver reports it",
  );
  card.badge(
    "tl-badge-idle",
    (ctx) => (facts().state === "idle" && !finite(latest(ctx, "util_pct")) && !finite(latest(ctx, "mem_used_bytes")) ? "idle" : null),
    () => facts().idle_reason ?? "present, nothing to read now",
  );
  // a card without current values is dimmed (tl-stale): the badge says so in words
  card.badge(
    "tl-badge-idle tl-badge-stale",
    (ctx) => (facts().state !== "idle" && ctx.store.length > 0 && !finite(latest(ctx, "util_pct")) && !finite(latest(ctx, "mem_used_bytes")) ? "no data" : null),
    () => "no current values from this device",
  );
}
