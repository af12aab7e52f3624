// The front-end kit's one formatting module, shared by the widget (js/) and the sidebar
// (labextension/src/ imports it, directly or through js/charts.ts): unit formatting, run
// durations and logged values, metric-name matching and accelerator throttle decoding.
// No DOM, no uPlot: unit-tested under plain node (js/tests/format.test.mjs). Anything that
// writes a number for a person belongs here, so the widget and the sidebar say it alike.

/** Text shown where a value is missing (metric absent, NaN, not yet received). */
export const MISSING = "–";

const BIN_UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
const DEC_UNITS = ["B", "kB", "MB", "GB", "TB", "PB"];

/** A finite number (not null, undefined, NaN or ±Infinity). */
export function finite(v: unknown): v is number {
  return typeof v === "number" && Number.isFinite(v);
}
const ok = finite;

/** Three significant digits at most, but never drop integer digits: 1.23, 12.3, 123. */
function sig3(x: number): string {
  const a = Math.abs(x);
  if (a >= 100 || a === 0) return Math.round(x).toString();
  if (a >= 10) return x.toFixed(1);
  return x.toFixed(2);
}

/** Scales `v` by `base` until it is below `base`; returns [scaled, unit index]. */
function scale(v: number, base: number, max: number): [number, number] {
  let i = 0;
  let x = v;
  while (Math.abs(x) >= base && i < max) {
    x /= base;
    i++;
  }
  // 1023.7 KiB would print as "1024 KiB": move up a unit instead.
  if (i < max && Math.abs(x) >= base - 0.5 && Math.abs(x) < base) {
    x /= base;
    i++;
  }
  return [x, i];
}

/** Bytes, binary units: 1536 → "1.50 KiB", 13.2e9 → "12.3 GiB". */
export function formatBytes(v: number | null | undefined): string {
  if (!ok(v)) return MISSING;
  const [x, i] = scale(v, 1024, BIN_UNITS.length - 1);
  return `${i === 0 ? Math.round(x) : sig3(x)} ${BIN_UNITS[i]}`;
}

/**
 * A used/total pair in the unit of the total, as "12.3 / 64.0 GiB". Falls back to
 * formatBytes(used) when the total is unknown.
 */
export function formatBytesOf(used: number | null | undefined, total: number | null | undefined): string {
  if (!ok(total) || total <= 0) return formatBytes(used);
  const [t, i] = scale(total, 1024, BIN_UNITS.length - 1);
  const f = Math.pow(1024, i);
  const digits = (x: number) => (i === 0 || Math.abs(x) >= 99.95 ? Math.round(x).toString() : x.toFixed(1));
  const u = ok(used) ? digits(used / f) : MISSING;
  return `${u} / ${digits(t)} ${BIN_UNITS[i]}`;
}

/** Byte rates, decimal units (like network gear and `iostat -h`): 2.5e6 → "2.50 MB/s". */
export function formatRate(v: number | null | undefined): string {
  if (!ok(v)) return MISSING;
  const [x, i] = scale(v, 1000, DEC_UNITS.length - 1);
  return `${i === 0 ? Math.round(x) : sig3(x)} ${DEC_UNITS[i]}/s`;
}

/** Percent: one decimal below 10 %, whole numbers above ("6.3 %", "97 %"). */
export function formatPct(v: number | null | undefined): string {
  if (!ok(v)) return MISSING;
  return `${Math.abs(v) < 10 && v !== 0 ? v.toFixed(1) : Math.round(v).toString()} %`;
}

export function formatTemp(v: number | null | undefined): string {
  return ok(v) ? `${Math.round(v)} °C` : MISSING;
}

export function formatWatts(v: number | null | undefined): string {
  if (!ok(v)) return MISSING;
  return `${Math.abs(v) < 10 ? v.toFixed(1) : Math.round(v).toString()} W`;
}

/** Power against its limit, as "686 / 700 W". */
export function formatWattsOf(v: number | null | undefined, limit: number | null | undefined): string {
  if (!ok(limit) || limit <= 0) return formatWatts(v);
  const w = ok(v) ? Math.round(v).toString() : MISSING;
  return `${w} / ${Math.round(limit)} W`;
}

