// The sidebar's cluster section (contract: docs/CLUSTER.md): the nodes from
// `GET api/cluster/info` with totals and use, one row per node with its status badge
// and three sparklines (CPU, memory, mean GPU utilisation) over the sidebar's time window.
// The sparklines are backfilled from `GET api/history` (every node in one answer) and then
// follow the WebSocket topics `cluster_metrics` and `node_status` (or `api/cluster/metrics`
// while the panel falls back to REST polling). A click on a row selects that node.

import { MISSING, formatBytes, formatBytesOf, formatClock, formatPct, h } from "../../js/charts";
import { isLive } from "../../js/node_status";
import { ApiError, type Api } from "./api";
import { Section, type Frame } from "./section";
import { Trail, axisStart, finite, setText, sparkPath, sparkSvg } from "./spark";

export interface NodeResources {
  cores?: number | null;
  memory_bytes?: number | null;
  gpus?: number | null;
}

export interface ClusterNode {
  node: string;
  address?: string;
  role: string;
  /** up | starting | stale | down (docs/CLUSTER.md, "Node status"). */
  status: string;
  last_seen?: number | null;
  resources?: NodeResources;
  error?: string | null;
  /** Only in `node_status` messages: why the status changed. */
  reason?: string;
}

export interface ClusterInfo {
  provider: string;
  address?: string;
  interval_s?: number;
  node_timeout_s?: number | null;
  nodes: ClusterNode[];
  totals?: { nodes?: number; up?: number; cores?: number; memory_bytes?: number; gpus?: number };
  used?: { cpu_cores?: number; memory_bytes?: number; gpu_memory_bytes?: number; gpu_util_pct?: number | null };
}

interface NodeSample {
  time: number;
  metrics: Record<string, number | null>;
}

/** `cluster_metrics` frames and `GET api/cluster/metrics`. */
export interface ClusterMetrics {
  provider?: string;
  nodes?: Record<string, NodeSample>;
}

interface HistoryTable {
  time?: number[];
  series?: { node: string; metric: string; values: (number | null)[] }[];
}

type Kind = "cpu" | "mem" | "gpu";
const KINDS: { kind: Kind; label: string; title: string }[] = [
  { kind: "cpu", label: "CPU", title: "CPU utilisation (cpu.util_pct)" },
  { kind: "mem", label: "mem", title: "memory used (mem.util_pct)" },
  { kind: "gpu", label: "GPU", title: "mean GPU utilisation (gpu.*.util_pct)" },
];
/** The metrics the rows need; added to the socket's metric filter when the user set one. */
export const CLUSTER_METRICS = ["cpu.util_pct", "mem.util_pct", "gpu.*.util_pct"];
const GPU_UTIL = /^gpu\.\d+\.util_pct$/;

const INFO_REFRESH_MS = 10_000;
/** node_status often comes in bursts (a whole host going away): one info fetch for them. */
const INFO_DEBOUNCE_MS = 300;

/** The mean of a sample's per-device `gpu.N.util_pct` (NaN without GPUs). */
export function gpuMean(metrics: Record<string, number | null | undefined>): number {
  let sum = 0;
  let n = 0;
  for (const [k, v] of Object.entries(metrics)) {
    if (GPU_UTIL.test(k) && finite(v)) {
      sum += v;
      n++;
    }
  }
  return n ? sum / n : NaN;
}

/** The three sparkline values of one sample (NaN where the node does not report it). */
export function rowValues(metrics: Record<string, number | null | undefined>): Record<Kind, number> {
  const cpu = metrics["cpu.util_pct"];
  const mem = metrics["mem.util_pct"];
  return { cpu: finite(cpu) ? cpu : NaN, mem: finite(mem) ? mem : NaN, gpu: gpuMean(metrics) };
}

function formatCores(v: number | null | undefined): string {
  if (!finite(v)) return MISSING;
  return Number.isInteger(v) ? String(v) : v.toFixed(1);
}

interface Spark {
  box: HTMLElement;
  path: SVGPathElement;
  value: HTMLElement;
  trail: Trail;
}

interface Row {
  el: HTMLElement;
  badge: HTMLElement;
  name: HTMLElement;
  role: HTMLElement;
  res: HTMLElement;
  sparks: Record<Kind, Spark>;
}

