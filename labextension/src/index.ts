// The TrackLab sidebar for JupyterLab 4: host summary, live charts (js/charts.ts, the same
// module as tracklab.widget()), one card per accelerator, node selector, recorder health,
// the cluster section (cluster.ts), the kernels section (kernels.ts) and the runs section;
// alerts become JupyterLab notifications (alerts.ts), sidebar open or not. It talks to the
// server extension under `{base_url}tracklab/`: REST through ServerConnection (auth + XSRF)
// and the WebSocket `{base_url}tracklab/ws` (envelope {type, data, time, node};
// js/PROTOCOL.md and tracklab_jupyter/server/ws_protocol.py). The socket, its REST
// fallback and reconnect backoff are ws.ts's Transport (the alert notifier has its own);
// the sections share section.ts's base and get the socket's frames through handleMessage;
// every number is written by js/format.ts, as in the widget.

import { ILayoutRestorer, type JupyterFrontEnd, type JupyterFrontEndPlugin } from "@jupyterlab/application";
import { ICommandPalette } from "@jupyterlab/apputils";
import { INotebookTracker, NotebookActions } from "@jupyterlab/notebook";
import { ISettingRegistry } from "@jupyterlab/settingregistry";
import { LabIcon } from "@jupyterlab/ui-components";
import { Widget } from "@lumino/widgets";

import { buildAcceleratorCard, deviceKey, vendorLabel, type AcceleratorFacts } from "../../js/accelerator_card";
import { Dashboard, finite, formatBytes, formatClock, h, matchesAny, type Batch, type Panel } from "../../js/charts";
import { buildHostPanels } from "../../js/host_panels";
import { isLive } from "../../js/node_status";
import { AlertNotifier } from "./alerts";
import { Api } from "./api";
import { CLUSTER_METRICS, ClusterSection, type ClusterInfo, type ClusterMetrics } from "./cluster";
import { KernelsSection } from "./kernels";
import { RunsSection } from "./runs";
import { Transport, type TransportMode } from "./ws";
import "./sidebar.css";

const PLUGIN_ID = "tracklab-jupyter:plugin";
const CMD_OPEN = "tracklab:open-monitor";
const CMD_INSERT = "tracklab:insert-monitor-cell";
export const MONITOR_CELL = "import tracklab\ntracklab.widget()";

const ICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
<g class="jp-icon3" fill="#616161"><rect x="3" y="13" width="3" height="8" rx="1"/><rect x="8.5" y="9" width="3" height="12" rx="1"/>
<rect x="14" y="5" width="3" height="16" rx="1"/><rect x="19.5" y="2" width="2.5" height="19" rx="1"/></g></svg>`;
export const trackLabIcon = new LabIcon({ name: "tracklab-jupyter:icon", svgstr: ICON_SVG });

export interface Settings {
  refreshInterval: number;
  timeWindow: number;
  metrics: string[];
  /** JupyterLab notifications for TrackLab alerts (client side; the server: c.TrackLab.alerts). */
  alertNotifications: boolean;
  /** Alert rules this browser does not notify about. */
  mutedAlertRules: string[];
}
const DEFAULTS: Settings = { refreshInterval: 1, timeWindow: 300, metrics: [], alertNotifications: true, mutedAlertRules: [] };
/** The WebSocket topic of the kernels section (servers before it do not announce it). */
const KERNELS_TOPIC = "kernels";

const BACKOFF_MIN_MS = 1000;
const BACKOFF_MAX_MS = 30_000;
/** Re-poll of the runs list while the socket is down (it has no run_update then). */
const RUNS_POLL_MS = 3000;


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

/** The sidebar widget. */
export class TrackLabPanel extends Widget {
  readonly api = new Api();
  #settings: Settings = { ...DEFAULTS };
  #root: HTMLElement;
  #nodeSel: HTMLSelectElement;
  #statusEl: HTMLElement;
  #eventEl: HTMLElement;
  #summary: HTMLElement;
  #healthEl: HTMLElement;
  #body: HTMLElement;
  #runs: RunsSection;
  #cluster: ClusterSection;
  #kernels: KernelsSection;
  #dash: Dashboard | null = null;
  #deviceGrid: HTMLElement | null = null;
  #panels = new Map<string, { panel: Panel; metrics: string[] }>();
  /** Accelerators with a card, by `deviceKey` (`gpu.0`, `npu.1`), with their newest facts. */
  #devices = new Map<string, AcceleratorFacts>();
  #node = "";
  /** This server's own node: the only one `system/*` answers for; others come from the cluster. */
  #localNode = "";
  #nodeOptions = "";
  /** The socket's subscription includes `cluster_metrics`. */
  #clusterTopic = false;
  /** The server announced the `kernels` topic (its hello): the subscription asks for it. */
  #kernelsTopic = false;
  #points = 0;
  #active = false;
  #started = false;
  /** The socket, its REST fallback (this node's sample, the cluster's, the runs) and backoff. */
  #link: Transport;
  /** A start that failed is tried again after a backoff delay. */
  #retryTimer = 0;
  #healthTimer = 0;
  #etag = "";
  #lastTime = 0;
  #epoch = 0;
  #memLimit: number | null = null;

  /** `open`: opens a notebook by its server path (a click on a kernel's row). */
  constructor(open: (path: string) => void = () => undefined) {
    super();
    this.id = "tracklab-monitor";
    this.addClass("tl-sidebar");
    this.title.icon = trackLabIcon;
    this.title.caption = "TrackLab monitor";
    this.#root = h("div", "tl-sideroot tl-theme tl-side", { "data-state": "waiting", "data-points": "0", "data-transport": "" });
    const head = h("div", "tl-header");
    head.append(h("span", "tl-brand", undefined, "TrackLab"));
    this.#nodeSel = h("select", "tl-node-select", { "aria-label": "node", "data-field": "node" });
    this.#nodeSel.addEventListener("change", () => this.#selectNode(this.#nodeSel.value));
    this.#statusEl = h("span", "tl-status", { "data-field": "status" }, "connecting…");
    this.#eventEl = h("span", "tl-event", { "data-field": "event" });
    this.#eventEl.hidden = true;
    head.append(this.#nodeSel, this.#statusEl, this.#eventEl);
    this.#summary = h("div", "tl-summary", { "data-field": "summary" }, "loading system info…");
    this.#healthEl = h("div", "tl-health", { "data-field": "health" });
    this.#body = h("div", "tl-body");
    this.#runs = new RunsSection(this.api);
    this.#cluster = new ClusterSection(this.api, {
      onInfo: (info) => this.#setNodes(info),
      onSelect: (node) => {
        this.#nodeSel.value = node;
        void this.#selectNode(node);
      },
      windowS: () => this.#settings.timeWindow,
    });
    this.#kernels = new KernelsSection(this.api, { open, refreshS: () => this.#settings.refreshInterval });
    this.#link = new Transport({
      url: () => this.api.wsUrl(),
      backoffMs: [BACKOFF_MIN_MS, BACKOFF_MAX_MS],
      onOpen: () => {
        this.#kernelsTopic = false; // a new session: its hello says again
        this.#subscribe();
        // run changes made before the subscription (or while the socket was down) never
        // arrive as run_update: list them once it is in place
        void this.#runs.load();
      },
      onMessage: (msg) => this.#onMessage(msg),
      onClose: () => this.#kernels.setStreaming(false),
      onMode: (mode) => this.#transport(mode),
      polls: [
        { everyMs: () => Math.max(0.2, this.#settings.refreshInterval) * 1000, run: () => void this.#pollTick() },
        // the runs list has no run_update while the socket is down
        { everyMs: () => RUNS_POLL_MS, run: () => void this.#runs.load(), later: true },
      ],
    });
    this.#root.append(head, this.#cluster.el, this.#summary, this.#healthEl, this.#kernels.el, this.#body, this.#runs.el);
    this.node.append(this.#root);
  }

  get settings(): Settings {
    return this.#settings;
  }

  set settings(s: Settings) {
    const old = this.#settings;
    this.#settings = s;
    if (!this.#started) return;
    if (old.timeWindow !== s.timeWindow) {
      this.#dash?.setWindow(s.timeWindow);
      this.#cluster.setWindow();
    }
    if (old.metrics.join() !== s.metrics.join()) this.#applyMetrics();
    if (old.refreshInterval !== s.refreshInterval || old.metrics.join() !== s.metrics.join()) this.#subscribe();
    this.#link.repoll();
    if (old.refreshInterval !== s.refreshInterval) this.#kernels.refreshChanged();
  }

  // -- lifecycle (Lumino) ----------------------------------------------------------------
  protected onAfterShow(): void {
    this.#resume();
  }

  protected onBeforeHide(): void {
    this.#pause();
  }

  protected onAfterAttach(): void {
    if (this.isVisible) this.#resume();
  }

  protected onBeforeDetach(): void {
    this.#pause();
  }

  dispose(): void {
    this.#pause();
    this.#dash?.dispose();
    super.dispose();
  }

  #setStatus(text: string, error = false): void {
    this.#statusEl.textContent = text;
    this.#statusEl.classList.toggle("tl-status-error", error);
  }

  /** Opened (or shown again): load facts, backfill the window, go live. */
  #resume(): void {
    if (this.#active) return;
    this.#active = true;
    // runs come from their own endpoint: listed even while system info is unavailable
    this.#runs.resume();
    this.#cluster.resume();
    this.#kernels.resume();
    const epoch = ++this.#epoch;
    void this.#start(epoch);
  }

  /** Hidden: no socket, no polling, no timers. */
  #pause(): void {
    this.#active = false;
    this.#epoch++;
    this.#runs.pause();
    this.#cluster.pause();
    this.#kernels.pause();
    this.#link.stop();
    this.#clusterTopic = false;
    this.#kernelsTopic = false;
    this.#kernels.setStreaming(false);
    window.clearTimeout(this.#retryTimer);
    window.clearInterval(this.#healthTimer);
    this.#healthTimer = 0;
    if (this.#started) this.#setStatus("paused");
    this.#root.setAttribute("data-state", this.#started ? "paused" : "waiting");
  }

  async #start(epoch: number): Promise<void> {
    try {
      if (!this.#started) {
        await this.#loadNodes();
        await this.#loadInfo();
        this.#started = true;
      }
      if (epoch !== this.#epoch) return;
      await Promise.all([this.#backfill(), this.#cluster.backfill()]);
      if (epoch !== this.#epoch) return;
      this.#root.setAttribute("data-state", "live");
      this.#link.start();
      void this.#loadHealth();
      this.#healthTimer = window.setInterval(() => void this.#loadHealth(), 10_000);
    } catch (e) {
      if (epoch !== this.#epoch) return;
      this.#setStatus(`unavailable: ${(e as Error).message}`, true);
      this.#summary.textContent = "The tracklab server extension did not answer; is it enabled (jupyter server extension list)?";
      this.#active = false;
      // try again later while visible
      this.#retryTimer = window.setTimeout(() => this.isVisible && this.#resume(), this.#link.backoff.next());
    }
  }

  // -- REST ----------------------------------------------------------------------------
  async #loadNodes(): Promise<void> {
    await this.#cluster.load(); // its onInfo fills the selector
  }

  /** The node selector lists every node of `cluster/info` (those not live marked with their status). */
  #setNodes(info: ClusterInfo): void {
    const nodes = info.nodes ?? [];
    this.#localNode = nodes.find((n) => n.role === "local")?.node ?? nodes[0]?.node ?? "";
    const names = nodes.map((n) => n.node);
    if (!this.#node) this.#node = this.#localNode;
    const options: [string, string][] = nodes.map((n) => [n.node, isLive(n.status) ? n.node : `${n.node} (${n.status})`]);
    // a selected node that left the cluster stays selected (its charts stop) until another is picked
    if (this.#node && !names.includes(this.#node)) options.push([this.#node, `${this.#node} (left)`]);
    // rebuilt only when something changed: an open dropdown is not closed every few seconds
    const key = JSON.stringify(options);
    if (key !== this.#nodeOptions) {
      this.#nodeOptions = key;
      this.#nodeSel.textContent = "";
      for (const [value, label] of options) this.#nodeSel.append(h("option", undefined, { value }, label));
    }
    this.#nodeSel.value = this.#node;
    this.#nodeSel.disabled = nodes.length < 2;
    this.#nodeSel.title = nodes.length < 2 ? "one node (clusters list their nodes here)" : "node shown by the charts below";
    this.#cluster.select(this.#node);
    // nodes joined after the subscription: add the cluster frames now
    if (this.#cluster.multi && !this.#clusterTopic) this.#subscribe();
  }

  /** A cluster node other than this server's host: charts fed by the cluster topics. */
  #remote(): boolean {
    return !!this.#localNode && !!this.#node && this.#node !== this.#localNode;
  }

  async #selectNode(node: string): Promise<void> {
    if (node === this.#node) return;
    this.#node = node;
    this.#cluster.select(node);
    this.#pause();
    this.#started = false;
    this.#resume();
  }

  async #loadInfo(): Promise<void> {
    const info = this.#remote() ? this.#remoteInfo() : await this.api.get<any>("system/info", { node: this.#node });
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
    this.#summary.textContent = "";
    const dl = h("dl", "tl-facts");
    for (const [k, v] of rows) {
      if (!v) continue;
      dl.append(h("dt", undefined, undefined, k), h("dd", undefined, { "data-fact": k }, v));
    }
    this.#summary.append(dl);
    this.#build(Number(info.interval_s) || 1, devices);
  }

  /**
   * `system/info` answers for this server's host only: a cluster node's facts are the
   * resources `cluster/info` lists (no GPU names; its cards are titled by index).
   */
  #remoteInfo(): any {
    const n = this.#cluster.node(this.#node);
    const r = n?.resources ?? {};
    const gpus = Number(r.gpus) || 0;
    return {
      node: this.#node,
      interval_s: this.#cluster.info?.interval_s,
      system: { hostname: `${this.#node}${n ? ` (${n.role}${n.address ? ` · ${n.address}` : ""})` : ""}`, cpu_logical_cores: r.cores },
      memory: { total_bytes: r.memory_bytes },
      accelerators: Array.from({ length: gpus }, (_, index) => ({ index, kind: "gpu" })),
    };
  }

  async #loadHealth(): Promise<void> {
    try {
      const hl = await this.api.get<any>("health");
      const age = finite(hl.last_sample_age_s) ? `${hl.last_sample_age_s.toFixed(1)} s ago` : "no sample yet";
      const size = hl.store?.size_bytes != null ? ` · store ${formatBytes(hl.store.size_bytes)}` : "";
      const text = `recorder: ${hl.status} · ${hl.role} · last sample ${age}${size}`;
      this.#healthEl.textContent = text;
      this.#healthEl.setAttribute("data-status", String(hl.status));
      this.#healthEl.title = hl.error ? String(hl.error) : (hl.store?.path ?? "");
    } catch (e) {
      this.#healthEl.textContent = `recorder: unknown (${(e as Error).message})`;
      this.#healthEl.setAttribute("data-status", "unknown");
    }
  }

  async #backfill(): Promise<void> {
    if (!this.#dash) return;
    const since = this.#lastTime > 0 ? Math.max(this.#lastTime, Date.now() / 1000 - this.#settings.timeWindow) : Date.now() / 1000 - this.#settings.timeWindow;
    const params: Record<string, string> = { start: String(since), node: this.#node };
    if (this.#settings.metrics.length) params.metrics = this.#settings.metrics.join(",");
    try {
      const table = await this.api.get<any>("history", params);
      const batch = historyBatch(table);
      // keep only rows after what we already have
      if (batch.n) this.#ingest(batch);
    } catch (e) {
      console.warn("tracklab: backfill failed", e);
    }
  }

  // -- live feed -------------------------------------------------------------------------
  #subscribe(): void {
    if (!this.#link.connected) return;
    const topics = ["system_metrics", "hardware_update", "run_update", "metric_update", "node_status"];
    // a node's whole sample every interval: only worth it when there are other nodes (or one is shown)
    this.#clusterTopic = this.#cluster.multi || this.#remote();
    if (this.#clusterTopic) topics.push("cluster_metrics");
    if (this.#kernelsTopic) topics.push(KERNELS_TOPIC);
    const msg: Record<string, unknown> = { type: "subscribe", topics, interval: this.#settings.refreshInterval };
    // the metric filter applies to cluster frames too: the rows' metrics must pass it
    if (this.#settings.metrics.length) msg.metrics = [...new Set([...this.#settings.metrics, ...CLUSTER_METRICS])];
    this.#link.send(msg);
  }

  /** One frame of the socket (a JSON object). */
  #onMessage(msg: any): void {
    // runs (whichever node they ran on), this server's kernels, the cluster's node statuses:
    // before the node filter
    for (const section of [this.#runs, this.#kernels, this.#cluster]) if (section.handleMessage(msg)) return;
    if (msg.type === "hello") {
      // asked for only where the server announces it: a server without the topic would
      // refuse the whole subscription (the section then polls api/kernels)
      if (Array.isArray(msg.data?.topics) && msg.data.topics.includes(KERNELS_TOPIC)) {
        this.#kernelsTopic = true;
        this.#subscribe();
      }
      return;
    }
    if (msg.type === "subscribed") {
      this.#kernels.setStreaming(Array.isArray(msg.data?.topics) && msg.data.topics.includes(KERNELS_TOPIC));
      return;
    }
    // cluster topics carry every node: before the node filter too
    if (msg.type === "cluster_metrics") {
      this.#ingestCluster(msg.data);
      return;
    }
    if (this.#node && msg.node && msg.node !== this.#node) return;
    if (msg.type === "system_metrics" && msg.data?.metrics) {
      this.#ingest(sampleBatch(Number(msg.data.time ?? msg.time), msg.data.metrics));
    } else if (msg.type === "hardware_update") {
      for (const d of msg.data?.state?.accelerators ?? []) {
        const key = deviceKey(d);
        if (!this.#devices.has(key)) this.#addDevice(d);
        else this.#devices.set(key, { ...this.#devices.get(key), ...d });
      }
      const ev = msg.data?.event;
      if (ev?.message) {
        this.#eventEl.hidden = false;
        this.#eventEl.textContent = `${formatClock(Number(ev.time ?? msg.time))} ${ev.message}`;
        if (ev.kind) this.#eventEl.setAttribute("data-kind", String(ev.kind));
      }
    } else if (msg.type === "error") {
      console.warn("tracklab ws:", msg.data);
    }
  }

  /** One REST poll while the socket is down: this node's sample (or the shown cluster node's). */
  async #pollTick(): Promise<void> {
    if (!this.#active) return;
    if (this.#remote()) {
      await this.#pollRemote();
      return;
    }
    void this.#cluster.poll();
    try {
      const params: Record<string, string> = { node: this.#node };
      if (this.#settings.metrics.length) params.metrics = this.#settings.metrics.join(",");
      const r = await this.api.request("system/metrics", { method: "GET", headers: this.#etag ? { "If-None-Match": this.#etag } : {} }, params);
      if (r.status === 200) {
        this.#etag = r.headers.get("ETag") ?? "";
        const body = await r.json();
        this.#ingest(sampleBatch(Number(body.time), body.metrics ?? {}));
        this.#transport("polling");
      } else if (r.status !== 304) {
        this.#setStatus(`polling: HTTP ${r.status}`, true);
      }
    } catch (e) {
      this.#setStatus(`offline: ${(e as Error).message}`, true);
    }
  }

  /** Polling while a cluster node is shown: one `cluster/metrics` answer feeds both. */
  async #pollRemote(): Promise<void> {
    try {
      const params: Record<string, string> = {};
      if (this.#settings.metrics.length) params.metrics = [...new Set([...this.#settings.metrics, ...CLUSTER_METRICS])].join(",");
      this.#ingestCluster(await this.api.get<ClusterMetrics>("cluster/metrics", params));
      this.#transport("polling");
    } catch (e) {
      this.#setStatus(`offline: ${(e as Error).message}`, true);
    }
  }

  /** Cluster samples: the section's rows, and the charts when they show a cluster node. */
  #ingestCluster(data: ClusterMetrics | undefined): void {
    this.#cluster.ingest(data);
    const mine = this.#remote() ? data?.nodes?.[this.#node] : undefined;
    if (mine?.metrics) this.#ingest(sampleBatch(Number(mine.time), mine.metrics));
  }

  #transport(kind: TransportMode): void {
    if (kind === "stopped") return; // paused: #pause says so
    this.#root.setAttribute("data-transport", kind);
    this.#setStatus(kind === "websocket" ? `live · ${this.#node}` : `live (REST polling) · ${this.#node}`);
  }

  #ingest(batch: Batch): void {
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
    this.#root.setAttribute("data-points", String(this.#points));
  }

  // -- view ------------------------------------------------------------------------------
  #build(intervalS: number, devices: AcceleratorFacts[]): void {
    this.#dash?.dispose();
    this.#panels.clear();
    this.#devices.clear();
    this.#points = 0;
    this.#lastTime = 0;
    this.#body.textContent = "";
    const dash = new Dashboard(this.#body, { windowS: this.#settings.timeWindow, height: 90, intervalS });
    this.#dash = dash;
    const host = h("div", "tl-grid tl-host");
    this.#deviceGrid = h("div", "tl-grid tl-devices");
    this.#body.append(host, this.#deviceGrid);
    const panels = buildHostPanels(dash, host, { memLimit: () => this.#memLimit, compact: true });
    for (const [key, entry] of panels) this.#panels.set(key, entry);

    for (const d of devices) this.#addDevice(d);
    dash.afterDraw(() => {
      const t = dash.store.lastTime();
      this.#root.setAttribute("data-last-time", Number.isFinite(t) ? String(t) : "");
    });
    this.#applyMetrics();
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

  #applyMetrics(): void {
    const globs = this.#settings.metrics;
    for (const { panel, metrics } of this.#panels.values()) panel.el.hidden = globs.length > 0 && !metrics.some((x) => matchesAny(x, globs));
    this.#dash?.schedule();
  }
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

function readSettings(s: ISettingRegistry.ISettings): Settings {
  const c = s.composite as Partial<Settings>;
  return {
    refreshInterval: Number(c.refreshInterval) > 0 ? Number(c.refreshInterval) : DEFAULTS.refreshInterval,
    timeWindow: Number(c.timeWindow) > 0 ? Number(c.timeWindow) : DEFAULTS.timeWindow,
    metrics: Array.isArray(c.metrics) ? c.metrics.filter((x) => typeof x === "string") : [],
    alertNotifications: typeof c.alertNotifications === "boolean" ? c.alertNotifications : DEFAULTS.alertNotifications,
    mutedAlertRules: Array.isArray(c.mutedAlertRules) ? c.mutedAlertRules.filter((x) => typeof x === "string") : [],
  };
}

function alertSettings(s: Settings): { enabled: boolean; muted: string[] } {
  return { enabled: s.alertNotifications, muted: s.mutedAlertRules };
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: "TrackLab: live system and GPU monitoring in the left sidebar",
  autoStart: true,
  optional: [ICommandPalette, ISettingRegistry, INotebookTracker, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    palette: ICommandPalette | null,
    registry: ISettingRegistry | null,
    tracker: INotebookTracker | null,
    restorer: ILayoutRestorer | null,
  ) => {
    const open = (path: string) => void app.commands.execute("docmanager:open", { path }).catch((e) => console.warn("tracklab: cannot open", path, e));
    const panel = new TrackLabPanel(open);
    app.shell.add(panel, "left", { rank: 900 });
    // alerts are shown whether the sidebar is open or not: started here, with the settings
    const alerts = new AlertNotifier(panel.api, { open });
    restorer?.add(panel, panel.id);

    app.commands.addCommand(CMD_OPEN, {
      label: "TrackLab: Open monitor",
      caption: "Show the TrackLab system and GPU monitor in the left sidebar",
      icon: trackLabIcon,
      execute: () => app.shell.activateById(panel.id),
    });
    app.commands.addCommand(CMD_INSERT, {
      label: "TrackLab: Insert monitor cell",
      caption: "Insert a code cell that shows tracklab.widget() below the active cell",
      isEnabled: () => !!tracker?.currentWidget,
      execute: () => {
        const nb = tracker?.currentWidget;
        if (!nb) return;
        const notebook = nb.content;
        NotebookActions.insertBelow(notebook);
        notebook.activeCell?.model.sharedModel.setSource(MONITOR_CELL);
        app.shell.activateById(nb.id);
      },
    });
    if (palette) {
      palette.addItem({ command: CMD_OPEN, category: "TrackLab" });
      palette.addItem({ command: CMD_INSERT, category: "TrackLab" });
    }
    if (registry) {
      registry
        .load(PLUGIN_ID)
        .then((s) => {
          panel.settings = readSettings(s);
          alerts.configure(alertSettings(panel.settings));
          s.changed.connect(() => {
            panel.settings = readSettings(s);
            alerts.configure(alertSettings(panel.settings));
          });
        })
        .catch((e) => {
          console.warn("tracklab: settings not loaded", e);
          alerts.configure(alertSettings(DEFAULTS));
        });
    } else {
      alerts.configure(alertSettings(DEFAULTS));
    }
  },
};

export default plugin;