/** Plain number, for unit-less gauges such as load averages. */
export function formatNumber(v: number | null | undefined): string {
  if (!ok(v)) return MISSING;
  const a = Math.abs(v);
  if (a >= 1e6) return v.toExponential(2);
  if (a >= 100) return Math.round(v).toString();
  return v.toFixed(2);
}

/** Four significant digits, for a run's own metrics (losses are small): 0.00123456 → "0.001235". */
export function formatValue(v: number | null | undefined): string {
  return ok(v) ? String(+v.toPrecision(4)) : MISSING;
}

/** A run's duration as a clock, in the widget and the sidebar alike: "00:00:42", "02:05:09", "3d 04:05:09". */
export function formatDuration(s: number | null | undefined): string {
  if (!ok(s) || s < 0) return MISSING;
  const hms = new Date(s * 1000).toISOString().slice(11, 19);
  return s < 86400 ? hms : `${Math.floor(s / 86400)}d ${hms}`;
}

/**
 * A value a run logged under `name`: unit-carrying names (`*_bytes`, `*_pct`) in their unit,
 * whole numbers below 10⁷ as they are (steps, counts), others at four significant digits.
 */
export function formatLogged(name: string, v: number | null | undefined): string {
  if (!ok(v)) return MISSING;
  if (unitOf(name) !== "number") return formatMetric(name, v);
  if (Number.isInteger(v) && Math.abs(v) < 1e7) return String(v);
  return formatValue(v);
}

/** "value": a plain number at four significant digits (a run's logged metrics). */
export type Unit = "bytes" | "rate" | "pct" | "temp" | "watts" | "number" | "value";

/** The unit of a metric, from the naming convention (unit last) of docs/METRICS.md. */
export function unitOf(name: string): Unit {
  if (name.endsWith("_bytes_per_s")) return "rate";
  if (name.endsWith("_bytes")) return "bytes";
  if (name.endsWith("_pct")) return "pct";
  if (name.endsWith("_c")) return "temp";
  if (name.endsWith("_w")) return "watts";
  return "number";
}

export const FORMATTERS: Record<Unit, (v: number | null | undefined) => string> = {
  bytes: formatBytes,
  rate: formatRate,
  pct: formatPct,
  temp: formatTemp,
  watts: formatWatts,
  number: formatNumber,
  value: formatValue,
};

/** Formats a value of metric `name` with the unit its name carries. */
export function formatMetric(name: string, v: number | null | undefined): string {
  return FORMATTERS[unitOf(name)](v);
}

/**
 * Short axis tick labels for a whole axis: one unit for all ticks (chosen from the
 * largest), and only as many decimals as the tick step needs: [0, 0.5, 1, 1.5] GiB →
 * ["0", "0.5G", "1.0G", "1.5G"].
 */
export function formatTicks(unit: Unit, splits: readonly number[]): string[] {
  const fin = splits.filter((v) => ok(v));
  const step = fin.length > 1 ? Math.abs(fin[1] - fin[0]) : Math.abs(fin[0] ?? 1) || 1;
  const top = fin.reduce((a, v) => Math.max(a, Math.abs(v)), 0);
  const digits = (s: number) => (s >= 1 || s === 0 ? 0 : s >= 0.1 ? 1 : 2);
  const sfx: Partial<Record<Unit, string>> = { pct: "%", temp: "°", watts: "W" };
  let f = 1;
  let suffix = sfx[unit] ?? "";
  if (unit === "bytes" || unit === "rate") {
    const base = unit === "bytes" ? 1024 : 1000;
    const units = unit === "bytes" ? BIN_UNITS : DEC_UNITS;
    const [, i] = scale(top, base, units.length - 1);
    f = Math.pow(base, i);
    suffix = i === 0 ? "" : units[i][0].toUpperCase();
  }
  const d = digits(step / f);
  return splits.map((v) => (!ok(v) ? "" : v === 0 ? "0" : `${(v / f).toFixed(d)}${suffix}`));
}

/** Tick steps for byte axes: powers of two of each binary unit (…, 256 MiB, 512 MiB, 1 GiB, 2 GiB, …). */
export const BYTE_INCRS: number[] = (() => {
  const out: number[] = [];
  for (let k = 0; k < 6; k++) for (let m = 1; m < 1024; m *= 2) out.push(m * Math.pow(1024, k));
  return out;
})();