export interface ClusterSectionOptions {
  /** Every `cluster/info` answer (the node selector follows it). */
  onInfo: (info: ClusterInfo) => void;
  /** A click on a node's row. */
  onSelect: (node: string) => void;
  /** The sidebar's time window in seconds. */
  windowS: () => number;
}

export class ClusterSection extends Section {
  #opts: ClusterSectionOptions;
  #where: HTMLElement;
  #totals: HTMLElement;
  #use: HTMLElement;
  #error: HTMLElement;
  #list: HTMLElement;
  #hint: HTMLElement;
  #info: ClusterInfo | null = null;
  #nodes = new Map<string, ClusterNode>();
  /** Nodes seen in cluster frames before `cluster/info` listed them. */
  #unlisted = new Set<string>();
  #rows = new Map<string, Row>();
  /** Per node and kind; a node no longer listed keeps its values until they age out. */
  #trails = new Map<string, Record<Kind, Trail>>();
  #selected = "";
  #backfilled = false;
  /** A whole window was backfilled once: after a pause only the gap is asked for. */
  #filled = false;
  #pausedAt = 0;
  #frame = 0;

  constructor(api: Api, opts: ClusterSectionOptions) {
    super(api, h("section", "tl-panel tl-cluster", { "data-field": "cluster-section", "data-nodes": "0", "data-up": "0" }));
    this.#opts = opts;
    const head = h("header", "tl-panel-head");
    this.#where = h("span", "tl-cluster-where", { "data-field": "cluster-where" });
    head.append(h("span", "tl-cluster-title", undefined, "Cluster"), this.#where);
    this.#totals = h("div", "tl-cluster-line", { "data-field": "cluster-totals" });
    this.#use = h("div", "tl-cluster-line tl-cluster-use", { "data-field": "cluster-use" });
    this.#error = h("div", "tl-cluster-error", { "data-field": "cluster-error" });
    this.#error.hidden = true;
    this.#list = h("div", "tl-node-list", { "data-field": "node-list", role: "list" });
    // with only this host there is nothing to compare: one line that says how to add nodes
    this.#hint = h("div", "tl-cluster-hint", { "data-field": "cluster-hint" });
    this.#hint.append("Cluster: this host only · configure ", h("code", undefined, undefined, "c.TrackLab.cluster"));
    this.#hint.title = 'e.g. c.TrackLab.cluster = "dask://scheduler:8786" or "ray:auto" (docs/CLUSTER.md)';
    this.el.append(head, this.#totals, this.#use, this.#error, this.#list, this.#hint);
    this.el.setAttribute("data-mode", "solo");
  }

  /** More than this host: the rows are worth showing and the live topics worth their cost. */
  get multi(): boolean {
    return this.#nodes.size > 1;
  }

  get info(): ClusterInfo | null {
    return this.#info;
  }

  node(name: string): ClusterNode | undefined {
    return this.#nodes.get(name);
  }

  /** The panel is visible: re-read the nodes every few seconds (totals, joins, leaves). */
  protected onResume(): void {
    this.every("refresh", INFO_REFRESH_MS, () => void this.load().catch(() => undefined));
  }

  protected onPause(): void {
    this.#pausedAt = Date.now() / 1000;
  }

  /** `GET api/cluster/info`; throws when the server does not answer (the panel shows why). */
  async load(): Promise<ClusterInfo> {
    const seq = this.nextLoad();
    let info: ClusterInfo;
    try {
      info = await this.api.get<ClusterInfo>("cluster/info");
    } catch (e) {
      if (this.isLatest(seq) && this.#info) {
        this.#error.hidden = false;
        this.#error.textContent = `cluster not refreshed: ${(e as Error).message}`;
      }
      throw e;
    }
    // an older answer overtaken by a newer one (node_status and the timer both load)
    if (!this.isLatest(seq)) return this.#info ?? info;
    this.#error.hidden = true;
    const wasMulti = this.multi;
    this.#nodes = this.#merge(info.nodes ?? []);
    this.#info = info;
    this.#changed();
    // nodes joined a cluster that had only this host: fill their window now
    if (this.active && !wasMulti && this.multi && this.#backfilled) void this.backfill();
    return info;
  }

  /**
   * The listed nodes in the server's order (this host first, then by name; a node that left
   * stays listed down for a while). `cluster/info` has no `reason`: a node that is not live
   * keeps the one its node_status gave until it is back.
   */
  #merge(listed: ClusterNode[]): Map<string, ClusterNode> {
    const fresh = new Map<string, ClusterNode>();
    for (const n of listed) {
      this.#unlisted.delete(n.node);
      const old = this.#nodes.get(n.node);
      const reason = !isLive(n.status) && old && !isLive(old.status) ? old.reason : undefined;
      fresh.set(n.node, reason ? { ...n, reason } : n);
    }
    return fresh;
  }

  select(node: string): void {
    this.#selected = node;
    for (const [name, row] of this.#rows) {
      row.el.classList.toggle("tl-node-selected", name === node);
      row.el.setAttribute("aria-current", name === node ? "true" : "false");
    }
  }

  /**
   * The sparklines' window from `api/history`: all nodes in one answer. After a pause only
   * the gap is asked for. GPU utilisation is a separate query, made only when some node has
   * GPUs: a glob that matches nothing stored is a 400.
   */
  async backfill(): Promise<void> {
    this.#backfilled = true;
    if (!this.multi) return;
    const now = Date.now() / 1000;
    const windowS = this.#opts.windowS();
    const gap = this.#filled && this.#pausedAt > 0 && now - this.#pausedAt < windowS;
    const start = gap ? String(this.#pausedAt - 5) : `-${Math.round(windowS)}s`;
    const hasGpus = [...this.#nodes.values()].some((n) => (n.resources?.gpus ?? 0) > 0);
    const ask = (metrics: string) =>
      this.api.get<HistoryTable>("history", { metrics, start }).catch((e) => {
        // a fresh store (nothing recorded yet) answers 400 for names it has not seen
        if (!(e instanceof ApiError && e.status === 400)) console.warn("tracklab: cluster backfill failed", e);
        return null;
      });
    const [base, gpu] = await Promise.all([ask("cpu.util_pct,mem.util_pct"), hasGpus ? ask("gpu.*.util_pct") : null]);
    if (base) this.#mergeHistory(base);
    if (gpu) this.#mergeHistory(gpu);
    this.#filled = true;
    this.#schedule();
  }

  #mergeHistory(table: HistoryTable): void {
    const times = table.time ?? [];
    const gpus = new Map<string, (number | null)[][]>();
    for (const s of table.series ?? []) {
      if (GPU_UTIL.test(s.metric)) {
        const list = gpus.get(s.node) ?? [];
        list.push(s.values);
        gpus.set(s.node, list);
      } else if (s.metric === "cpu.util_pct" || s.metric === "mem.util_pct") {
        const kind: Kind = s.metric === "cpu.util_pct" ? "cpu" : "mem";
        this.#trailsOf(s.node)[kind].mergeColumn(times, s.values);
      }
    }
    // the mean over a node's devices at each time one of them has a value
    for (const [node, columns] of gpus) {
      const ts: number[] = [];
      const vs: number[] = [];
      times.forEach((t, i) => {
        let sum = 0;
        let n = 0;
        for (const col of columns) {
          const v = col[i];
          if (finite(v)) {
            sum += v;
            n++;
          }
        }
        if (n) {
          ts.push(t);
          vs.push(sum / n);
        }
      });
      this.#trailsOf(node).gpu.merge(ts, vs);
    }
  }

  /** A `cluster_metrics` frame (or a polled `api/cluster/metrics` answer). */
  ingest(data: ClusterMetrics | null | undefined): void {
    let unknown = false;
    let revived = false;
    for (const [node, sample] of Object.entries(data?.nodes ?? {})) {
      if (!sample?.metrics) continue;
      // a node not listed yet: one info fetch for it, not one per frame
      if (!this.#nodes.has(node) && !this.#unlisted.has(node)) {
        this.#unlisted.add(node);
        unknown = true;
      }
      const t = Number(sample.time);
      const values = rowValues(sample.metrics);
      const trails = this.#trailsOf(node);
      const newer = t > Math.max(...KINDS.map((k) => trails[k.kind].lastTime()));
      for (const { kind } of KINDS) trails[kind].push(t, values[kind]);
      // a new answer: up even before node_status or the next info says so (a repeated
      // old sample, as of a stale local recorder, is no sign of life)
      const known = this.#nodes.get(node);
      if (known && !isLive(known.status) && newer) {
        this.#nodes.set(node, { ...known, status: "up", error: null, reason: undefined });
        revived = true;
      }
    }
    if (revived) this.#changed();
    if (unknown || revived) this.#scheduleLoad(); // new nodes, or totals that changed
    this.#schedule();
  }

  /** `node_status` frames (`cluster_metrics` ones the panel hands to `ingest`: its charts may show a node). */
  handleMessage(msg: Frame): boolean {
    if (msg.type !== "node_status") return false;
    this.nodeStatus(msg.data);
    return true;
  }

  /** A `node_status` message: the row changes now, the totals follow from a fresh info. */
  nodeStatus(status: ClusterNode | null | undefined): void {
    if (!status?.node) return;
    this.#nodes.set(status.node, { ...this.#nodes.get(status.node), ...status });
    this.#changed();
    this.#scheduleLoad();
  }

  /** REST fallback: the latest sample of every node that is up, the sparklines' metrics only. */
  async poll(): Promise<void> {
    if (!this.multi) return;
    try {
      this.ingest(await this.api.get<ClusterMetrics>("cluster/metrics", { metrics: CLUSTER_METRICS.join(",") }));
    } catch (e) {
      console.warn("tracklab: cluster/metrics failed", e);
    }
  }

  setWindow(): void {
    this.#schedule();
  }

  /** The node statuses changed: the rows now, and the owner (the node selector). */
  #changed(): void {
    if (!this.#info) return;
    this.#info = { ...this.#info, nodes: [...this.#nodes.values()] };
    this.#render();
    this.#opts.onInfo(this.#info);
  }

  #scheduleLoad(): void {
    if (!this.active) return;
    this.later("info", INFO_DEBOUNCE_MS, () => void this.load().catch(() => undefined));
  }

  #trailsOf(node: string): Record<Kind, Trail> {
    let t = this.#trails.get(node);
    if (!t) {
      t = { cpu: new Trail(), mem: new Trail(), gpu: new Trail() };
      this.#trails.set(node, t);
    }
    return t;
  }

  // -- view ------------------------------------------------------------------------------
  /** Header and rows from the node list (statuses, totals); sparklines redraw on their own. */
  #render(): void {
    const info = this.#info;
    if (!info) return;
    const nodes = [...this.#nodes.values()];
    const up = nodes.filter((n) => isLive(n.status)).length;
    this.el.setAttribute("data-mode", this.multi ? "cluster" : "solo");
    this.el.setAttribute("data-nodes", String(nodes.length));
    this.el.setAttribute("data-up", String(up));
    this.el.setAttribute("data-provider", info.provider ?? "");
    setText(this.#where, [info.provider, info.address].filter(Boolean).join(" · "));
    this.#where.title = info.node_timeout_s ? `a node is down after ${info.node_timeout_s} s without an answer` : "";
    const tot = info.totals ?? {};
    const parts = [`${up} / ${nodes.length} nodes up`];
    if (finite(tot.cores) && tot.cores > 0) parts.push(`${formatCores(tot.cores)} cores`);
    if (finite(tot.memory_bytes) && tot.memory_bytes > 0) parts.push(formatBytes(tot.memory_bytes));
    if (finite(tot.gpus) && tot.gpus > 0) parts.push(`${tot.gpus} GPU${tot.gpus === 1 ? "" : "s"}`);
    setText(this.#totals, parts.join(" · "));
    this.#totals.title = "totals over the nodes that are up";
    const used = info.used ?? {};
    const use = [`CPU ${formatCores(finite(used.cpu_cores) ? Math.round(used.cpu_cores * 10) / 10 : null)} of ${formatCores(tot.cores)} cores`];
    use.push(`memory ${formatBytesOf(used.memory_bytes, tot.memory_bytes)}`);
    if (finite(tot.gpus) && tot.gpus > 0) use.push(`GPU ${formatPct(used.gpu_util_pct)}`);
    setText(this.#use, `used: ${use.join(" · ")}`);

    // rows in the server's order (this host first, then by name); reused so nothing flickers
    for (const [name, row] of this.#rows) {
      if (!this.#nodes.has(name)) {
        row.el.remove();
        this.#rows.delete(name);
      }
    }
    let prev: Element | null = null;
    for (const n of nodes) {
      const row = this.#rows.get(n.node) ?? this.#createRow(n.node);
      this.#updateRow(row, n);
      const want: Element | null = prev ? prev.nextElementSibling : this.#list.firstElementChild;
      if (want !== row.el) {
        if (prev) prev.after(row.el);
        else this.#list.prepend(row.el);
      }
      prev = row.el;
    }
    this.select(this.#selected);
    this.#schedule();
  }

  #createRow(node: string): Row {
    const el = h("div", "tl-node", { "data-node": node, role: "listitem", tabindex: "0" });
    const line = h("div", "tl-node-line");
    const badge = h("span", "tl-node-badge", { "data-field": "status" });
    const name = h("span", "tl-node-name", { "data-field": "name" }, node);
    const role = h("span", "tl-node-role", { "data-field": "role" });
    const res = h("span", "tl-node-res", { "data-field": "resources" });
    line.append(badge, name, role, res);
    const grid = h("div", "tl-node-sparks");
    const trails = this.#trailsOf(node);
    const sparks = {} as Record<Kind, Spark>;
    for (const { kind, label, title } of KINDS) {
      const box = h("div", "tl-node-spark", { "data-spark": kind, "data-points": "0" });
      box.title = title;
      const top = h("div", "tl-node-spark-top");
      const value = h("span", "tl-node-spark-value", { "data-field": "value" }, MISSING);
      top.append(h("span", "tl-node-spark-label", undefined, label), value);
      const { svg, path } = sparkSvg("tl-node-spark-svg");
      box.append(top, svg);
      grid.append(box);
      sparks[kind] = { box, path, value, trail: trails[kind] };
    }
    el.append(line, grid);
    const pick = () => this.#opts.onSelect(node);
    el.addEventListener("click", pick);
    el.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" || ev.key === " ") {
        ev.preventDefault();
        pick();
      }
    });
    const row: Row = { el, badge, name, role, res, sparks };
    this.#rows.set(node, row);
    return row;
  }

  #updateRow(row: Row, n: ClusterNode): void {
    const live = isLive(n.status);
    row.el.setAttribute("data-status", n.status);
    row.el.setAttribute("data-role", n.role);
    setText(row.badge, n.status);
    setText(row.role, n.role === "local" ? "this host" : n.role);
    const r = n.resources ?? {};
    const res = [finite(r.cores) ? `${formatCores(r.cores)} cores` : "", finite(r.memory_bytes) ? formatBytes(r.memory_bytes) : "", finite(r.gpus) && r.gpus > 0 ? `${r.gpus} GPU${r.gpus === 1 ? "" : "s"}` : ""];
    setText(row.res, res.filter(Boolean).join(" · "));
    // GPU-less nodes keep the column (rows stay aligned) but show nothing in it
    row.sparks.gpu.box.classList.toggle("tl-node-spark-none", !(finite(r.gpus) && r.gpus > 0) && !row.sparks.gpu.trail.length);
    const seen = finite(n.last_seen) ? `last seen ${formatClock(n.last_seen)}` : "not seen yet";
    const why = n.reason || n.error || "";
    row.el.title = live
      ? [n.node, n.address, seen].filter(Boolean).join(" · ")
      : `${n.status}${why ? `: ${why}` : ""} · ${seen}${n.address ? ` · ${n.address}` : ""}`;
  }

