// Front end of `tracklab.widget()`: an anywidget ESM module. Protocol: js/PROTOCOL.md.
// Charts, buffers and formatting live in charts.ts (shared with the JupyterLab sidebar).

import {
  Dashboard,
  decodeData,
  formatBytesOf,
  formatClock,
  formatWattsOf,
  gpuIndices,
  h,
  isThrottled,
  matchesAny,
  throttleReasons,
  type DrawContext,
  type Panel,
} from "./charts";
import { buildHostPanels } from "./host_panels";
import "./widget.css";

/** The part of anywidget's model this module uses (also what the test harness fakes). */
export interface WidgetModel {
  get(name: string): any;
  on(event: string, cb: (...args: any[]) => void): void;
  off(event?: string | null, cb?: ((...args: any[]) => void) | null): void;
  send(content: unknown, callbacks?: unknown, buffers?: ArrayBuffer[] | ArrayBufferView[]): void;
}

interface GpuInfo {
  index: number;
  name: string;
  uuid?: string;
  mem_total_bytes?: number | null;
  power_limit_w?: number | null;
}

interface InitMsg {
  type: "init";
  node: string;
  interval_s: number;
  window_s: number;
  info: {
    cpu_model?: string;
    cpu_count?: number;
    mem_limit_bytes?: number | null;
    gpus?: GpuInfo[];
  };
}

interface EventMsg {
  type: "event";
  event: { time?: number; node?: string; kind?: string; message?: string; data?: unknown };
}

function gpuMetrics(i: number): string[] {
  return ["util_pct", "mem_used_bytes", "mem_total_bytes", "temp_c", "power_w", "throttle_reasons"].map((m) => `gpu.${i}.${m}`);
}

function finite(v: number | null | undefined): v is number {
  return typeof v === "number" && Number.isFinite(v);
}

class WidgetView {
  #root: HTMLElement;
  #nodeEl: HTMLElement;
  #statusEl: HTMLElement;
  #eventEl: HTMLElement;
  #body: HTMLElement;
  #dash: Dashboard | null = null;
  #hostGrid: HTMLElement | null = null;
  #gpuGrid: HTMLElement | null = null;
  #panels = new Map<string, { panel: Panel; metrics: string[] }>();
  #gpuInfo = new Map<number, GpuInfo>();
  #points = 0;
  #batches = 0;
  #model: WidgetModel;

