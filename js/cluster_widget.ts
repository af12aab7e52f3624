// Front end of `tracklab.widget(cluster=True)`: an anywidget ESM module, bundled on its own
// into tracklab_jupyter/static/cluster.js (no uPlot: sparklines are SVG paths).
// Protocol: js/PROTOCOL.md, "Cluster view".

import { formatBytes, formatBytesOf, formatClock, formatNumber, formatPct, formatRate, MISSING } from "./format";
import { isLive } from "./node_status";
import "./cluster_widget.css";

interface Model {
  get(name: string): any;
  set(name: string, value: unknown): void;
  save_changes(): void;
  on(event: string, cb: (...args: any[]) => void): void;
  off(event?: string | null, cb?: ((...args: any[]) => void) | null): void;
  send(content: unknown): void;
}

interface NodeInfo {
  node: string;
  address?: string;
  role?: string;
  /** up | starting | stale | down (docs/CLUSTER.md, "Node status"). */
  status?: string;
  last_seen?: number | null;
  resources?: { cores?: number | null; memory_bytes?: number | null; gpus?: number | null };
  error?: string | null;
  reason?: string;
  latest?: Record<string, number | null>;
}

interface ClusterInfo {
  provider?: string;
  address?: string;
  nodes?: NodeInfo[];
  totals?: { nodes?: number; up?: number; cores?: number; memory_bytes?: number; gpus?: number };
  used?: { cpu_cores?: number; memory_bytes?: number; gpu_memory_bytes?: number; gpu_util_pct?: number | null };
}

/** One node's series: times and the three columns (cpu, mem, gpu %). */
interface Series {
  t: number[];
  v: [number[], number[], number[]];
}

const KINDS = ["cpu", "mem", "gpu"] as const;
const LABELS = ["CPU", "memory", "GPU"];
const SVG = "http://www.w3.org/2000/svg";

function h<K extends keyof HTMLElementTagNameMap>(tag: K, cls = "", text?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

/** An SVG box with one path per kind (coloured by its class). */
function svg(cls: string, w: number, ht: number, kinds: readonly string[]): SVGSVGElement {
  const s = document.createElementNS(SVG, "svg");
  s.setAttribute("class", cls);
  s.setAttribute("viewBox", `0 0 ${w} ${ht}`);
  s.setAttribute("preserveAspectRatio", "none");
  for (const k of kinds) {
    const p = document.createElementNS(SVG, "path");
    p.setAttribute("class", `tlc-line tlc-${k}`);
    s.append(p);
  }
  return s;
}

/** A span of seconds as the title says it: "45 s", "5 min". */
function formatSpan(s: number): string {
  return s < 90 ? `${Math.round(s)} s` : `${Math.round(s / 60)} min`;
}

const ok = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);

/** The newest finite value of a column. */
function last(col: number[]): number {
  for (let i = col.length - 1; i >= 0; i--) if (ok(col[i])) return col[i];
  return NaN;
}

/** An SVG path of `col` over [t0, t0 + span] in a w × ht box (0-100 %); gaps at NaN. */
function pathOf(t: number[], col: number[], t0: number, span: number, w: number, ht: number): [string, number] {
  let d = "";
  let pen = false;
  let n = 0;
  for (let i = 0; i < t.length; i++) {
    const v = col[i];
    if (!ok(v) || t[i] < t0) {
      pen = false;
      continue;
    }
    const x = ((t[i] - t0) / span) * w;
    const y = ht - (Math.min(100, Math.max(0, v)) / 100) * (ht - 2) - 1;
    d += `${pen ? "L" : "M"}${x.toFixed(1)} ${y.toFixed(1)}`;
    pen = true;
    n++;
  }
  return [d, n];
}

interface Row {
  el: HTMLElement;
  status: HTMLElement;
  role: HTMLElement;
  sparks: { svg: SVGSVGElement; value: HTMLElement }[];
}

class ClusterView {
  #model: Model;
  #root = h("div", "tlc-root");
  #head = h("div", "tlc-head");
  #where = h("span", "tlc-where");
  #totals = h("span", "tlc-totals");
  #status = h("span", "tlc-status");
  #hint = h("div", "tlc-hint");
  #select = h("select", "tlc-select");
  #table = h("div", "tlc-table");
  #detail = h("div", "tlc-detail");
  #title = h("span", "tlc-detail-title");
  #facts = h("div", "tlc-facts");
  #chart = svg("tlc-chart", 600, 100, KINDS);
  /** The detail chart's time labels (oldest, middle, newest) and title. */
  #xTicks = [0, 1, 2].map(() => h("span", "tlc-tick"));
  #chartTitle = h("div", "tlc-chart-title");
  #rows = new Map<string, Row>();
  #nodes = new Map<string, NodeInfo>();
  /** Each node's place in the latest cluster/info. */
  #rank = new Map<string, number>();
  #series = new Map<string, Series>();
  #order: string[] = [];
  #window = 300;
  #local = "";
  #now = 0;
  #points = 0;
  #frame = 0;