  /** One redraw per animation frame at most, however many frames and statuses came. */
  #schedule(): void {
    if (this.#frame) return;
    this.#frame = window.requestAnimationFrame(() => {
      this.#frame = 0;
      this.#draw();
    });
  }

  #draw(): void {
    const now = Date.now() / 1000;
    const windowS = this.#opts.windowS();
    const interval = this.#info?.interval_s ?? 1;
    const gapS = Math.max(3, 3 * interval, this.#info?.node_timeout_s ?? 0);
    let first = now;
    for (const [name, trails] of this.#trails) {
      for (const k of KINDS) {
        trails[k.kind].trim(now - windowS);
        if (trails[k.kind].length) first = Math.min(first, trails[k.kind].t[0]);
      }
      if (!this.#nodes.has(name) && !trails.cpu.length && !trails.mem.length && !trails.gpu.length) this.#trails.delete(name);
    }
    // one time axis for all rows (they compare)
    const t0 = axisStart(now, windowS, first);
    for (const [name, row] of this.#rows) {
      const live = isLive(this.#nodes.get(name)?.status ?? "down");
      for (const { kind } of KINDS) {
        const s = row.sparks[kind];
        s.path.setAttribute("d", sparkPath(s.trail, t0, now, gapS));
        s.box.setAttribute("data-points", String(s.trail.length));
        // a down node's last value is history, not its current use
        setText(s.value, live ? formatPct(s.trail.last()) : MISSING);
      }
    }
  }
}
