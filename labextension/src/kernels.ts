// The sidebar's Kernels section: one row per kernel of this Jupyter server with its
// notebook, state, CPU, RAM against the limit that applies, GPU memory and a sparkline of
// the last minutes of RSS. The list comes from `GET api/kernels` and then the WebSocket
// topic `kernels` (or re-polling `api/kernels` while the socket or the topic is missing);
// frames that stop coming (a server that announces the topic but sends nothing) fall back
// to the same re-poll; the sparklines are backfilled once per opening from `api/history`
// (`kernel.<id>.rss_bytes`) and then follow the frames. A click on a row opens its
// notebook. Contract: the kernel entry of issue 15 (api/kernels, hub topic KERNELS).

import { MISSING, formatBytes, formatClock, formatPct, h } from "../../js/charts";
import { ApiError, type Api } from "./api";
import { Section, type Frame } from "./section";
import { chunks, gpuText, kernelLabel, memFraction, rssSeries, sortKernels, unknownNames, type KernelEntry, type KernelsBody } from "./kernel_model";
import { SPARK_H, SPARK_W, Trail, axisStart, finite, setText, sparkPath, sparkSvg } from "./spark";

export type { KernelEntry, KernelsBody } from "./kernel_model";

interface HistoryTable {
  time?: number[];
  series?: { node?: string; metric: string; values: (number | null)[] }[];
}

/** Seconds of RSS the sparklines show (and that opening the panel backfills). */
export const SPARK_WINDOW_S = 600;
/** Requests one backfill chunk may take while it drops kernels the store does not know yet. */
const MAX_BACKFILL_TRIES = 4;
/** Frames missed (kernel passes) before the list is re-read by REST while streamed. */
const STALE_PASSES = 3;
/** RAM bar colours: warn from this share of the limit, error from the next. */
const WARN_FRACTION = 0.75;
const ERROR_FRACTION = 0.9;

// -- the section ------------------------------------------------------------------------

interface Row {
  el: HTMLElement;
  dot: HTMLElement;
  name: HTMLElement;
  state: HTMLElement;
  cpu: HTMLElement;
  mem: HTMLElement;
  gpu: HTMLElement;
  bar: HTMLElement;
  fill: HTMLElement;
  spark: SVGSVGElement;
  path: SVGPathElement;
  trail: Trail;
  notebook: string | null;
}

export interface KernelsSectionOptions {
  /** A click (or Enter) on a row with a notebook. */
  open: (path: string) => void;
  /** The sidebar's refresh interval in seconds (the REST re-poll while not streamed). */
  refreshS: () => number;
}

export class KernelsSection extends Section {
  #opts: KernelsSectionOptions;
  #count: HTMLElement;
  #limit: HTMLElement;
  #notes: HTMLElement;
  #error: HTMLElement;
  #empty: HTMLElement;
  #list: HTMLElement;
  #body: KernelsBody | null = null;
  #rows = new Map<string, Row>();
  /** RSS per kernel id: kept while the kernel is listed. */
  #trails = new Map<string, Trail>();
  #order = "";
  /** `kernels` frames arrive on the sidebar's socket: no REST re-poll. */
  #streaming = false;
  /** The server has no `api/kernels` (an older extension): nothing to poll. */
  #absent = false;
  #backfillDue = false;
  /** When the list was last refreshed (ms), by a frame or by REST. */
  #lastIngest = 0;
  #frame = 0;

