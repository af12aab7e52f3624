// The TrackLab sidebar for JupyterLab 4: the wiring of its parts. The host section
// (host.ts: summary, live charts from js/charts.ts as in tracklab.widget(), one card per
// accelerator, recorder health) shows the node the node selector (nodes.ts) picks; beside it
// the cluster (cluster.ts), kernels (kernels.ts) and runs (runs.ts) sections, all on
// section.ts's base; alerts become JupyterLab notifications (alerts.ts), sidebar open or
// not. It talks to the server extension under `{base_url}tracklab/`: REST through
// ServerConnection (auth + XSRF) and the WebSocket `{base_url}tracklab/ws` (envelope
// {type, data, time, node}; js/PROTOCOL.md and tracklab_jupyter/server/ws_protocol.py). The
// socket, its REST fallback and reconnect backoff are ws.ts's Transport (the alert notifier
// has its own); the sections get the socket's frames through handleMessage; every number is
// written by js/format.ts, as in the widget.
import { ILayoutRestorer, type JupyterFrontEnd, type JupyterFrontEndPlugin } from "@jupyterlab/application";
import { ICommandPalette } from "@jupyterlab/apputils";
import { INotebookTracker, NotebookActions } from "@jupyterlab/notebook";
import { ISettingRegistry } from "@jupyterlab/settingregistry";
import { LabIcon } from "@jupyterlab/ui-components";
import { Widget } from "@lumino/widgets";

import { h } from "../../js/charts";
import { AlertNotifier } from "./alerts";
import { Api } from "./api";
import { CLUSTER_METRICS, ClusterSection, type ClusterInfo, type ClusterMetrics } from "./cluster";
import { HostSection, remoteInfo, sampleBatch } from "./host";
import { KernelsSection } from "./kernels";
import { NodeSelector } from "./nodes";
import { RunsSection } from "./runs";
import type { Section } from "./section";
import { Transport, type TransportMode } from "./ws";
import "./sidebar.css";

// the sidebar's pure helpers, exported here as before the split
export { describeDevices, historyBatch, sampleBatch } from "./host";

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

/**
 * The sidebar widget: the wiring of its parts. One {@link Transport} (socket, REST fallback,
 * backoff) whose frames go to the sections; the node selector (nodes.ts) says which node
 * the host section (host.ts: summary, charts, health) shows; the cluster, kernels and runs
 * sections; the layout; and the lifecycle (resume when shown, pause when hidden).
 */