  constructor(model: Model, el: HTMLElement) {
    this.#model = model;
    const r = this.#root;
    r.dataset.state = "waiting";
    r.dataset.points = "0";
    this.#head.append(h("span", "tlc-brand", "TrackLab cluster"), this.#where, this.#totals, this.#status);
    this.#hint.hidden = true;
    this.#select.title = "node shown below";
    this.#select.onchange = () => this.#choose(this.#select.value);
    this.#table.append(h("div", "tlc-placeholder", "waiting for the kernel…"));
    r.append(this.#head, this.#hint, this.#table, this.#detail);
    el.append(r);
    this.#onStatus();
    for (const [e, f] of this.#handlers) model.on(e, f);
    model.send({ type: "ready" });
  }

  #onStatus = () => {
    const s = String(this.#model.get("status") ?? "");
    this.#status.textContent = s;
    this.#status.classList.toggle("tlc-error", /error|fail/i.test(s));
  };

  #onNode = () => this.#schedule();

  #onWindow = () => {
    const w = Number(this.#model.get("window_s"));
    if (w > 0) this.#window = w;
    this.#schedule();
  };

  #onMsg = (msg: any, buffers?: any[]) => {
    if (!msg || typeof msg !== "object") return;
    try {
      if (msg.type === "init") this.#onInit(msg);
      else if (!this.#local) return; // nothing before init
      else if (msg.type === "data") this.#onData(msg, buffers ?? []);
      else if (msg.type === "info") this.#onInfo(msg.cluster, msg.hint);
      else if (msg.type === "node") this.#onStatusChange(msg.node);
    } catch (e) {
      console.warn("tracklab cluster widget: bad message", msg?.type, e);
    }
  };

  #handlers: [string, (...a: any[]) => void][] = [
    ["msg:custom", this.#onMsg],
    ["change:status", this.#onStatus],
    ["change:node", this.#onNode],
    ["change:window_s", this.#onWindow],
  ];

  #onInit(msg: any): void {
    this.#local = String(msg.local ?? "");
    this.#window = Number(this.#model.get("window_s")) || msg.window_s || 300;
    this.#rows.clear();
    this.#nodes.clear();
    this.#series.clear();
    this.#order = [];
    this.#points = 0;
    this.#now = 0;
    this.#table.textContent = "";
    this.#select.textContent = "";
    const head = h("div", "tlc-row tlc-colhead");
    for (const t of ["node", "role", "status", ...LABELS]) head.append(h("span", "", t));
    this.#table.append(head);
    this.#onInfo(msg.cluster, msg.hint);
    this.#root.dataset.state = "live";
  }

  #onInfo(c: ClusterInfo, hint?: string | null): void {
    c = c ?? {};
    this.#rank = new Map((c.nodes ?? []).map((n, i) => [n.node, i]));
    for (const n of c.nodes ?? []) {
      this.#nodes.set(n.node, { ...this.#nodes.get(n.node), ...n });
      this.#row(n.node);
    }
    const t = c.totals ?? {};
    const u = c.used ?? {};
    this.#where.textContent = [c.provider, c.address].filter(Boolean).join(" · ");
    const gpus = t.gpus ? ` · ${t.gpus} GPUs` : "";
    this.#totals.textContent =
      `${t.up ?? 0}/${t.nodes ?? 0} up · CPU ${ok(u.cpu_cores) ? u.cpu_cores.toFixed(1) : MISSING} / ${t.cores ?? MISSING} cores` +
      ` · memory ${formatBytesOf(u.memory_bytes, t.memory_bytes)}` +
      (t.gpus ? ` · GPU ${formatPct(u.gpu_util_pct)}${gpus}` : "");
    this.#hint.hidden = !hint;
    this.#hint.textContent = hint ?? "";
    this.#schedule();
  }

  #onStatusChange(n: NodeInfo): void {
    if (!n?.node) return;
    this.#nodes.set(n.node, { ...this.#nodes.get(n.node), ...n });
    this.#row(n.node);
    this.#schedule();
  }

  #onData(msg: any, buffers: any[]): void {
    const f64 = (b: any) => (b instanceof DataView || ArrayBuffer.isView(b) ? new Float64Array(b.buffer, b.byteOffset, b.byteLength / 8) : new Float64Array(b));
    const times = f64(buffers[0]);
    const values = f64(buffers[1]);
    const n = Number(msg.n);
    const k = (msg.names ?? []).length;
    if (times.length !== n || values.length !== n * k || k < 3) throw new Error("buffer sizes");
    if (msg.backfill) {
      this.#series.clear();
      this.#points = 0;
    }
    let at = 0;
    const nodes: string[] = msg.nodes ?? [];
    nodes.forEach((name, j) => {
      const count = Number(msg.counts?.[j] ?? 0);
      let s = this.#series.get(name);
      if (!s) this.#series.set(name, (s = { t: [], v: [[], [], []] }));
      for (let i = at; i < at + count; i++) {
        if (s.t.length && times[i] <= s.t[s.t.length - 1]) continue;
        s.t.push(times[i]);
        for (let c = 0; c < 3; c++) s.v[c].push(values[c * n + i]);
        if (times[i] > this.#now) this.#now = times[i];
      }
      at += count;
      this.#row(name);
    });
    this.#points += n;
    this.#root.dataset.points = String(this.#points);
    this.#schedule();
  }

  /** The row of `name` (created on first sight; #arrange puts it in its place). */
  #row(name: string): Row {
    let r = this.#rows.get(name);
    if (r) return r;
    const el = h("div", "tlc-row tlc-node");
    el.dataset.node = name;
    el.tabIndex = 0;
    el.onclick = () => this.#choose(name);
    el.onkeydown = (e) => {
      if (e.key === "Enter" || e.key === " ") this.#choose(name);
    };
    const role = h("span", "tlc-role");
    const status = h("span", "tlc-badge");
    el.append(h("span", "tlc-name", name), role, h("span", "", undefined));
    el.lastElementChild!.append(status);
    const sparks = KINDS.map((kind) => {
      const cell = h("span", "tlc-cell");
      const s = svg("tlc-spark", 100, 24, [kind]);
      s.dataset.spark = kind;
      s.dataset.points = "0";
      const value = h("span", "tlc-value", MISSING);
      cell.append(s, value);
      el.append(cell);
      return { svg: s, value };
    });
    r = { el, status, role, sparks };
    this.#rows.set(name, r);
    this.#order.push(name);
    this.#table.append(el);
    this.#select.append(new Option(name, name));
    this.#root.dataset.nodes = String(this.#rows.size);
    return r;
  }

  #choose(name: string): void {
    this.#model.set("node", name);
    this.#model.save_changes();
    this.#schedule();
  }

