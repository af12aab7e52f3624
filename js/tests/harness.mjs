// Test harness for the built widget (tracklab_jupyter/static/widget.js) without Jupyter:
// a fake anywidget model that answers "ready" with an init and replays
// tests/fixtures/nvidia-h200/h200_trace.csv (a real H200 + host trace at 4 Hz) as
// columnar `data` messages, exactly as js/PROTOCOL.md describes.
//
// Query options: backfill=<rows sent as the backfill> (default 240), live=<rows per live
// batch> (default 1), every=<ms between live batches> (default 250, 0 = no live replay),
// window=<window_s> (default 300), height=<px>, gpus=<cards, the trace repeated> (default 1),
// dark=1, width=<px of the output area>, status=<header text>, noinit=1 (don't answer
// "ready": call __tl.model.onReady() to send the init and the replay).
//
// window.__tl exposes { model, emit(msg, buffers), rows, view } to browser tests.
import widget from "../../tracklab_jupyter/static/widget.js";

const q = new URLSearchParams(location.search);
const num = (k, d) => (q.has(k) ? Number(q.get(k)) : d);
if (q.get("dark") === "1") document.body.classList.add("dark");
if (q.has("width")) document.documentElement.style.setProperty("--harness-width", `${num("width", 1100)}px`);

const H200_TOTAL = 143771 * 1024 * 1024;

async function loadTrace() {
  const text = await (await fetch("../../tests/fixtures/nvidia-h200/h200_trace.csv")).text();
  const [head, ...lines] = text.trim().split(/\r?\n/);
  const cols = head.split(",");
  const rows = lines.map((l) => {
    const v = l.split(",");
    return Object.fromEntries(cols.map((c, i) => [c, c === "phase" ? v[i] : v[i] === "" ? NaN : Number(v[i])]));
  });
  // Cumulative byte counters → rates, as the sampler reports them.
  const rate = (k, i) => (i === 0 ? 0 : Math.max(0, (rows[i][k] - rows[i - 1][k]) / (rows[i].t - rows[i - 1].t)));
  const gpus = num("gpus", 1);
  return rows.map((r, i) => {
    const m = {
      "cpu.util_pct": r.cpu_pct,
      "cpu.load1": r.load1,
      "mem.used_bytes": r.mem_used,
      "mem.limit_bytes": r.mem_used + r.mem_avail,
      "mem.util_pct": (100 * r.mem_used) / (r.mem_used + r.mem_avail),
      "swap.used_bytes": 0,
      "disk.read_bytes_per_s": rate("disk_read_bytes", i),
      "disk.write_bytes_per_s": rate("disk_write_bytes", i),
      "net.recv_bytes_per_s": rate("net_recv_bytes", i),
      "net.sent_bytes_per_s": rate("net_sent_bytes", i),
    };
    for (let c = 0; c < 16; c++) m[`cpu.core.${c}.util_pct`] = r[`core${c}`];
    for (let g = 0; g < gpus; g++) {
      const p = `gpu.${g}.`;
      m[p + "util_pct"] = r.gpu_util;
      m[p + "mem_util_pct"] = r.gpu_mem_util;
      m[p + "mem_used_bytes"] = r.gpu_mem_used;
      m[p + "mem_total_bytes"] = H200_TOTAL;
      m[p + "temp_c"] = r.gpu_temp;
      m[p + "power_w"] = r.gpu_power_mw / 1000;
      m[p + "power_limit_w"] = 700;
      m[p + "throttle_reasons"] = r.gpu_throttle;
    }
    return { t: r.t, phase: r.phase, m };
  });
}

/** Rows → one protocol `data` message with its two buffers (DataViews, as anywidget gives). */
export function toMessage(rows, backfill) {
  const names = Object.keys(rows[0].m);
  const n = rows.length;
  const times = new Float64Array(rows.map((r) => r.t));
  const values = new Float64Array(names.length * n);
  names.forEach((k, s) => rows.forEach((r, i) => (values[s * n + i] = r.m[k] ?? NaN)));
  return [{ type: "data", names, n, backfill }, [new DataView(times.buffer), new DataView(values.buffer)]];
}

function fakeModel(state) {
  const handlers = new Map();
  const model = {
    sent: [],
    get: (k) => state[k],
    set: (k, v) => {
      state[k] = v;
      for (const cb of handlers.get(`change:${k}`) ?? []) cb();
    },
    save_changes() {},
    on(ev, cb) {
      if (!handlers.has(ev)) handlers.set(ev, new Set());
      handlers.get(ev).add(cb);
    },
    off(ev, cb) {
      if (!ev) handlers.clear();
      else if (!cb) handlers.delete(ev);
      else handlers.get(ev)?.delete(cb);
    },
    send(msg) {
      model.sent.push(msg);
      if (msg?.type === "ready" && q.get("noinit") !== "1") queueMicrotask(() => model.onReady?.());
    },
    listeners: (ev) => handlers.get(ev)?.size ?? 0,
    emit(msg, buffers) {
      for (const cb of handlers.get("msg:custom") ?? []) cb(msg, buffers);
    },
  };
  return model;
}

const rows = await loadTrace();
const model = fakeModel({
  height: num("height", 0),
  window_s: num("window", 300),
  metrics: [],
  status: q.get("status") ?? "live · recorder · 0.25 s",
});
const gpus = num("gpus", 1);
model.onReady = () => {
  model.emit({
    type: "init",
    node: "h200-node-01",
    interval_s: 0.25,
    window_s: num("window", 300),
    info: {
      cpu_model: "Intel(R) Xeon(R) Processor",
      cpu_count: 16,
      mem_limit_bytes: rows[0].m["mem.limit_bytes"],
      accelerators: Array.from({ length: gpus }, (_, i) => ({
        index: i,
        kind: "gpu",
        vendor: "nvidia",
        name: "NVIDIA H200",
        uuid: `GPU-5f1c0e2a-7d3b-4c11-9a6e-0b2d4e8f1a3${i}`,
        mem_total_bytes: H200_TOTAL,
        power_limit_w: 700,
      })),
    },
  });
  let next = Math.min(num("backfill", 240), rows.length);
  if (next > 0) model.emit(...toMessage(rows.slice(0, next), true));
  const every = num("every", 250);
  const live = num("live", 1);
  if (every > 0) {
    const timer = setInterval(() => {
      if (next >= rows.length) return clearInterval(timer);
      model.emit(...toMessage(rows.slice(next, next + live), false));
      next += live;
    }, every);
  }
};

const el = document.getElementById("out");
const cleanup = widget.render({ model, el });
window.__tl = { model, rows, cleanup, toMessage, widget, el, emit: (m, b) => model.emit(m, b) };
