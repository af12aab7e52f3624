// The host panels (CPU, memory, disk I/O, network) as both front ends show them: the
// notebook widget and the JupyterLab sidebar build them here so they look and behave alike.

import { formatBytesOf, formatNumber, type Dashboard, type DrawContext, type Panel } from "./charts";

/** A panel and example metric names, matched against a `metrics` filter to hide it. */
export interface PanelEntry {
  panel: Panel;
  metrics: string[];
}

export interface HostPanelOptions {
  /** Under the CPU title, e.g. "Intel Xeon · 16 cores". */
  cpuSubtitle?: string;
  /** The memory limit to show when no `mem.limit_bytes` sample is there. */
  memLimit: () => number | null | undefined;
  /** The sidebar's narrow layout: no subtitles, no swap headline, no legends. */
  compact?: boolean;
}

export const HOST_PANEL_METRICS: Record<string, string[]> = {
  cpu: ["cpu.util_pct", "cpu.core.0.util_pct", "cpu.load1"],
  mem: ["mem.used_bytes", "mem.util_pct", "mem.limit_bytes", "swap.used_bytes"],
  disk: ["disk.read_bytes_per_s", "disk.write_bytes_per_s"],
  net: ["net.recv_bytes_per_s", "net.sent_bytes_per_s"],
};

/** Adds the four host panels to `grid`; returns them keyed cpu, mem, disk, net. */
export function buildHostPanels(dash: Dashboard, grid: HTMLElement,
                                opts: HostPanelOptions): Map<string, PanelEntry> {
  const compact = !!opts.compact;
  const panels = new Map<string, PanelEntry>();
  const memLimit = (ctx: DrawContext) => {
    const v = ctx.store.latest("mem.limit_bytes", ctx.staleS);
    return Number.isFinite(v) ? v : (opts.memLimit() ?? NaN);
  };

  const cpu = dash.panel("CPU", compact ? "" : (opts.cpuSubtitle ?? ""), grid, "tl-cpu");
  cpu.headline({ metric: "cpu.util_pct", cls: "tl-big" });
  cpu.headline({ metric: "cpu.load1", label: "load 1 min", format: formatNumber });
  cpu.chart({ unit: "pct", range: "pct", legend: false, series: [{ name: "cpu.util_pct", label: "all cores" }] });
  cpu.cores();
  panels.set("cpu", { panel: cpu, metrics: HOST_PANEL_METRICS.cpu });

  const mem = dash.panel("Memory", "used / limit", grid, "tl-mem");
  mem.headline({ metric: "mem.used_bytes", cls: "tl-big", format: (v, ctx) => formatBytesOf(v, memLimit(ctx)) });
  mem.headline({ metric: "mem.util_pct", label: "used" });
  if (!compact) mem.headline({ metric: "swap.used_bytes", label: "swap", optional: true });
  mem.chart({
    unit: "bytes",
    minMax: 1024 ** 3,
    legend: !compact,
    series: [
      { name: "mem.used_bytes", label: "used" },
      { name: "mem.limit_bytes", label: "limit", color: "dim", dash: true, fallback: () => opts.memLimit() ?? undefined },
    ],
  });
  panels.set("mem", { panel: mem, metrics: HOST_PANEL_METRICS.mem });

  const ratePanel = (key: string, title: string, subtitle: string, minMax: number,
                     a: [string, string], b: [string, string]) => {
    const panel = dash.panel(title, compact ? "" : subtitle, grid, `tl-${key}`);
    panel.headline({ metric: a[0], label: a[1], cls: "tl-mid", swatch: 0 });
    panel.headline({ metric: b[0], label: b[1], cls: "tl-mid", swatch: 1 });
    panel.chart({
      unit: "rate",
      minMax,
      legend: false,
      series: [
        { name: a[0], label: a[1], color: 0 },
        { name: b[0], label: b[1], color: 1, fill: true },
      ],
    });
    panels.set(key, { panel, metrics: HOST_PANEL_METRICS[key] });
  };
  ratePanel("disk", "Disk I/O", "all block devices", 1e6,
            ["disk.read_bytes_per_s", "read"], ["disk.write_bytes_per_s", "write"]);
  ratePanel("net", "Network", "all interfaces", 1e5,
            ["net.recv_bytes_per_s", "in"], ["net.sent_bytes_per_s", "out"]);
  return panels;
}
