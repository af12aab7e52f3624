// Front end of `tracklab.widget()`: an anywidget ESM module. Protocol: js/PROTOCOL.md.
// Charts, buffers and formatting live in charts.ts (shared with the JupyterLab sidebar).

import { buildAcceleratorCard, deviceKey, type AcceleratorFacts } from "./accelerator_card";
import { Dashboard, decodeData, devicesIn, formatClock, formatDuration, FORMATTERS, h, matchesAny, unitOf, type Panel } from "./charts";
import { buildHostPanels } from "./host_panels";
import "./widget.css";

/** The part of anywidget's model this module uses (also what the test harness fakes). */
export interface WidgetModel {
  get(name: string): any;
  on(event: string, cb: (...args: any[]) => void): void;
  off(event?: string | null, cb?: ((...args: any[]) => void) | null): void;
  send(content: unknown, callbacks?: unknown, buffers?: ArrayBuffer[] | ArrayBufferView[]): void;
}

/** The run shown by `tracklab.widget(run=...)`: docs/RUNS.md's `Run` (fields used here). */
interface RunInfo {
  id: string;
  project?: string;
  name?: string;
  state?: string;
  start: number;
  duration_s?: number;
  pid?: number;
  system_monitor?: boolean;
}

interface InitMsg {
  type: "init";
  node: string;
  interval_s: number;
  window_s: number;
  run?: RunInfo;
  info: {
    cpu_model?: string;
    cpu_count?: number;
    mem_limit_bytes?: number | null;
    accelerators?: AcceleratorFacts[];
  };
}

interface EventMsg {
  type: "event";
  event: { time?: number; node?: string; kind?: string; message?: string; data?: any };
}

/** An `alert` / `alert_resolved` event (issue 15): `data` has key, severity, title, since. */
type AlertEvent = EventMsg["event"];