export class TrackLabPanel extends Widget {
  readonly api = new Api();
  #settings: Settings = { ...DEFAULTS };
  #root: HTMLElement;
  #nodes: NodeSelector;
  #statusEl: HTMLElement;
  #host: HostSection;
  #runs: RunsSection;
  #cluster: ClusterSection;
  #kernels: KernelsSection;
  /** The socket's subscription includes `cluster_metrics`. */
  #clusterTopic = false;
  /** The server announced the `kernels` topic (its hello): the subscription asks for it. */
  #kernelsTopic = false;
  #active = false;
  #started = false;
  /** The socket, its REST fallback (this node's sample, the cluster's, the runs) and backoff. */
  #link: Transport;
  /** A start that failed is tried again after a backoff delay. */
  #retryTimer = 0;
  #epoch = 0;

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
    this.#nodes = new NodeSelector((node) => this.#show(node));
    this.#statusEl = h("span", "tl-status", { "data-field": "status" }, "connecting…");
    this.#host = new HostSection(this.api, {
      root: this.#root,
      node: () => this.#nodes.node,
      settings: () => this.#settings,
      onPolled: () => this.#transport("polling"),
      onError: (text) => this.#setStatus(text, true),
    });
    head.append(this.#nodes.el, this.#statusEl, this.#host.event);
    this.#runs = new RunsSection(this.api);
    this.#cluster = new ClusterSection(this.api, {
      onInfo: (info) => this.#setNodes(info),
      onSelect: (node) => this.#show(node),
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
    const host = this.#host;
    this.#root.append(head, this.#cluster.el, host.summary, host.health, this.#kernels.el, host.el, this.#runs.el);
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
      this.#host.setWindow(s.timeWindow);
      this.#cluster.setWindow();
    }
    if (old.metrics.join() !== s.metrics.join()) this.#host.applyMetrics();
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
    this.#host.dispose();
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
    for (const section of this.#sections()) section.resume();
    const epoch = ++this.#epoch;
    void this.#start(epoch);
  }

  /** Hidden: no socket, no polling, no timers. */
  #pause(): void {
    this.#active = false;
    this.#epoch++;
    for (const section of this.#sections()) section.pause();
    this.#link.stop();
    this.#clusterTopic = false;
    this.#kernelsTopic = false;
    this.#kernels.setStreaming(false);
    window.clearTimeout(this.#retryTimer);
    if (this.#started) this.#setStatus("paused");
    this.#root.setAttribute("data-state", this.#started ? "paused" : "waiting");
  }

  #sections(): Section[] {
    return [this.#runs, this.#cluster, this.#kernels, this.#host];
  }

  async #start(epoch: number): Promise<void> {
    try {
      if (!this.#started) {
        await this.#cluster.load(); // its onInfo fills the node selector
        const node = this.#nodes.node;
        await this.#host.load(this.#nodes.remote ? remoteInfo(node, this.#cluster.node(node), this.#cluster.info?.interval_s) : null);
        this.#started = true;
      }
      if (epoch !== this.#epoch) return;
      await Promise.all([this.#host.backfill(), this.#cluster.backfill()]);
      if (epoch !== this.#epoch) return;
      this.#root.setAttribute("data-state", "live");
      this.#link.start();
      this.#host.live();
    } catch (e) {
      if (epoch !== this.#epoch) return;
      this.#setStatus(`unavailable: ${(e as Error).message}`, true);
      this.#host.unavailable();
      this.#active = false;
      // try again later while visible
      this.#retryTimer = window.setTimeout(() => this.isVisible && this.#resume(), this.#link.backoff.next());
    }
  }

  // -- nodes -----------------------------------------------------------------------------
  /** `cluster/info` answered: the selector lists its nodes, the cluster section marks the one shown. */
  #setNodes(info: ClusterInfo): void {
    this.#nodes.update(info);
    this.#cluster.select(this.#nodes.node);
    // nodes joined after the subscription: add the cluster frames now
    if (this.#cluster.multi && !this.#clusterTopic) this.#subscribe();
  }

  /** A node picked (the dropdown or a cluster row): everything starts again for it. */
  #show(node: string): void {
    if (!this.#nodes.select(node)) return;
    this.#cluster.select(node);
    this.#pause();
    this.#started = false;
    this.#resume();
  }

  // -- live feed -------------------------------------------------------------------------
  #subscribe(): void {
    if (!this.#link.connected) return;
    const topics = ["system_metrics", "hardware_update", "run_update", "metric_update", "node_status"];
    // a node's whole sample every interval: only worth it when there are other nodes (or one is shown)
    this.#clusterTopic = this.#cluster.multi || this.#nodes.remote;
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
    // the host section filters by the node shown (frames of other nodes end there)
    if (this.#host.handleMessage(msg)) return;
    if (msg.type === "error") console.warn("tracklab ws:", msg.data);
  }

  /** One REST poll while the socket is down: this node's sample (or the shown cluster node's). */
  async #pollTick(): Promise<void> {
    if (!this.#active) return;
    if (this.#nodes.remote) {
      await this.#pollRemote();
      return;
    }
    void this.#cluster.poll();
    await this.#host.poll();
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
    const mine = this.#nodes.remote ? data?.nodes?.[this.#nodes.node] : undefined;
    if (mine?.metrics) this.#host.ingest(sampleBatch(Number(mine.time), mine.metrics));
  }

  #transport(kind: TransportMode): void {
    if (kind === "stopped") return; // paused: #pause says so
    this.#root.setAttribute("data-transport", kind);
    const node = this.#nodes.node;
    this.#setStatus(kind === "websocket" ? `live · ${node}` : `live (REST polling) · ${node}`);
  }
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
