// The sidebar's runs section (contract: docs/RUNS.md): the newest runs from
// `GET api/runs?limit=20`, kept live by the WebSocket topics `run_update` and
// `metric_update` (or by re-polling while the panel falls back to REST), with a detail view
// per run (config, host, command, git, a sparkline of one metric) and deletion of runs
// that have ended.

import { Dialog, showDialog, showErrorMessage } from "@jupyterlab/apputils";

import { MISSING, formatClock, formatDuration, formatLogged, h } from "../../js/charts";
import { ApiError, type Api } from "./api";
import { Section, type Frame } from "./section";
import { SVG_NS, finite, setText } from "./spark";

export const RUNS_LIMIT = 20;
const SPARK_W = 240;
const SPARK_H = 36;
/** More points than this are thinned for drawing (a sparkline has ~240 px). */
const SPARK_MAX_POINTS = 480;

export type RunState = "running" | "finished" | "failed" | "crashed";

export interface RunSummary {
  id: string;
  project: string;
  name: string;
  state: RunState | string;
  tags?: string[];
  node?: string | null;
  pid?: number | null;
  start: number;
  end?: number | null;
  heartbeat?: number | null;
  duration_s?: number | null;
  summary?: Record<string, number | null>;
}

export interface Run extends RunSummary {
  config?: Record<string, unknown> | null;
  notes?: string | null;
  command?: string | string[] | null;
  cwd?: string | null;
  git?: { commit?: string | null; dirty?: boolean | null } | null;
  python?: string | null;
  error?: string | null;
}

interface RunList {
  runs: RunSummary[];
  total?: number;
}

type Columns = Record<string, (number | null)[]>;

interface RunMetrics {
  step: number[];
  metrics: Columns;
  /** More steps follow: the next page starts there (the server pages by step). */
  next_start_step?: number | null;
}

/** Pages of a run's metrics the sparkline reads at most (the server's page is 10 000 steps). */
const MAX_SPARK_PAGES = 20;

interface MetricUpdate {
  run: string;
  step?: number[];
  metrics?: Columns;
  process?: { metrics?: Columns };
}

// -- pure helpers ----------------------------------------------------------------------

/** Seconds a run has lasted: still counting while it runs. */
export function runDuration(run: RunSummary, now: number): number | null {
  if (run.state === "running") return finite(run.start) ? Math.max(0, now - run.start) : null;
  if (finite(run.duration_s)) return run.duration_s;
  return finite(run.end) && finite(run.start) ? run.end - run.start : null;
}

/** Prefix of a run's process-tree series (`tree.cpu_pct`, ...; docs/RUNS.md). */
export const PROCESS_PREFIX = "tree.";

/** Whether a name is a process-tree series rather than a metric the user logged. */
export function isProcessMetric(name: string): boolean {
  return name.startsWith(PROCESS_PREFIX);
}

/** Logged metrics first: the process-tree series only when nothing else was logged. */
export function userMetricNames(summary: Record<string, unknown> | undefined): string[] {
  const names = Object.keys(summary ?? {});
  const user = names.filter((n) => !isProcessMetric(n));
  return user.length ? user : names;
}

