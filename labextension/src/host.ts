// The sidebar's host section: the summary of the node shown (host, CPU, memory, accelerators,
// drivers, OS), its live charts (js/charts.ts and js/host_panels.ts, as in tracklab.widget())
// with one card per accelerator, the newest hardware event and the recorder's health. It
// reads `system/info`, `api/history`, `system/metrics` (the REST fallback) and `health`;
// the panel hands it the socket's frames (`system_metrics`, `hardware_update`) and, while a
// cluster node is shown, that node's rows of `cluster_metrics`. The node filter is the
// panel's node selector (nodes.ts), asked through `node()`.

import { buildAcceleratorCard, deviceKey, vendorLabel, type AcceleratorFacts } from "../../js/accelerator_card";
import { Dashboard, finite, formatBytes, formatClock, h, matchesAny, type Batch, type Panel } from "../../js/charts";
import { buildHostPanels } from "../../js/host_panels";
import type { Api } from "./api";
import type { ClusterNode } from "./cluster";
import { diagnoseButton } from "./diagnose";
import { Section, type Frame } from "./section";

/** How often the recorder's health line is read (ms). */
const HEALTH_MS = 10_000;

/** One row (a sample's metrics dict) as a Batch for SeriesStore. */
export function sampleBatch(time: number, metrics: Record<string, number | null>): Batch {
  const names = Object.keys(metrics);
  const values = new Float64Array(names.length);
  names.forEach((n, i) => {
    const v = metrics[n];
    values[i] = typeof v === "number" ? v : NaN;
  });
  return { names, n: 1, times: Float64Array.of(time), values };
}

/** The columns of `api/history` as a Batch (nulls become NaN). */
export function historyBatch(table: { time?: number[]; series?: { metric: string; values: (number | null)[] }[] }): Batch {
  const times = Float64Array.from(table.time ?? []);
  const series = table.series ?? [];
  const n = times.length;
  const values = new Float64Array(series.length * n);
  series.forEach((s, i) => {
    for (let j = 0; j < n; j++) {
      const v = s.values[j];
      values[i * n + j] = typeof v === "number" ? v : NaN;
    }
  });
  return { names: series.map((s) => s.metric), n, times, values };
}