  constructor(api: Api, opts: KernelsSectionOptions) {
    super(api, h("section", "tl-panel tl-kernels", { "data-field": "kernels-section", "data-kernels": "0" }));
    this.#opts = opts;
    const head = h("header", "tl-panel-head");
    this.#count = h("span", "tl-kernels-count", { "data-field": "kernels-count" });
    this.#limit = h("span", "tl-kernels-limit", { "data-field": "kernels-limit" });
    head.append(h("span", "tl-kernels-title", undefined, "Kernels"), this.#count, this.#limit);
    this.#notes = h("div", "tl-kernels-notes", { "data-field": "kernels-notes" });
    this.#notes.hidden = true;
    this.#error = h("div", "tl-kernels-error", { "data-field": "kernels-error", role: "status" });
    this.#error.hidden = true;
    this.#empty = h("div", "tl-empty", { "data-field": "kernels-empty" }, "No running kernels. Open a notebook to start one.");
    this.#list = h("div", "tl-kernel-list", { "data-field": "kernel-list", role: "group", "aria-label": "kernels, largest memory first" });
    this.el.append(head, this.#notes, this.#error, this.#empty, this.#list);
  }

  /** The panel is visible: list the kernels, backfill their sparklines, then stay live. */
  protected onResume(): void {
    this.#backfillDue = true;
    void this.load();
    this.#startTicker();
  }

  /** Hidden: no timers, no requests. */
  protected onPause(): void {
    if (this.#frame) window.cancelAnimationFrame(this.#frame);
    this.#frame = 0;
  }

  /**
   * Whether the sidebar's socket carries `kernels` frames (its server announced the topic
   * and it is subscribed). Without them the list is re-polled at the refresh interval.
   */
  setStreaming(on: boolean): void {
    this.#streaming = on;
  }

  /** The refresh interval changed: the re-poll follows it. */
  refreshChanged(): void {
    if (this.pending("poll")) this.#startTicker();
  }

  /** `GET api/kernels`. */
  async load(): Promise<void> {
    const seq = this.nextLoad();
    try {
      const body = await this.api.get<KernelsBody>("kernels");
      if (!this.isLatest(seq) || !this.active) return;
      this.#absent = false;
      this.ingest(body);
    } catch (e) {
      if (!this.isLatest(seq)) return;
      const absent = e instanceof ApiError && e.status === 404;
      this.#absent = absent;
      this.#error.hidden = false;
      this.#error.textContent = absent ? "Kernels: not available (this server extension does not track kernels)" : `kernels not refreshed: ${(e as Error).message}`;
      this.#empty.hidden = true;
    }
  }

  /** `kernels` frames (this server's kernels, whichever node the charts show). */
  handleMessage(msg: Frame): boolean {
    if (msg.type !== "kernels") return false;
    this.ingest(msg.data);
    return true;
  }

  /** A `kernels` frame or an `api/kernels` answer. */
  ingest(body: KernelsBody | null | undefined): void {
    if (!body || !Array.isArray(body.kernels)) return;
    this.#body = body;
    this.#lastIngest = Date.now();
    this.#error.hidden = true;
    const t = Number(body.time);
    const listed = new Set<string>();
    for (const k of body.kernels) {
      if (!k?.id) continue;
      listed.add(k.id);
      if (finite(t) && k.sampled && finite(k.rss_bytes)) this.#trailOf(k.id).push(t, k.rss_bytes);
    }
    for (const id of [...this.#trails.keys()]) if (!listed.has(id)) this.#trails.delete(id);
    this.#render(body);
    if (this.#backfillDue && this.active) {
      this.#backfillDue = false;
      void this.backfill(body);
    }
  }

  /**
   * The sparklines' window from `api/history`: one request (per HISTORY_NAMES_PER_REQUEST
   * kernels) with every listed kernel's `kernel.<id>.rss_bytes`. A kernel started a moment
   * ago has no stored series yet (the server answers 404 naming it): it is dropped and the
   * request made again without it.
   */
  async backfill(body: KernelsBody): Promise<void> {
    const visit = this.visit;
    const ids = body.kernels.filter((k) => k?.id && k.sampled).map((k) => k.id);
    for (const part of chunks(ids.map(rssSeries))) {
      let names = part;
      for (let tries = 0; names.length && tries < MAX_BACKFILL_TRIES; tries++) {
        const params: Record<string, string> = { metrics: names.join(","), start: `-${SPARK_WINDOW_S}s` };
        if (body.node) params.node = body.node;
        try {
          const table = await this.api.get<HistoryTable>("history", params);
          if (visit !== this.visit) return;
          this.#mergeHistory(table);
          break;
        } catch (e) {
          if (visit !== this.visit) return;
          const gone = e instanceof ApiError && e.status === 404 ? unknownNames(e.detail, names) : [];
          if (!gone.length) {
            // nothing stored yet, or a server without kernel series: the frames fill in
            if (!(e instanceof ApiError && (e.status === 404 || e.status === 400))) console.warn("tracklab: kernel backfill failed", e);
            break;
          }
          names = names.filter((n) => !gone.includes(n));
        }
      }
    }
    this.#schedule();
  }

  #mergeHistory(table: HistoryTable): void {
    const times = table.time ?? [];
    for (const s of table.series ?? []) {
      const m = /^kernel\.(.+)\.rss_bytes$/.exec(s.metric);
      if (!m || (!this.#trails.has(m[1]) && !this.#rows.has(m[1]))) continue;
      this.#trailOf(m[1]).mergeColumn(times, s.values);
    }
  }

  #trailOf(id: string): Trail {
    let t = this.#trails.get(id);
    if (!t) {
      t = new Trail();
      this.#trails.set(id, t);
    }
    return t;
  }

  // -- REST re-poll -----------------------------------------------------------------------
  /**
   * Every refresh interval while visible: re-read `api/kernels` unless frames keep the list
   * fresh (streamed, and one came within STALE_PASSES kernel passes).
   */
  #startTicker(): void {
    const refresh = Math.max(0.2, this.#opts.refreshS());
    this.every("poll", refresh * 1000, () => {
      if (!this.active || this.#absent) return;
      const passS = Number(this.#body?.interval_s) || 5;
      const staleMs = STALE_PASSES * Math.max(passS, refresh) * 1000;
      if (!this.#streaming || Date.now() - this.#lastIngest > staleMs) void this.load();
    });
  }

  // -- view -------------------------------------------------------------------------------
  #render(body: KernelsBody): void {
    const kernels = sortKernels(body.kernels.filter((k) => k?.id));
    this.el.setAttribute("data-kernels", String(kernels.length));
    setText(this.#count, kernels.length ? String(kernels.length) : "");
    const limit = body.mem_limit_bytes;
    setText(this.#limit, finite(limit) ? `limit ${formatBytes(limit)}${body.mem_limit_source ? ` (${body.mem_limit_source})` : ""}` : "");
    this.#limit.title = body.mem_limit_source === "cgroup" ? "the container's (cgroup) memory limit" : finite(limit) ? "the host's memory" : "";
    const notes = body.notes ?? [];
    this.#notes.hidden = !notes.length;
    setText(this.#notes, notes.join(" · "));
    this.#empty.hidden = kernels.length > 0;

    const keep = new Set(kernels.map((k) => k.id));
    for (const [id, row] of this.#rows) {
      if (!keep.has(id)) {
        row.el.remove();
        this.#rows.delete(id);
      }
    }
    for (const k of kernels) this.#updateRow(this.#rows.get(k.id) ?? this.#createRow(k.id), k, body);
    // moved only when the order changed: a focused row keeps its focus between frames
    const order = kernels.map((k) => k.id).join(",");
    if (order !== this.#order) {
      this.#order = order;
      let prev: Element | null = null;
      for (const k of kernels) {
        const el = this.#rows.get(k.id)!.el;
        const want: Element | null = prev ? prev.nextElementSibling : this.#list.firstElementChild;
        if (want !== el) {
          if (prev) prev.after(el);
          else this.#list.prepend(el);
        }
        prev = el;
      }
    }
    this.#schedule();
  }

  #createRow(id: string): Row {
    const el = h("div", "tl-kernel", { "data-kernel-id": id });
    const line = h("div", "tl-kernel-line");
    const dot = h("span", "tl-kernel-dot", { "aria-hidden": "true" });
    const name = h("span", "tl-kernel-name", { "data-field": "notebook" });
    const state = h("span", "tl-kernel-state", { "data-field": "state" });
    const cpu = h("span", "tl-kernel-cpu", { "data-field": "cpu" });
    line.append(dot, name, state, cpu);
    const sub = h("div", "tl-kernel-line tl-kernel-sub");
    const mem = h("span", "tl-kernel-mem", { "data-field": "mem" });
    const gpu = h("span", "tl-kernel-gpu", { "data-field": "gpu" });
    sub.append(mem, gpu);
    const bar = h("div", "tl-kernel-bar", { "data-field": "mem-bar", role: "presentation" });
    const fill = h("div", "tl-kernel-bar-fill");
    bar.append(fill);
    const { svg: spark, path } = sparkSvg("tl-kernel-spark", { "data-points": "0", "aria-hidden": "true" });
    el.append(line, sub, bar, spark);
    const row: Row = { el, dot, name, state, cpu, mem, gpu, bar, fill, spark, path, trail: this.#trailOf(id), notebook: null };
    const open = () => {
      if (row.notebook) this.#opts.open(row.notebook);
    };
    el.addEventListener("click", open);
    el.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" || ev.key === " ") {
        ev.preventDefault();
        open();
      }
    });
    this.#rows.set(id, row);
    return row;
  }

  #updateRow(row: Row, k: KernelEntry, body: KernelsBody): void {
    const state = String(k.execution_state || "unknown");
    row.notebook = k.notebook || null;
    row.trail = this.#trailOf(k.id);
    const el = row.el;
    el.setAttribute("data-state", state);
    el.setAttribute("data-sampled", k.sampled ? "true" : "false");
    el.setAttribute("data-notebook", k.notebook ?? "");
    // a row with a notebook is a button that opens it; the others are plain rows
    if (row.notebook) {
      el.setAttribute("role", "button");
      el.setAttribute("tabindex", "0");
    } else {
      el.removeAttribute("role");
      el.removeAttribute("tabindex");
    }
    const label = kernelLabel(k);
    setText(row.name, label);
    row.name.title = k.notebook ? `${k.notebook} · open it` : "a kernel without a notebook (a console or a kernel started alone)";
    setText(row.state, state);
    const facts = [
      `${k.name || "kernel"} · ${k.id}`,
      finite(k.pid) ? `pid ${k.pid}${finite(k.procs) ? ` · ${k.procs} process${k.procs === 1 ? "" : "es"}` : ""}${finite(k.threads) ? ` · ${k.threads} threads` : ""}` : "",
      finite(k.last_activity) ? `last activity ${formatClock(k.last_activity)}` : "",
      finite(k.connections) ? `${k.connections} connection${k.connections === 1 ? "" : "s"}` : "",
    ];
    el.title = facts.filter(Boolean).join("\n");

    if (!k.sampled) {
      setText(row.cpu, "");
      setText(row.mem, `not sampled: ${k.not_sampled || "unknown"}`);
      row.mem.title = "";
      setText(row.gpu, "");
      row.bar.hidden = true;
      row.spark.style.visibility = "hidden";
      return;
    }
    row.bar.hidden = false;
    row.spark.style.visibility = "";
    setText(row.cpu, finite(k.cpu_pct) ? `CPU ${formatPct(k.cpu_pct)}` : `CPU ${MISSING}`);
    row.cpu.title = "CPU of the kernel's process tree, in percent of one core";
    const limit = finite(k.mem_limit_bytes) ? k.mem_limit_bytes : body.mem_limit_bytes;
    const frac = memFraction(k, body.mem_limit_bytes);
    setText(row.mem, `RAM ${formatBytes(k.rss_bytes)}${finite(limit) ? ` / ${formatBytes(limit)}` : ""}`);
    const source = k.mem_limit_source ?? body.mem_limit_source;
    row.mem.title = [
      `RSS ${formatBytes(k.rss_bytes)}${finite(frac) ? ` · ${formatPct(frac * 100)} of the ${source === "cgroup" ? "container's limit" : "host's memory"}` : ""}`,
      finite(k.pss_bytes) ? `PSS ${formatBytes(k.pss_bytes)}` : "",
      finite(k.uss_bytes) ? `USS ${formatBytes(k.uss_bytes)}` : "",
    ]
      .filter(Boolean)
      .join("\n");
    row.fill.style.width = finite(frac) ? `${(frac * 100).toFixed(1)}%` : "0%";
    row.bar.setAttribute("data-level", !finite(frac) ? "" : frac >= ERROR_FRACTION ? "error" : frac >= WARN_FRACTION ? "warn" : "ok");
    const gpu = gpuText(k);
    setText(row.gpu, gpu.text);
    row.gpu.title = gpu.title;
  }

  /** One redraw of the sparklines per animation frame at most. */
  #schedule(): void {
    if (this.#frame || !this.active) return;
    this.#frame = window.requestAnimationFrame(() => {
      this.#frame = 0;
      this.#draw();
    });
  }

  #draw(): void {
    const now = Date.now() / 1000;
    const interval = Number(this.#body?.interval_s) || 5;
    const gapS = Math.max(3 * interval, 10);
    let first = now;
    for (const trail of this.#trails.values()) {
      trail.trim(now - SPARK_WINDOW_S);
      if (trail.length) first = Math.min(first, trail.t[0]);
    }
    // one time axis for all rows, each on its own scale (0 to its peak): the shape of a
    // kernel's memory matters here, the RAM bar compares them
    const t0 = axisStart(now, SPARK_WINDOW_S, first);
    for (const row of this.#rows.values()) {
      const peak = Math.max(0, ...row.trail.v);
      row.path.setAttribute("d", sparkPath(row.trail, t0, now, gapS, SPARK_W, SPARK_H, peak * 1.05));
      row.spark.setAttribute("data-points", String(row.trail.length));
    }
  }
}
