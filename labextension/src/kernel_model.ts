// Pure parts of the sidebar's Kernels section (kernels.ts): the kernel entry of
// `api/kernels` and `kernels` frames (issue 15's contract), ordering and formatting. No
// DOM: unit-tested under plain node (js/tests/labext.test.mjs).

import { finite, formatBytes, formatPct } from "../../js/format";

/** One process of a kernel's tree (the largest by RSS first). */
export interface KernelProcess {
  pid: number;
  name: string;
  cpu_pct: number;
  rss_bytes: number;
  threads: number;
  gpu_mem_bytes?: number | null;
}

/** One kernel: an entry of `api/kernels` and of `kernels` frames. */
export interface KernelEntry {
  id: string;
  name: string;
  notebook: string | null;
  execution_state: string;
  last_activity?: number | null;
  connections?: number;
  sampled: boolean;
  not_sampled?: string | null;
  pid?: number | null;
  procs?: number;
  threads?: number;
  cpu_pct?: number | null;
  rss_bytes?: number | null;
  pss_bytes?: number | null;
  uss_bytes?: number | null;
  mem_limit_bytes?: number | null;
  mem_limit_source?: string | null;
  gpu_mem_bytes?: number | null;
  gpus?: Record<string, { mem_used_bytes?: number | null; util_pct?: number | null; proc_util_pct?: number | null }>;
  pid_namespace?: string | null;
  processes?: KernelProcess[];
}

/** The body of `api/kernels`, and the data of a `kernels` frame. */
export interface KernelsBody {
  time: number | null;
  node: string;
  interval_s: number;
  mem_limit_bytes?: number | null;
  mem_limit_source?: string | null;
  notes?: string[];
  kernels: KernelEntry[];
}

/**
 * Names in one `api/history` request: the server's default `max_patterns`. More kernels
 * take several requests.
 */
export const HISTORY_NAMES_PER_REQUEST = 256;


/** `work/train.ipynb` → `train.ipynb`; a kernel without a notebook is named by its spec. */
export function kernelLabel(k: Pick<KernelEntry, "notebook" | "name" | "id">): string {
  if (k.notebook) return k.notebook.split("/").filter(Boolean).pop() ?? k.notebook;
  return `${k.name || "kernel"} ${k.id.slice(0, 8)}`;
}

/** Largest RSS first; kernels without a figure (remote, not sampled yet) last, by name. */
export function sortKernels(list: readonly KernelEntry[]): KernelEntry[] {
  const rss = (k: KernelEntry) => (finite(k.rss_bytes) ? k.rss_bytes : -1);
  return [...list].sort((a, b) => rss(b) - rss(a) || kernelLabel(a).localeCompare(kernelLabel(b)) || a.id.localeCompare(b.id));
}

/** RSS as a share (0–1) of the limit that applies to the kernel; NaN when either is unknown. */
export function memFraction(k: KernelEntry, bodyLimit?: number | null): number {
  const limit = finite(k.mem_limit_bytes) ? k.mem_limit_bytes : bodyLimit;
  if (!finite(k.rss_bytes) || !finite(limit) || limit <= 0) return NaN;
  return Math.min(1, Math.max(0, k.rss_bytes / limit));
}

/** `GPU 1.20 GiB`, with one line per device for the tooltip (`gpu.0: 1.20 GiB · device 35 % ·
 * own 20 %`: the device's utilisation, then the kernel's processes' where the driver says). */
export function gpuText(k: KernelEntry): { text: string; title: string } {
  const devices = Object.entries(k.gpus ?? {}).sort(([a], [b]) => a.localeCompare(b, undefined, { numeric: true }));
  if (!finite(k.gpu_mem_bytes) && !devices.length) return { text: "", title: "" };
  const lines = devices.map(([dev, g]) =>
    `${dev}: ${formatBytes(g.mem_used_bytes)}` +
    (finite(g.util_pct) ? ` · device ${formatPct(g.util_pct)}` : "") +
    (finite(g.proc_util_pct) ? ` · own ${formatPct(g.proc_util_pct)}` : ""));
  if (k.pid_namespace) lines.push(k.pid_namespace);
  return { text: `GPU ${formatBytes(k.gpu_mem_bytes)}`, title: ["GPU memory of the kernel's processes", ...lines].join("\n") };
}

/** The kernel series a sparkline reads. */
export function rssSeries(id: string): string {
  return `kernel.${id}.rss_bytes`;
}

/** `names` in chunks of at most `size` (the server's limit on names per request). */
export function chunks<T>(names: readonly T[], size = HISTORY_NAMES_PER_REQUEST): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < names.length; i += size) out.push(names.slice(i, i + size));
  return out;
}

/**
 * The name a 404 of `api/history` says it does not know, among `names`: its detail reads
 * "no metric 'kernel.<id>.rss_bytes' in the history at … ; close matches: …" (the close
 * matches are other, known names).
 */
export function unknownNames(detail: string, names: readonly string[]): string[] {
  const m = /\bno (?:metric|pattern) '([^']+)'/.exec(detail);
  return m && names.includes(m[1]) ? [m[1]] : [];
}