class WidgetView {
  #root: HTMLElement;
  #nodeEl: HTMLElement;
  #statusEl: HTMLElement;
  #eventEl: HTMLElement;
  #runEl: HTMLElement;
  #alertsEl: HTMLElement;
  /** Active alerts by key; what the banner shows (less the dismissed ones). */
  #alerts = new Map<string, AlertEvent>();
  /** When each key was last seen resolved: an older snapshot must not bring it back. */
  #resolvedAt = new Map<string, number>();
  /** `key@since` of alerts dismissed here; a new episode of the key shows again. */
  #dismissed = new Set<string>();
  #body: HTMLElement;
  #dash: Dashboard | null = null;
  // A run's view: its logged metrics (x = step) and its process tree (x = time).
  #run: RunInfo | null = null;
  #runDash: Dashboard | null = null;
  #procDash: Dashboard | null = null;
  #hostGrid: HTMLElement | null = null;
  #deviceGrid: HTMLElement | null = null;
  #panels = new Map<string, { panel: Panel; metrics: string[] }>();
  /** Accelerators with a card, by `deviceKey` (`gpu.0`, `tpu.3`). */
  #devices = new Set<string>();
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
    this.#nodeEl = h("span", "tl-node");
    this.#statusEl = h("span", "tl-status");
    this.#eventEl = h("span", "tl-event");
    this.#eventEl.hidden = true;
    this.#runEl = h("span", "tl-run");
    head.append(brand, this.#runEl, this.#nodeEl, this.#statusEl, this.#eventEl);
    this.#alertsEl = h("div", "tl-alerts", { "aria-live": "polite" });
    this.#body = h("div", "tl-body");
    this.#body.append(h("div", "tl-placeholder", undefined, "waiting for the kernel…"));
    this.#root.append(head, this.#alertsEl, this.#body);
    el.append(this.#root);
    this.#onStatus();

    for (const [e, f] of this.#handlers) model.on(e, f);
    model.send({ type: "ready" });
  }

  #onStatus = () => {
    const s = this.#model.get("status");
    this.#statusEl.textContent = typeof s === "string" ? s : "";
    this.#statusEl.classList.toggle("tl-status-error", /error|fail|lost|stopped/i.test(this.#statusEl.textContent));
  };

  #dashes(): (Dashboard | null)[] {
    return [this.#dash, this.#runDash, this.#procDash];
  }

  #onHeight = () => {
    for (const d of this.#dashes()) d?.setHeight(Number(this.#model.get("height")) || 0);
  };

  #onWindow = () => {
    const w = Number(this.#model.get("window_s"));
    if (w > 0) for (const d of [this.#dash, this.#procDash]) d?.setWindow(w);
  };

  #onMetrics = () => {
    const globs = (this.#model.get("metrics") as string[] | undefined) ?? [];
    for (const { panel, metrics } of this.#panels.values()) panel.el.hidden = !metrics.some((m) => matchesAny(m, globs));
    for (const d of this.#dashes()) d?.schedule();
  };

  #onMsg = (msg: any, buffers?: any[]) => {
    if (!msg || typeof msg !== "object") return;
    try {
      if (msg.type === "init") this.#onInit(msg as InitMsg);
      else if (msg.type === "data") this.#onData(msg, buffers);
      else if (msg.type === "event") this.#onEvent(msg as EventMsg);
      else if (msg.type === "alerts") this.#onAlerts(msg.alerts);
      else if (msg.type === "run_update") this.#showRun(msg.run);
    } catch (e) {
      console.warn("tracklab widget: bad message", msg?.type, e);
    }
  };

  #handlers: [string, (...args: any[]) => void][] = [
    ["msg:custom", this.#onMsg],
    ["change:status", this.#onStatus],
    ["change:height", this.#onHeight],
    ["change:window_s", this.#onWindow],
    ["change:metrics", this.#onMetrics],
  ];

  #onInit(msg: InitMsg): void {
    this.#teardown();
    // the view starts over: the active alerts follow in an `alerts` message
    this.#alerts.clear();
    this.#resolvedAt.clear();
    this.#drawAlerts();
    this.#nodeEl.textContent = msg.node ?? "";
    this.#body.textContent = "";
    this.#runEl.textContent = "";
    const trait = Number(this.#model.get("window_s"));
    const opts = {
      windowS: trait > 0 ? trait : msg.window_s,
      height: Number(this.#model.get("height")) || 0,
      intervalS: msg.interval_s,
    };
    const dash = new Dashboard(this.#body, opts);
    this.#dash = dash;
    const run = (this.#run = msg.run ?? null);
    if (run) {
      // Host panels from the run's start; run metrics over all their steps.
      const grid = h("div", "tl-grid tl-run-grid");
      this.#body.append(grid);
      dash.start = run.start;
      this.#runDash = new Dashboard(grid, { ...opts, windowS: Infinity, intervalS: Infinity });
      if (run.system_monitor) {
        const pd = (this.#procDash = new Dashboard(grid, opts));
        pd.start = run.start;
        const p = pd.panel("Process tree", `pid ${run.pid}`, grid, "tl-proc");
        const row = h("div", "tl-row");
        p.body.append(row);
        // The legends carry the latest values.
        p.chart({ unit: "pct", minMax: 100, series: [{ name: "tree.cpu_pct", label: "CPU" }] }, row);
        p.chart({ unit: "bytes", minMax: 1024 ** 3, series: [{ name: "tree.rss_bytes", label: "RSS", color: 3 }] }, row);
        this.#panels.set("proc", { panel: p, metrics: ["tree.cpu_pct", "tree.rss_bytes"] });
      }
      dash.afterDraw(this.#tick);
      this.#showRun(run);
    }
    this.#hostGrid = h("div", "tl-grid tl-host");
    this.#deviceGrid = h("div", "tl-grid tl-devices");
    this.#body.append(this.#hostGrid, this.#deviceGrid);
    this.#buildHost(dash, this.#hostGrid, msg);
    for (const d of msg.info?.accelerators ?? []) this.#addDevice(d);
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

  #addDevice(d: AcceleratorFacts): void {
    const dash = this.#dash;
    const key = deviceKey(d);
    if (!dash || !this.#deviceGrid || this.#devices.has(key)) return;
    this.#devices.add(key);
    this.#panels.set(key, buildAcceleratorCard(dash, this.#deviceGrid, d));
  }

  /** The run header: name, project, state badge, duration. */
  #showRun(run: RunInfo): void {
    const r = (this.#run = { ...this.#run, ...run });
    this.#runEl.textContent = "";
    this.#runEl.append(
      h("span", "tl-run-name", undefined, r.name),
      h("span", "tl-run-project", undefined, r.project),
      h("span", "tl-run-state", undefined, r.state),
      h("span", "tl-run-duration"),
    );
    this.#root.setAttribute("data-run-state", r.state ?? "");
    this.#tick();
  }

  #tick = () => {
    const r = this.#run;
    const el = this.#runEl.lastElementChild;
    // Running: measured on the kernel's clock (its newest sample), not the browser's.
    if (r && el) el.textContent = formatDuration(r.state === "running" ? (this.#dash?.store.lastTime() || Date.now() / 1000) - r.start : r.duration_s);
  };

  #onData(msg: any, buffers?: any[]): void {
    const src = msg.source;
    const dash = src === "run" ? this.#runDash : src === "process" ? this.#procDash : this.#dash;
    if (!dash) return; // data before init: nothing to attach it to
    const batch = decodeData(msg, buffers);
    if (msg.backfill) dash.store.clear();
    dash.store.dropFrom(msg.from ?? Infinity);
    const k = dash.ingest(batch);
    if (src === "run") {
      let added = false;
      for (const name of batch.names) {
        if (this.#panels.has(`run:${name}`)) continue;
        const u = unitOf(name);
        const unit = u === "number" ? "value" : u; // plain numbers at 4 significant digits
        const p = dash.panel(name, "", dash.root, "tl-metric");
        p.headline({ metric: name, cls: "tl-big", format: FORMATTERS[unit] });
        p.chart({ unit, steps: true, legend: false, series: [{ name, label: name }] });
        this.#panels.set(`run:${name}`, { panel: p, metrics: [name] });
        added = true;
      }
      dash.start = dash.store.firstTime();
      this.#root.setAttribute("data-run-points", String(dash.store.received));
      if (added) this.#onMetrics();
    }
    if (src) return;
    this.#points += k * batch.names.length;
    this.#batches++;
    this.#root.setAttribute("data-points", String(this.#points));
    // A device that appeared after init (hot-plug, a TPU program starting) gets a card too.
    let added = false;
    for (const d of devicesIn(batch.names)) {
      if (!this.#devices.has(deviceKey(d))) {
        this.#addDevice(d);
        added = true;
      }
    }
    if (added) this.#onMetrics();
  }

  #onEvent(msg: EventMsg): void {
    const ev = msg.event ?? {};
    const key = ev.data?.key;
    if ((ev.kind === "alert" || ev.kind === "alert_resolved") && typeof key === "string") {
      if (ev.kind === "alert") this.#alerts.set(key, ev);
      else {
        this.#alerts.delete(key);
        this.#resolvedAt.set(key, Number(ev.data.resolved ?? ev.time) || Date.now() / 1000);
      }
      this.#drawAlerts();
      return;
    }
    const text = ev.message || ev.kind || "";
    if (!text) return;
    this.#eventEl.hidden = false;
    this.#eventEl.textContent = `${formatClock(ev.time ?? Date.now() / 1000)} ${text}`;
    this.#eventEl.title = [ev.kind, ev.node].filter(Boolean).join(" · ");
    if (ev.kind) this.#eventEl.setAttribute("data-kind", ev.kind);
  }

  /** The alerts active when the view started (read from the store by the kernel). */
  #onAlerts(list: AlertEvent[] | undefined): void {
    for (const ev of list ?? []) {
      const key = ev?.data?.key;
      // resolved live after this snapshot was read: it stays gone
      if (typeof key !== "string" || (this.#resolvedAt.get(key) ?? -Infinity) >= Number(ev.data.since ?? ev.time)) continue;
      if (!this.#alerts.has(key)) this.#alerts.set(key, ev);
    }
    this.#drawAlerts();
  }

  /** One line per active alert, most severe first: colour, title, message, a dismiss ×. */
  #drawAlerts(): void {
    const el = this.#alertsEl;
    el.textContent = "";
    const rank = (e: AlertEvent) => (e.data?.severity === "critical" ? 0 : 1);
    for (const ev of [...this.#alerts.values()].sort((a, b) => rank(a) - rank(b))) {
      const d = ev.data ?? {};
      const sig = `${d.key}@${d.since ?? ev.time}`;
      if (this.#dismissed.has(sig)) continue;
      const line = h("div", "tl-alert", { "data-key": d.key, "data-severity": String(d.severity ?? "warning"), role: "alert" });
      const x = h("button", "tl-alert-x", { type: "button", "aria-label": "dismiss", title: "dismiss" }, "×");
      x.onclick = () => {
        this.#dismissed.add(sig);
        this.#drawAlerts();
      };
      line.append(h("b", undefined, undefined, d.title || d.key), h("span", "tl-alert-msg", undefined, ev.message || ""), x);
      line.title = `${d.rule ?? ""} · since ${formatClock(Number(d.since ?? ev.time))}`;
      el.append(line);
    }
    this.#root.setAttribute("data-alerts", String(el.childElementCount));
  }

  #afterDraw(): void {
    const s = this.#dash?.store;
    if (!s) return;
    const t = s.lastTime();
    this.#root.setAttribute("data-last-time", Number.isFinite(t) ? String(t) : "");
    this.#root.setAttribute("data-batches", String(this.#batches));
  }

  #teardown(): void {
    for (const d of this.#dashes()) d?.dispose();
    this.#dash = this.#runDash = this.#procDash = null;
    this.#panels.clear();
    this.#devices.clear();
    this.#hostGrid = null;
    this.#deviceGrid = null;
  }

  dispose(): void {
    for (const [e, f] of this.#handlers) this.#model.off(e, f);
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