/** Today: "14:05:09"; another day: "2026-11-27 14:05". */
export function formatWhen(t: number | null | undefined): string {
  if (!finite(t)) return MISSING;
  const d = new Date(t * 1000);
  if (d.toDateString() === new Date().toDateString()) return formatClock(t);
  const p = (x: number) => String(x).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${formatClock(t, true)}`;
}

/** `{"opt": {"lr": 0.1}, "bs": 32}` → [["opt.lr", "0.1"], ["bs", "32"]]. */
export function flattenConfig(cfg: unknown, prefix = "", out: [string, string][] = []): [string, string][] {
  if (cfg && typeof cfg === "object" && !Array.isArray(cfg) && prefix.split(".").length < 4) {
    for (const [k, v] of Object.entries(cfg)) flattenConfig(v, prefix ? `${prefix}.${k}` : k, out);
  } else if (prefix) {
    out.push([prefix, typeof cfg === "string" ? cfg : JSON.stringify(cfg)]);
  }
  return out;
}

/** The polyline points of `values` scaled into the sparkline box (NaN/null skipped). */
export function sparkPoints(values: readonly (number | null)[], w = SPARK_W, hgt = SPARK_H): string {
  const idx: number[] = [];
  const stride = Math.max(1, Math.ceil(values.length / SPARK_MAX_POINTS));
  for (let i = 0; i < values.length; i += stride) if (finite(values[i])) idx.push(i);
  const last = values.length - 1;
  if (last >= 0 && finite(values[last]) && idx[idx.length - 1] !== last) idx.push(last);
  if (!idx.length) return "";
  let lo = Infinity;
  let hi = -Infinity;
  for (const i of idx) {
    lo = Math.min(lo, values[i] as number);
    hi = Math.max(hi, values[i] as number);
  }
  const span = hi - lo || 1;
  const xs = Math.max(1, last);
  return idx.map((i) => `${((i / xs) * w).toFixed(1)},${(hgt - 2 - (((values[i] as number) - lo) / span) * (hgt - 4)).toFixed(1)}`).join(" ");
}

function lastOf(values: readonly (number | null)[] | undefined): number | null | undefined {
  return values && values.length ? values[values.length - 1] : undefined;
}

// -- the section ----------------------------------------------------------------------

interface Row {
  el: HTMLElement;
  head: HTMLElement;
  badge: HTMLElement;
  name: HTMLElement;
  duration: HTMLElement;
  project: HTMLElement;
  metrics: HTMLElement;
  detail: HTMLElement;
  metricsKey: string;
}

/** The open detail view: one run at a time, its sparkline follows metric_update. */
interface Detail {
  id: string;
  run: Run | null;
  metric: string;
  steps: number[];
  values: (number | null)[];
  epoch: number;
  facts?: HTMLElement;
  actions?: HTMLElement;
  spark?: { box: HTMLElement; range: HTMLElement; line: SVGPolylineElement };
}

export class RunsSection extends Section {
  #list: HTMLElement;
  #count: HTMLElement;
  #empty: HTMLElement;
  #error: HTMLElement;
  #runs = new Map<string, RunSummary>();
  #rows = new Map<string, Row>();
  #total = 0;
  #detail: Detail | null = null;
  #epoch = 0;
  /** Deleted here or announced deleted: a list answer already in flight must not revive them. */
  #gone = new Set<string>();
  /** metric_update for runs outside the list: reload once for each, not on every batch. */
  #unknown = new Set<string>();

  constructor(api: Api) {
    super(api, h("section", "tl-panel tl-runs", { "data-field": "runs-section" }));
    const head = h("header", "tl-panel-head");
    this.#count = h("span", "tl-runs-count", { "data-field": "runs-count" });
    head.append(h("span", "tl-runs-title", undefined, "Runs"), this.#count);
    this.#empty = h("div", "tl-empty", { "data-field": "runs" });
    this.#empty.append("No runs yet. Start one with ", h("code", undefined, undefined, 'tracklab.init(project="...")'), " in a notebook or script.");
    this.#error = h("div", "tl-runs-error", { "data-field": "runs-error" });
    this.#error.hidden = true;
    this.#list = h("div", "tl-run-list", { "data-field": "run-list" });
    this.el.append(head, this.#error, this.#empty, this.#list);
  }

  /** The panel is visible: tick durations and fetch the list. */
  protected onResume(): void {
    this.every("tick", 1000, () => this.#tick());
    void this.load();
  }

  /** `GET api/runs?limit=20`: the rows follow the answer (order, states, summaries). */
  async load(): Promise<void> {
    // the socket's open and the panel's resume both load: only the latest answer counts
    const seq = this.nextLoad();
    let list: RunList;
    try {
      list = await this.api.get<RunList>("runs", { limit: String(RUNS_LIMIT) });
      if (!this.isLatest(seq)) return;
    } catch (e) {
      if (!this.isLatest(seq)) return;
      // 404: no store yet, or a server extension older than run tracking: no runs to show
      const none = e instanceof ApiError && e.status === 404;
      this.#empty.title = (e as Error).message;
      this.#error.hidden = none;
      this.#error.textContent = `runs not loaded: ${(e as Error).message}`;
      this.#render();
      return;
    }
    this.#error.hidden = true;
    this.#empty.title = "";
    const runs = (list.runs ?? []).filter((r) => r?.id && !this.#gone.has(r.id));
    const keep = new Set(runs.map((r) => r.id));
    for (const id of [...this.#runs.keys()]) if (!keep.has(id)) this.#drop(id);
    for (const r of runs) this.#runs.set(r.id, { ...r, summary: { ...this.#runs.get(r.id)?.summary, ...r.summary } });
    this.#total = finite(list.total) ? list.total : runs.length;
    this.#render();
  }

  /** `run_update` and `metric_update` frames; true when the message was one of them. */
  handleMessage(msg: Frame): boolean {
    if (msg.type === "run_update") {
      const run: RunSummary | undefined = msg.data?.run;
      if (!run?.id) return true;
      if (msg.data.reason === "deleted") {
        this.#forget(run.id);
        return true;
      }
      if (!this.#runs.has(run.id) && msg.data.reason === "created") this.#total++;
      const old = this.#runs.get(run.id);
      this.#runs.set(run.id, { ...old, ...run, summary: { ...old?.summary, ...run.summary } });
      this.#unknown.delete(run.id);
      this.#render();
      if (this.#detail?.id === run.id) this.#refreshFacts();
      return true;
    }
    if (msg.type === "metric_update") {
      const d: MetricUpdate | undefined = msg.data;
      if (!d?.run) return true;
      const run = this.#runs.get(d.run);
      if (!run) {
        // its `created` was missed (socket reconnected) or it is older than the list
        if (!this.#unknown.has(d.run) && !this.#gone.has(d.run)) {
          this.#unknown.add(d.run);
          this.#scheduleReload();
        }
        return true;
      }
      const summary = { ...run.summary };
      for (const cols of [d.metrics, d.process?.metrics]) {
        for (const [name, values] of Object.entries(cols ?? {})) {
          const v = lastOf(values);
          if (v !== undefined) summary[name] = v;
        }
      }
      run.summary = summary;
      this.#updateRow(run);
      this.#appendSpark(d);
      return true;
    }
    return false;
  }

  #scheduleReload(): void {
    this.later("reload", 500, () => void this.load());
  }

  #tick(): void {
    const now = Date.now() / 1000;
    for (const [id, row] of this.#rows) {
      const run = this.#runs.get(id);
      if (run?.state === "running") setText(row.duration, formatDuration(runDuration(run, now)));
    }
  }

  // -- rows ------------------------------------------------------------------------------
  /** Newest first, at most RUNS_LIMIT rows; DOM nodes are reused so an open detail stays. */
  #render(): void {
    const ordered = [...this.#runs.values()].sort((a, b) => (b.start ?? 0) - (a.start ?? 0));
    for (const r of ordered.slice(RUNS_LIMIT)) this.#drop(r.id);
    let prev: Element | null = null;
    for (const run of ordered.slice(0, RUNS_LIMIT)) {
      const row = this.#rows.get(run.id) ?? this.#createRow(run.id);
      this.#updateRow(run);
      const want: Element | null = prev ? prev.nextElementSibling : this.#list.firstElementChild;
      if (want !== row.el) {
        if (prev) prev.after(row.el);
        else this.#list.prepend(row.el);
      }
      prev = row.el;
    }
    this.#empty.hidden = this.#runs.size > 0;
    const n = this.#runs.size;
    this.#count.textContent = n && this.#total > n ? `${n} of ${this.#total}` : n ? String(n) : "";
  }

  #drop(id: string): void {
    this.#runs.delete(id);
    this.#rows.get(id)?.el.remove();
    this.#rows.delete(id);
    if (this.#detail?.id === id) this.#detail = null;
    this.#empty.hidden = this.#runs.size > 0;
  }

  #createRow(id: string): Row {
    const el = h("div", "tl-run", { "data-run-id": id });
    const head = h("div", "tl-run-head", { role: "button", tabindex: "0", "aria-expanded": "false" });
    const line1 = h("div", "tl-run-line");
    const badge = h("span", "tl-run-badge", { "data-field": "state" });
    const name = h("span", "tl-run-name", { "data-field": "name" });
    const duration = h("span", "tl-run-duration", { "data-field": "duration" });
    line1.append(badge, name, duration);
    const line2 = h("div", "tl-run-line tl-run-sub");
    const project = h("span", "tl-run-project", { "data-field": "project" });
    const metrics = h("span", "tl-run-metrics", { "data-field": "metrics" });
    line2.append(project, metrics);
    head.append(line1, line2);
    const detail = h("div", "tl-run-detail", { "data-field": "detail" });
    detail.hidden = true;
    el.append(head, detail);
    head.addEventListener("click", () => this.#toggle(id));
    head.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" || ev.key === " ") {
        ev.preventDefault();
        this.#toggle(id);
      }
    });
    const row: Row = { el, head, badge, name, duration, project, metrics, detail, metricsKey: "" };
    this.#rows.set(id, row);
    return row;
  }

  #updateRow(run: RunSummary): void {
    const row = this.#rows.get(run.id);
    if (!row) return;
    row.el.setAttribute("data-state", run.state);
    setText(row.badge, run.state);
    setText(row.name, run.name || run.id);
    row.name.title = `${run.name || ""} (${run.id})`;
    setText(row.project, run.project);
    setText(row.duration, formatDuration(runDuration(run, Date.now() / 1000)));
    const shown = userMetricNames(run.summary).slice(0, 3);
    const key = shown.map((n) => `${n}=${run.summary?.[n]}`).join("|");
    if (key !== row.metricsKey) {
      row.metricsKey = key;
      row.metrics.textContent = "";
      for (const n of shown) {
        const m = h("span", "tl-run-metric", { "data-run-metric": n });
        m.append(h("span", "tl-run-metric-name", undefined, n), ` ${formatLogged(n, run.summary?.[n])}`);
        row.metrics.append(m);
      }
    }
  }

  // -- detail ----------------------------------------------------------------------------
  #toggle(id: string): void {
    const open = this.#detail?.id === id;
    if (this.#detail) this.#collapse(this.#detail.id);
    if (open) return;
    const row = this.#rows.get(id);
    const run = this.#runs.get(id);
    if (!row || !run) return;
    const epoch = ++this.#epoch;
    this.#detail = { id, run: null, metric: userMetricNames(run.summary).find((n) => !isProcessMetric(n)) ?? "", steps: [], values: [], epoch };
    row.el.classList.add("tl-run-open");
    row.head.setAttribute("aria-expanded", "true");
    row.detail.hidden = false;
    row.detail.textContent = "loading…";
    void this.#loadDetail(id, epoch);
  }

  #collapse(id: string): void {
    const row = this.#rows.get(id);
    if (row) {
      row.el.classList.remove("tl-run-open");
      row.head.setAttribute("aria-expanded", "false");
      row.detail.hidden = true;
      row.detail.textContent = "";
    }
    this.#detail = null;
  }

  async #loadDetail(id: string, epoch: number): Promise<void> {
    const path = `runs/${encodeURIComponent(id)}`;
    try {
      const run = await this.api.get<Run>(path);
      if (this.#detail?.epoch !== epoch) return;
      this.#detail.run = { ...run, ...this.#runs.get(id) };
      await this.#loadSeries(epoch);
    } catch (e) {
      if (this.#detail?.epoch !== epoch) return;
      const row = this.#rows.get(id);
      if (row) row.detail.textContent = `not loaded: ${(e as Error).message}`;
      return;
    }
    this.#renderDetail();
  }

  /** The detail's sparkline metric, from `api/runs/{id}/metrics`. */
  async #loadSeries(epoch: number): Promise<void> {
    const d = this.#detail;
    if (!d || d.epoch !== epoch) return;
    d.steps = [];
    d.values = [];
    let start: number | null | undefined = undefined;
    for (let page = 0; page < MAX_SPARK_PAGES; page++) {
      const params: Record<string, string> = d.metric ? { metrics: d.metric } : {};
      if (start !== undefined && start !== null) params.start_step = String(start);
      const m = await this.api.get<RunMetrics>(`runs/${encodeURIComponent(d.id)}/metrics`, params);
      if (this.#detail?.epoch !== epoch) return;
      d.metric ||= Object.keys(m.metrics ?? {}).find((n) => !isProcessMetric(n)) ?? "";
      const col = m.metrics?.[d.metric] ?? [];
      (m.step ?? []).forEach((s, i) => {
        if (col[i] !== undefined) {
          d.steps.push(s);
          d.values.push(col[i]);
        }
      });
      start = m.next_start_step;
      if (start === undefined || start === null || !d.metric) break;
    }
  }

  /** New values of the open run's sparkline metric (steps it already has are skipped). */
  #appendSpark(u: MetricUpdate): void {
    const d = this.#detail;
    if (!d || d.id !== u.run || !d.run) return;
    if (!d.metric) {
      // the first values of a run opened before it logged anything
      d.metric = Object.keys(u.metrics ?? {}).find((n) => !isProcessMetric(n)) ?? "";
      if (d.metric) this.#renderDetail();
    }
    const col = d.metric ? u.metrics?.[d.metric] : undefined;
    if (!col) return;
    const last = d.steps.length ? d.steps[d.steps.length - 1] : -Infinity;
    (u.step ?? []).forEach((s, i) => {
      if (s > last && col[i] !== undefined) {
        d.steps.push(s);
        d.values.push(col[i]);
      }
    });
    this.#refreshSpark();
  }

  /** The whole detail view, after loading (and after picking another metric). */
  #renderDetail(): void {
    const d = this.#detail;
    const row = d ? this.#rows.get(d.id) : undefined;
    const run = d ? this.#detailRun() : null;
    if (!d || !row || !run) return;
    const el = row.detail;
    el.textContent = "";
    d.facts = h("div", "tl-run-factbox");
    el.append(d.facts);
    const config = flattenConfig(run.config);
    if (config.length) el.append(h("div", "tl-run-subhead", undefined, "config"), factList(config, "tl-run-config"));
    el.append(this.#sparkline(d, run));
    d.actions = h("div", "tl-run-actions");
    const del = h("button", "jp-Button jp-mod-styled jp-mod-warn tl-run-delete", { type: "button", "data-action": "delete" }, "Delete");
    del.title = "Delete this run and its logged metrics";
    del.addEventListener("click", () => void this.#delete(this.#detailRun() ?? run));
    d.actions.append(del);
    el.append(d.actions);
    this.#refreshFacts();
    this.#refreshSpark();
  }

  #detailRun(): Run | null {
    const d = this.#detail;
    return d?.run ? { ...d.run, ...this.#runs.get(d.id) } : null;
  }

  /** The parts that change with the run's state: end, error, the Delete action. */
  #refreshFacts(): void {
    const d = this.#detail;
    const run = this.#detailRun();
    if (!d?.facts || !d.actions || !run) return;
    d.facts.textContent = "";
    d.facts.append(
      factList(
        [
          ["id", run.id],
          ["host", [run.node, finite(run.pid) ? `pid ${run.pid}` : ""].filter(Boolean).join(" · ")],
          ["command", Array.isArray(run.command) ? run.command.join(" ") : (run.command ?? "")],
          ["cwd", run.cwd ?? ""],
          ["git", run.git?.commit ? `${run.git.commit.slice(0, 10)}${run.git.dirty ? " (dirty)" : ""}` : ""],
          ["python", run.python ?? ""],
          ["start", formatWhen(run.start)],
          ["end", run.state === "running" ? "" : formatWhen(run.end)],
          ["tags", (run.tags ?? []).join(", ")],
          ["notes", run.notes ?? ""],
          ["error", run.error ?? ""],
        ],
        "tl-run-facts",
      ),
    );
    // a running run cannot be deleted (the server answers 409)
    d.actions.hidden = run.state === "running";
  }

  #sparkline(d: Detail, run: RunSummary): HTMLElement {
    const box = h("div", "tl-run-spark", { "data-metric": d.metric });
    if (!d.metric) {
      box.append(h("span", "tl-empty", undefined, "no metrics logged yet"));
      return box;
    }
    const head = h("div", "tl-run-spark-head");
    const names = userMetricNames(run.summary).filter((n) => !isProcessMetric(n));
    if (names.length > 1) {
      const sel = h("select", "tl-run-spark-select", { "aria-label": "metric" });
      for (const n of names) sel.append(h("option", undefined, { value: n }, n));
      sel.value = d.metric;
      sel.addEventListener("change", () => {
        d.metric = sel.value;
        const epoch = (d.epoch = ++this.#epoch);
        this.#loadSeries(epoch)
          .then(() => this.#detail?.epoch === epoch && this.#renderDetail())
          .catch((e) => setText(d.spark?.range ?? box, `not loaded: ${(e as Error).message}`));
      });
      head.append(sel);
    } else {
      head.append(h("span", "tl-run-metric-name", undefined, d.metric));
    }
    const range = h("span", "tl-run-spark-range", { "data-field": "spark-range" });
    head.append(range);
    const svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("viewBox", `0 0 ${SPARK_W} ${SPARK_H}`);
    svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("class", "tl-run-spark-svg");
    const line = document.createElementNS(SVG_NS, "polyline");
    line.setAttribute("vector-effect", "non-scaling-stroke");
    svg.append(line);
    box.append(head, svg);
    d.spark = { box, range, line };
    return box;
  }

  #refreshSpark(): void {
    const d = this.#detail;
    if (!d?.spark) return;
    const fin = d.values.filter(finite);
    const f = (v: number | null | undefined) => formatLogged(d.metric, v);
    const text = fin.length ? `last ${f(lastOf(d.values))} · min ${f(Math.min(...fin))} · max ${f(Math.max(...fin))}` : "no values yet";
    setText(d.spark.range, text);
    d.spark.line.setAttribute("points", sparkPoints(d.values));
    d.spark.box.setAttribute("data-points", String(d.values.length));
  }

  async #delete(run: RunSummary): Promise<void> {
    const res = await showDialog({
      title: "Delete run",
      body: `Delete run "${run.name || run.id}" of project "${run.project}" and all its logged metrics? This cannot be undone.`,
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: "Delete" })],
    });
    if (!res.button.accept) return;
    try {
      await this.api.delete(`runs/${encodeURIComponent(run.id)}`);
    } catch (e) {
      // already gone (deleted elsewhere): the row goes all the same
      if (!(e instanceof ApiError && e.status === 404)) {
        await showErrorMessage("Run not deleted", e instanceof ApiError && e.detail ? e.detail : (e as Error).message);
        return;
      }
    }
    this.#forget(run.id);
  }

  /** A run deleted here or elsewhere; an older run moves up into the list if there is one. */
  #forget(id: string): void {
    this.#gone.add(id);
    if (this.#runs.has(id)) this.#total = Math.max(0, this.#total - 1);
    this.#drop(id);
    this.#render();
    if (this.#total > this.#runs.size) this.#scheduleReload();
  }
}

function factList(rows: [string, string][], cls: string): HTMLElement {
  const dl = h("dl", `tl-facts ${cls}`);
  for (const [k, v] of rows) {
    if (!v) continue;
    const dd = h("dd", undefined, { "data-fact": k }, v);
    dd.title = v;
    dl.append(h("dt", undefined, undefined, k), dd);
  }
  return dl;
}