/** `2 × NVIDIA H200, 1 × AMD Instinct MI300X, 4 × TPU v5 lite`, or "none". */
export function describeDevices(devices: AcceleratorFacts[]): string {
  const counts = new Map<string, number>();
  for (const d of devices) {
    const name = d.name || `${vendorLabel(d.vendor)} ${(d.kind ?? "gpu").toUpperCase()}`.trim();
    counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  return [...counts].map(([name, n]) => `${n} × ${name}`).join(", ") || "none";
}

/** Driver versions per vendor: `NVIDIA 580.159.04 · CUDA 13.0 · AMD 6.8.5 · ROCm 6.4.1`. */
function describeDrivers(info: any): string {
  const parts: string[] = [];
  for (const [name, f] of Object.entries<any>(info.drivers ?? driversOf(info))) {
    const version = f?.driver_version;
    if (version) parts.push(`${vendorLabel(f.vendor ?? name)} ${version}`);
    if (f?.cuda_driver_version) parts.push(`CUDA ${f.cuda_driver_version}`);
    if (f?.rocm_version) parts.push(`ROCm ${f.rocm_version}`);
  }
  return parts.join(" · ");
}

/** `system/info` holds each backend's facts under its name (nvidia, amd, ascend, tpu). */
function driversOf(info: any): Record<string, any> {
  const out: Record<string, any> = {};
  for (const name of ["nvidia", "amd", "ascend", "tpu"]) if (info[name]) out[name] = info[name];
  return out;
}

/**
 * `system/info` answers for this server's host only: a cluster node's facts are the
 * resources `cluster/info` lists (no GPU names; its cards are titled by index).
 */
export function remoteInfo(node: string, n: ClusterNode | undefined, intervalS: number | undefined): any {
  const r = n?.resources ?? {};
  const gpus = Number(r.gpus) || 0;
  return {
    node,
    interval_s: intervalS,
    system: { hostname: `${node}${n ? ` (${n.role}${n.address ? ` · ${n.address}` : ""})` : ""}`, cpu_logical_cores: r.cores },
    memory: { total_bytes: r.memory_bytes },
    accelerators: Array.from({ length: gpus }, (_, index) => ({ index, kind: "gpu" })),
  };
}

export interface HostSectionOptions {
  /** The sidebar's root: `data-points` and `data-last-time` are written on it. */
  root: HTMLElement;
  /** The node shown (the node selector's): frames and requests are for it. */
  node: () => string;
  /** The sidebar's time window (s) and metric filter (globs; empty: all). */
  settings: () => { timeWindow: number; metrics: string[] };
  /** A REST poll of `system/metrics` was answered. */
  onPolled: () => void;
  /** A REST poll failed: the status line says why. */
  onError: (text: string) => void;
}

export class HostSection extends Section {
  /** The facts of the node shown. */
  readonly summary: HTMLElement;
  /** The recorder's health line, with the Diagnose button. */
  readonly health: HTMLElement;
  #healthText: HTMLElement;
  /** The newest hardware event (for the panel's header). */
  readonly event: HTMLElement;
  #opts: HostSectionOptions;
  #dash: Dashboard | null = null;
  #deviceGrid: HTMLElement | null = null;
  #panels = new Map<string, { panel: Panel; metrics: string[] }>();
  /** Accelerators with a card, by `deviceKey` (`gpu.0`, `npu.1`), with their newest facts. */
  #devices = new Map<string, AcceleratorFacts>();
  #points = 0;
  #lastTime = 0;
  #etag = "";
  #memLimit: number | null = null;

  constructor(api: Api, opts: HostSectionOptions) {
    super(api, h("div", "tl-body"));
    this.#opts = opts;
    this.summary = h("div", "tl-summary", { "data-field": "summary" }, "loading system info…");
    this.health = h("div", "tl-health", { "data-field": "health" });
    this.#healthText = h("span", "tl-health-text");
    this.health.append(this.#healthText, diagnoseButton(api));
    this.event = h("span", "tl-event", { "data-field": "event" });
    this.event.hidden = true;
  }

  /**
   * The summary and a fresh set of charts for the node shown: from `system/info`, or from
   * `facts` (a cluster node's, {@link remoteInfo}).
   */
  async load(facts: any = null): Promise<void> {
    const info = facts ?? (await this.api.get<any>("system/info", { node: this.#opts.node() }));
    const sys = info.system ?? {};
    const devices: AcceleratorFacts[] = info.accelerators ?? [];
    const mem = info.memory ?? {};
    this.#memLimit = mem.effective_limit_bytes ?? mem.total_bytes ?? null;
    const cores = info.cpu?.logical_cores ?? sys.cpu_logical_cores;
    const rows: [string, string][] = [
      ["host", sys.hostname ?? info.node ?? ""],
      ["CPU", [sys.cpu_model, cores ? `${cores} cores` : ""].filter(Boolean).join(" · ")],
      ["memory", mem.total_bytes ? formatBytes(mem.effective_limit_bytes ?? mem.total_bytes) : ""],
      ["accelerators", describeDevices(devices)],
      ["driver", describeDrivers(info)],
      ["OS", [sys.os_release, sys.kernel].filter(Boolean).join(" · ")],
    ];
    this.summary.textContent = "";
    const dl = h("dl", "tl-facts");
    for (const [k, v] of rows) {
      if (!v) continue;
      dl.append(h("dt", undefined, undefined, k), h("dd", undefined, { "data-fact": k }, v));
    }
    this.summary.append(dl);
    this.#build(Number(info.interval_s) || 1, devices);
  }

  /** The server extension did not answer (the panel tries again later). */
  unavailable(): void {
    this.summary.textContent = "The tracklab server extension did not answer; is it enabled (jupyter server extension list)?";
  }

  /** The window since the newest row shown (or the whole window) from `api/history`. */
  async backfill(): Promise<void> {
    if (!this.#dash) return;
    const { timeWindow, metrics } = this.#opts.settings();
    const since = this.#lastTime > 0 ? Math.max(this.#lastTime, Date.now() / 1000 - timeWindow) : Date.now() / 1000 - timeWindow;
    const params: Record<string, string> = { start: String(since), node: this.#opts.node() };
    if (metrics.length) params.metrics = metrics.join(",");
    try {
      const table = await this.api.get<any>("history", params);
      const batch = historyBatch(table);
      // keep only rows after what we already have
      if (batch.n) this.ingest(batch);
    } catch (e) {
      console.warn("tracklab: backfill failed", e);
    }
  }

  /** Live: the health line now and every {@link HEALTH_MS} until paused. */
  live(): void {
    void this.#loadHealth();
    this.every("health", HEALTH_MS, () => void this.#loadHealth());
  }

  /** Frames for the node shown (`system_metrics`, `hardware_update`); frames of another node are dropped. */
  handleMessage(msg: Frame): boolean {
    const node = this.#opts.node();
    if (node && msg.node && msg.node !== node) return true;
    if (msg.type === "system_metrics" && msg.data?.metrics) {
      this.ingest(sampleBatch(Number(msg.data.time ?? msg.time), msg.data.metrics));
      return true;
    }
    if (msg.type !== "hardware_update") return false;
    for (const d of msg.data?.state?.accelerators ?? []) {
      const key = deviceKey(d);
      if (!this.#devices.has(key)) this.#addDevice(d);
      else this.#devices.set(key, { ...this.#devices.get(key), ...d });
    }
    const ev = msg.data?.event;
    if (ev?.message) {
      this.event.hidden = false;
      this.event.textContent = `${formatClock(Number(ev.time ?? msg.time))} ${ev.message}`;
      if (ev.kind) this.event.setAttribute("data-kind", String(ev.kind));
    }
    return true;
  }

  /** One REST poll of this server's sample while the socket is down (ETag: unchanged costs nothing). */
  async poll(): Promise<void> {
    try {
      const params: Record<string, string> = { node: this.#opts.node() };
      const { metrics } = this.#opts.settings();
      if (metrics.length) params.metrics = metrics.join(",");
      const r = await this.api.request("system/metrics", { method: "GET", headers: this.#etag ? { "If-None-Match": this.#etag } : {} }, params);
      if (r.status === 200) {
        this.#etag = r.headers.get("ETag") ?? "";
        const body = await r.json();
        this.ingest(sampleBatch(Number(body.time), body.metrics ?? {}));
        this.#opts.onPolled();
      } else if (r.status !== 304) {
        this.#opts.onError(`polling: HTTP ${r.status}`);
      }
    } catch (e) {
      this.#opts.onError(`offline: ${(e as Error).message}`);
    }
  }

  /** Rows into the charts, those not newer than the newest shown dropped. */
  ingest(batch: Batch): void {
    const dash = this.#dash;
    if (!dash || !batch.n) return;
    // drop rows we already have (a backfill overlapping live frames)
    let start = 0;
    while (start < batch.n && batch.times[start] <= this.#lastTime) start++;
    if (start === batch.n) return;
    if (start > 0) {
      const n = batch.n - start;
      const values = new Float64Array(batch.names.length * n);
      batch.names.forEach((_, i) => values.set(batch.values.subarray(i * batch.n + start, (i + 1) * batch.n), i * n));
      batch = { names: batch.names, n, times: batch.times.slice(start), values };
    }
    const k = dash.ingest(batch);
    this.#points += k * batch.names.length;
    this.#lastTime = batch.times[batch.n - 1];
    this.#opts.root.setAttribute("data-points", String(this.#points));
  }

  setWindow(windowS: number): void {
    this.#dash?.setWindow(windowS);
  }

  /** The metric filter changed: panels with no matching metric are hidden. */
  applyMetrics(): void {
    const globs = this.#opts.settings().metrics;
    for (const { panel, metrics } of this.#panels.values()) panel.el.hidden = globs.length > 0 && !metrics.some((x) => matchesAny(x, globs));
    this.#dash?.schedule();
  }

  dispose(): void {
    this.#dash?.dispose();
  }

  async #loadHealth(): Promise<void> {
    try {
      const hl = await this.api.get<any>("health");
      const age = finite(hl.last_sample_age_s) ? `${hl.last_sample_age_s.toFixed(1)} s ago` : "no sample yet";
      const size = hl.store?.size_bytes != null ? ` · store ${formatBytes(hl.store.size_bytes)}` : "";
      this.#healthText.textContent = `recorder: ${hl.status} · ${hl.role} · last sample ${age}${size}`;
      this.health.setAttribute("data-status", String(hl.status));
      this.#healthText.title = hl.error ? String(hl.error) : (hl.store?.path ?? "");
    } catch (e) {
      this.#healthText.textContent = `recorder: unknown (${(e as Error).message})`;
      this.health.setAttribute("data-status", "unknown");
    }
  }

  #build(intervalS: number, devices: AcceleratorFacts[]): void {
    this.#dash?.dispose();
    this.#panels.clear();
    this.#devices.clear();
    this.#points = 0;
    this.#lastTime = 0;
    this.el.textContent = "";
    const dash = new Dashboard(this.el, { windowS: this.#opts.settings().timeWindow, height: 90, intervalS });
    this.#dash = dash;
    const host = h("div", "tl-grid tl-host");
    this.#deviceGrid = h("div", "tl-grid tl-devices");
    this.el.append(host, this.#deviceGrid);
    const panels = buildHostPanels(dash, host, { memLimit: () => this.#memLimit, compact: true });
    for (const [key, entry] of panels) this.#panels.set(key, entry);

    for (const d of devices) this.#addDevice(d);
    dash.afterDraw(() => {
      const t = dash.store.lastTime();
      this.#opts.root.setAttribute("data-last-time", Number.isFinite(t) ? String(t) : "");
    });
    this.applyMetrics();
    dash.schedule();
  }

  #addDevice(d: AcceleratorFacts): void {
    const dash = this.#dash;
    const key = deviceKey(d);
    if (!dash || !this.#deviceGrid || this.#devices.has(key)) return;
    this.#devices.set(key, d);
    const facts = () => this.#devices.get(key) ?? d;
    this.#panels.set(key, buildAcceleratorCard(dash, this.#deviceGrid, d, { compact: true, facts }));
  }
}