  #selected(): string {
    const n = String(this.#model.get("node") ?? "");
    return this.#rows.has(n) ? n : this.#order[0] ?? "";
  }

  #schedule(): void {
    if (!this.#frame) this.#frame = requestAnimationFrame(this.#draw);
  }

  #draw = () => {
    this.#frame = 0;
    const w = this.#window;
    const from = this.#now - w;
    let oldest = Infinity;
    for (const s of this.#series.values()) {
      // Keep one window (and a little) of data.
      if (s.t.length && s.t[0] < from - w * 0.1) {
        const cut = s.t.findIndex((t) => t >= from);
        const drop = cut < 0 ? s.t.length : cut;
        s.t.splice(0, drop);
        for (const col of s.v) col.splice(0, drop);
      }
      if (s.t.length) oldest = Math.min(oldest, s.t[0]);
    }
    // The x axis: the window, or less while less has been seen (no empty left part).
    const span = Math.max(10, Math.min(w, this.#now - oldest));
    const t0 = this.#now - span;
    const sel = this.#selected();
    for (const [name, r] of this.#rows) {
      const info = this.#nodes.get(name) ?? { node: name };
      const s = this.#series.get(name);
      const status = info.status ?? "up";
      const live = isLive(status);
      r.el.dataset.status = status;
      r.el.classList.toggle("tlc-down", !live);
      r.el.classList.toggle("tlc-selected", name === sel);
      r.el.title = !live ? `${name} is ${status}${info.reason || info.error ? `: ${info.reason || info.error}` : ""}` : name;
      r.status.textContent = status;
      r.status.dataset.status = status;
      r.role.textContent = info.role ?? "";
      const hasGpu = (info.resources?.gpus ?? 0) > 0 || (s?.v[2].some(ok) ?? false);
      r.sparks.forEach((sp, c) => {
        const [d, n] = s ? pathOf(s.t, s.v[c], t0, span, 100, 24) : ["", 0];
        sp.svg.firstElementChild!.setAttribute("d", d);
        sp.svg.dataset.points = String(n);
        sp.value.textContent = c === 2 && !hasGpu ? MISSING : formatPct(s ? last(s.v[c]) : NaN);
      });
    }
    this.#arrange();
    if (this.#select.value !== sel) this.#select.value = sel;
    this.#drawDetail(sel, t0, span);
  };

  /** Rows in cluster/info's order (this host first, then by name), whichever node's
   *  samples came first; nodes info does not list yet keep the order they came in. */
  #arrange(): void {
    const rank = (n: string) => this.#rank.get(n) ?? this.#rank.size + this.#order.indexOf(n);
    const want = [...this.#rows.keys()].sort((a, b) => rank(a) - rank(b));
    if (want.every((n, i) => n === this.#order[i])) return;
    this.#order = want;
    const options = new Map([...this.#select.options].map((o) => [o.value, o]));
    for (const n of want) {
      this.#table.append(this.#rows.get(n)!.el);
      const option = options.get(n);
      if (option) this.#select.append(option);
    }
  }

  #drawDetail(name: string, t0: number, span: number): void {
    const d = this.#detail;
    const info = this.#nodes.get(name);
    d.dataset.node = name;
    if (!info && !this.#series.has(name)) {
      d.textContent = "";
      return;
    }
    const n = info ?? { node: name };
    const res = n.resources ?? {};
    const l = n.latest ?? {};
    const s = this.#series.get(name);
    if (!d.firstChild) {
      const top = h("div", "tlc-detail-head");
      top.append(this.#select, this.#title);
      const legend = h("div", "tlc-legend");
      LABELS.forEach((t, i) => legend.append(h("span", `tlc-key tlc-${KINDS[i]}`, t)));
      // Axes: % of each resource (0–100) on the left, clock time below; grid at 0, 50, 100 %.
      for (const y of [99, 50, 1]) {
        const line = document.createElementNS(SVG, "line");
        line.setAttribute("class", "tlc-gridline");
        for (const [k, v] of [["x1", 0], ["x2", 600], ["y1", y], ["y2", y]]) line.setAttribute(String(k), String(v));
        this.#chart.prepend(line);
      }
      const yAxis = h("div", "tlc-yaxis");
      for (const t of ["100 %", "50 %", "0 %"]) yAxis.append(h("span", "tlc-tick", t));
      const xAxis = h("div", "tlc-xaxis");
      xAxis.append(...this.#xTicks);
      const plot = h("div", "tlc-plot");
      plot.append(yAxis, this.#chart, h("span", "tlc-axis-name", "time"), xAxis);
      d.append(top, this.#facts, this.#chartTitle, plot, legend);
    }
    this.#chartTitle.textContent = `Use of each resource, % (last ${formatSpan(span)})`;
    this.#xTicks.forEach((e, i) => (e.textContent = formatClock(t0 + (span * i) / 2)));
    const title = this.#title;
    const facts = this.#facts;
    title.textContent = [n.role, n.address, n.status].filter(Boolean).join(" · ");
    const gpuMem = ok(l["gpu.mem_used_bytes"]) ? ` · ${formatBytesOf(l["gpu.mem_used_bytes"], l["gpu.mem_total_bytes"])}` : "";
    const seen = n.last_seen ?? (s?.t.length ? s.t[s.t.length - 1] : null);
    const rows: [string, string][] = [
      ["cores", res.cores ? String(res.cores) : MISSING],
      ["memory", formatBytesOf(l["mem.used_bytes"], l["mem.limit_bytes"] ?? res.memory_bytes)],
      ["GPUs", `${res.gpus ?? 0}${gpuMem}`],
      ["last seen", ok(seen) ? formatClock(seen) : MISSING],
      ["CPU", `${formatPct(l["cpu.util_pct"])} · load ${formatNumber(l["cpu.load1"])}`],
      ["network", `↓ ${formatRate(l["net.recv_bytes_per_s"])} ↑ ${formatRate(l["net.sent_bytes_per_s"])}`],
      ["swap", formatBytes(l["swap.used_bytes"])],
    ];
    if (!isLive(n.status)) rows.push(["reason", n.reason || n.error || MISSING]);
    facts.textContent = "";
    for (const [k, v] of rows) {
      const pair = h("div");
      pair.dataset.key = k;
      pair.append(h("span", "tlc-k", k), h("span", "tlc-v", v));
      facts.append(pair);
    }
    this.#chart.querySelectorAll(".tlc-line").forEach((p, c) => p.setAttribute("d", s ? pathOf(s.t, s.v[c], t0, span, 600, 100)[0] : ""));
  }

  dispose(): void {
    for (const [e, f] of this.#handlers) this.#model.off(e, f);
    if (this.#frame) cancelAnimationFrame(this.#frame);
    this.#root.remove();
  }
}

export default {
  render({ model, el }: { model: Model; el: HTMLElement }) {
    const view = new ClusterView(model, el);
    return () => view.dispose();
  },
};