/**
 * Top of an axis from 0 that holds `v`: a multiple of a "nice" step that gives at most
 * five ticks (steps 1, 2, 2.5, 5 × 10ⁿ, or powers of two of binary units for bytes).
 */
export function niceMax(v: number, binary = false): number {
  if (!(v > 0) || !Number.isFinite(v)) return 1;
  let steps: number[];
  if (binary) {
    const [, i] = scale(v, 1024, BIN_UNITS.length - 1);
    const f = Math.pow(1024, i);
    steps = [0.125, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512].map((m) => m * f);
  } else {
    const p = Math.pow(10, Math.floor(Math.log10(v)) - 1);
    steps = [1, 2, 2.5, 5, 10, 20, 25, 50, 100].map((m) => m * p);
  }
  for (const s of steps) if (v / s <= 5 + 1e-9) return Math.ceil(v / s - 1e-9) * s;
  return v;
}

// ---------------------------------------------------------------------------
// Accelerator throttling: each vendor's mask, decoded as tracklab_jupyter/accelerators/throttle.py
// does (NVIDIA: NVML clocks-event reasons; AMD: the SMU throttler status folded to 4 bits).

/**
 * NVIDIA reasons that are not throttling: GPU idle (0x1), application clock setting (0x2) and
 * display clock setting (0x100).
 */
export const THROTTLE_BENIGN = 0x103;

const THROTTLE_NAMES: Record<string, [number, string][]> = {
  nvidia: [
    [0x4, "power cap"],
    [0x8, "HW slowdown"],
    [0x10, "sync boost"],
    [0x20, "SW thermal"],
    [0x40, "HW thermal"],
    [0x80, "power brake"],
  ],
  amd: [
    [0x1, "power limit"],
    [0x2, "current limit"],
    [0x4, "temperature"],
    [0x8, "platform limit"],
  ],
};
const BENIGN: Record<string, number> = { nvidia: THROTTLE_BENIGN, amd: 0 };

/** True when the vendor's mask holds a reason that slows the device (NVIDIA: not idle/app/display clocks). */
export function isThrottled(mask: number | null | undefined, vendor = "nvidia"): boolean {
  if (!ok(mask) || mask < 0) return false;
  // Masks are 64-bit in NVML; every reason defined so far fits in 32 bits.
  const lo = mask % 0x100000000;
  const hi = Math.floor(mask / 0x100000000);
  return (lo & ~(BENIGN[vendor] ?? 0)) !== 0 || hi !== 0;
}

/** Human names of the throttle reasons in `mask` (benign ones left out). */
export function throttleReasons(mask: number | null | undefined, vendor = "nvidia"): string[] {
  if (!isThrottled(mask, vendor)) return [];
  const names = THROTTLE_NAMES[vendor] ?? [];
  const m = (mask as number) % 0x100000000;
  const out = names.filter(([bit]) => (m & bit) !== 0).map(([, n]) => n);
  const known = names.reduce((a, [bit]) => a | bit, BENIGN[vendor] ?? 0);
  if ((m & ~known) !== 0 || (mask as number) >= 0x100000000) out.push("other");
  return out;
}

// ---------------------------------------------------------------------------
// Metric-name globs (the widget's `metrics` trait)

const globCache = new Map<string, RegExp>();

/** fnmatch-style glob (`*`, `?`) to an anchored RegExp. */
export function globToRegExp(glob: string): RegExp {
  let re = globCache.get(glob);
  if (!re) {
    const src = glob.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".");
    re = new RegExp(`^${src}$`);
    globCache.set(glob, re);
  }
  return re;
}

/** True when `name` matches one of `globs`; an empty or missing list matches everything. */
export function matchesAny(name: string, globs: readonly string[] | null | undefined): boolean {
  if (!globs || globs.length === 0) return true;
  return globs.some((g) => globToRegExp(g).test(name));
}

/** Clock time of an epoch second, 24 h: "14:05:09", or "14:05" with `short`. */
export function formatClock(t: number, short = false): string {
  if (!ok(t)) return "";
  const d = new Date(t * 1000);
  const p = (x: number) => String(x).padStart(2, "0");
  const hm = `${p(d.getHours())}:${p(d.getMinutes())}`;
  return short ? hm : `${hm}:${p(d.getSeconds())}`;
}