  constructor(
    model: WidgetModel,
    el: HTMLElement,
  ) {
    this.#model = model;
    this.#root = h("div", "tl-root tl-theme", { "data-state": "waiting", "data-points": "0" });
    const head = h("div", "tl-header");
    const brand = h("span", "tl-brand", undefined, "TrackLab");
    this.#nodeEl = h("span", "tl-node", { "data-field": "node" });
    this.#statusEl = h("span", "tl-status", { "data-field": "status" });
    this.#eventEl = h("span", "tl-event", { "data-field": "event" });
    this.#eventEl.hidden = true;
    head.append(brand, this.#nodeEl, this.#statusEl, this.#eventEl);
    this.#body = h("div", "tl-body");
    this.#body.append(h("div", "tl-placeholder", undefined, "waiting for the kernel…"));
    this.#root.append(head, this.#body);
    el.append(this.#root);
    this.#onStatus();

    model.on("msg:custom", this.#onMsg);
    model.on("change:status", this.#onStatus);
    model.on("change:height", this.#onHeight);
    model.on("change:window_s", this.#onWindow);
    model.on("change:metrics", this.#onMetrics);
    model.send({ type: "ready" });
  }

  #onStatus = () => {
    const s = this.#model.get("status");
    this.#statusEl.textContent = typeof s === "string" ? s : "";
    this.#statusEl.classList.toggle("tl-status-error", /error|fail|lost|stopped/i.test(this.#statusEl.textContent));
  };

  #onHeight = () => this.#dash?.setHeight(Number(this.#model.get("height")) || 0);

  #onWindow = () => {
    const w = Number(this.#model.get("window_s"));
    if (w > 0) this.#dash?.setWindow(w);
  };

  #onMetrics = () => {
    const globs = (this.#model.get("metrics") as string[] | undefined) ?? [];
    for (const { panel, metrics } of this.#panels.values()) panel.el.hidden = !metrics.some((m) => matchesAny(m, globs));
    this.#dash?.schedule();
  };

  #onMsg = (msg: any, buffers?: any[]) => {
    if (!msg || typeof msg !== "object") return;
    try {
      if (msg.type === "init") this.#onInit(msg as InitMsg);
      else if (msg.type === "data") this.#onData(msg, buffers);
      else if (msg.type === "event") this.#onEvent(msg as EventMsg);
    } catch (e) {
      console.warn("tracklab widget: bad message", msg?.type, e);
    }
  };

  #onInit(msg: InitMsg): void {
    this.#teardown();
    this.#nodeEl.textContent = msg.node ?? "";
    this.#body.textContent = "";
    const trait = Number(this.#model.get("window_s"));
    const dash = new Dashboard(this.#body, {
      windowS: trait > 0 ? trait : msg.window_s,
      height: Number(this.#model.get("height")) || 0,
      intervalS: msg.interval_s,
    });
    this.#dash = dash;
    this.#hostGrid = h("div", "tl-grid tl-host");
    this.#gpuGrid = h("div", "tl-grid tl-gpus");
    this.#body.append(this.#hostGrid, this.#gpuGrid);
    this.#buildHost(dash, this.#hostGrid, msg);
    for (const g of msg.info?.gpus ?? []) this.#addGpu(g);
    dash.afterDraw(() => this.#afterDraw());
    this.#root.setAttribute("data-state", "live");
    this.#onMetrics();
    dash.schedule();
  }

  #buildHost(dash: Dashboard, grid: HTMLElement, msg: InitMsg): void {
    const info = msg.info ?? {};
    const cpuSubtitle = [info.cpu_model, info.cpu_count ? `${info.cpu_count} cores` : ""].filter(Boolean).join(" · ");
    for (const [key, entry] of buildHostPanels(dash, grid, { cpuSubtitle, memLimit: () => info.mem_limit_bytes })) {
      this.#panels.set(key, entry);
    }
  }

  #addGpu(g: GpuInfo): void {
    const dash = this.#dash;
    if (!dash || !this.#gpuGrid || this.#gpuInfo.has(g.index)) return;
    this.#gpuInfo.set(g.index, g);
    const i = g.index;
    const m = (k: string) => `gpu.${i}.${k}`;
    const latestOr = (ctx: DrawContext, k: string, fb: number | null | undefined) => {
      const v = ctx.store.latest(m(k), ctx.staleS);
      return finite(v) ? v : (fb ?? NaN);
    };
    const card = dash.panel(`GPU ${i}`, g.name || "", this.#gpuGrid, "tl-gpu");
    card.el.setAttribute("data-gpu", String(i));
    card.badge(
      "tl-badge-throttle",
      (ctx) => {
        const mask = ctx.store.latest(m("throttle_reasons"), ctx.staleS);
        if (!isThrottled(mask)) return null;
        const r = throttleReasons(mask);
        return r.length === 1 ? `throttled · ${r[0]}` : "throttled";
      },
      (ctx) => `clock-event reasons: ${throttleReasons(ctx.store.latest(m("throttle_reasons"), ctx.staleS)).join(", ")}`,
    );
    card.headline({ metric: m("util_pct"), cls: "tl-big" });
    card.headline({ metric: m("mem_used_bytes"), label: "memory", format: (v, ctx) => formatBytesOf(v, latestOr(ctx, "mem_total_bytes", g.mem_total_bytes)) });
    card.headline({ metric: m("temp_c") });
    card.headline({ metric: m("power_w"), format: (v, ctx) => formatWattsOf(v, latestOr(ctx, "power_limit_w", g.power_limit_w)) });
    const row = h("div", "tl-row");
    card.body.append(row);
    card.chart({ unit: "pct", range: "pct", title: "utilisation", legend: false, series: [{ name: m("util_pct"), label: "util" }] }, row);
    card.chart(
      {
        unit: "bytes",
        title: "memory",
        minMax: 1024 ** 3,
        series: [
          { name: m("mem_used_bytes"), label: "used", color: 3 },
          { name: m("mem_total_bytes"), label: "total", color: "dim", dash: true, fallback: () => g.mem_total_bytes },
        ],
      },
      row,
    );
    card.onUpdate((ctx) => {
      const lost = !finite(ctx.store.latest(m("util_pct"), ctx.staleS)) && !finite(ctx.store.latest(m("mem_used_bytes"), ctx.staleS));
      card.el.classList.toggle("tl-stale", lost && ctx.store.length > 0);
    });
    this.#panels.set(`gpu${i}`, { panel: card, metrics: gpuMetrics(i) });
  }

  #onData(msg: any, buffers?: any[]): void {
    const dash = this.#dash;
    if (!dash) return; // data before init: nothing to attach it to
    const batch = decodeData(msg, buffers);
    const k = dash.ingest(batch);
    this.#points += k * batch.names.length;
    this.#batches++;
    this.#root.setAttribute("data-points", String(this.#points));
    // A GPU that appeared after init (hot-plug, MIG change) gets a card too.
    let added = false;
    for (const i of gpuIndices(batch.names)) {
      if (!this.#gpuInfo.has(i)) {
        this.#addGpu({ index: i, name: "" });
        added = true;
      }
    }
    if (added) this.#onMetrics();
  }

  #onEvent(msg: EventMsg): void {
    const ev = msg.event ?? {};
    const text = ev.message || ev.kind || "";
    if (!text) return;
    this.#eventEl.hidden = false;
    this.#eventEl.textContent = `${formatClock(ev.time ?? Date.now() / 1000)} ${text}`;
    this.#eventEl.title = [ev.kind, ev.node].filter(Boolean).join(" · ");
    if (ev.kind) this.#eventEl.setAttribute("data-kind", ev.kind);
  }

  #afterDraw(): void {
    const s = this.#dash?.store;
    if (!s) return;
    const t = s.lastTime();
    this.#root.setAttribute("data-last-time", Number.isFinite(t) ? String(t) : "");
    this.#root.setAttribute("data-batches", String(this.#batches));
  }

  #teardown(): void {
    this.#dash?.dispose();
    this.#dash = null;
    this.#panels.clear();
    this.#gpuInfo.clear();
    this.#hostGrid = null;
    this.#gpuGrid = null;
  }

  dispose(): void {
    const m = this.#model;
    m.off("msg:custom", this.#onMsg);
    m.off("change:status", this.#onStatus);
    m.off("change:height", this.#onHeight);
    m.off("change:window_s", this.#onWindow);
    m.off("change:metrics", this.#onMetrics);
    this.#teardown();
    this.#root.remove();
  }
}

export default {
  render({ model, el }: { model: WidgetModel; el: HTMLElement }) {
    const view = new WidgetView(model, el);
    return () => view.dispose();
  },
};
