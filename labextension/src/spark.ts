// The sidebar's sparklines (the cluster section's node rows, the kernels section's RSS):
// a trail of values over time, its SVG path, the SVG element that draws it, and the small
// helpers the sections share.

export const SVG_NS = "http://www.w3.org/2000/svg";
/** The sparklines' viewBox (the SVG is stretched to its box). */
export const SPARK_W = 100;
export const SPARK_H = 20;
/** The shortest time axis of the sparklines (seconds): a fresh line is not a dot. */
export const MIN_SPAN_S = 60;

// one definition for both front ends (js/format.ts); re-exported for the sections
import { finite } from "../../js/format";
export { finite };

/** Sets an element's text only when it changed (no needless layout). */
export function setText(e: Element, t: string): void {
  if (e.textContent !== t) e.textContent = t;
}

/** One series' values over the time window, oldest first. */
export class Trail {
  t: number[] = [];
  v: number[] = [];

  get length(): number {
    return this.t.length;
  }

  last(): number {
    return this.v.length ? this.v[this.v.length - 1] : NaN;
  }

  lastTime(): number {
    return this.t.length ? this.t[this.t.length - 1] : -Infinity;
  }

  /** A live value: kept only when newer than what is there (frames never go back in time). */
  push(t: number, v: number): void {
    if (!finite(t) || !finite(v) || t <= this.lastTime()) return;
    this.t.push(t);
    this.v.push(v);
  }

  /** Backfilled values, merged by time; a time already present keeps its value. */
  merge(ts: readonly number[], vs: readonly number[]): void {
    const pairs: [number, number][] = this.t.map((t, i) => [t, this.v[i]]);
    ts.forEach((t, i) => finite(t) && finite(vs[i]) && pairs.push([t, vs[i]]));
    pairs.sort((a, b) => a[0] - b[0]);
    this.t = [];
    this.v = [];
    for (const [t, v] of pairs) {
      if (t === this.lastTime()) continue;
      this.t.push(t);
      this.v.push(v);
    }
  }

  /** Backfilled `api/history` columns (`times` and one series' values, nulls skipped). */
  mergeColumn(times: readonly number[], values: readonly (number | null)[]): void {
    const ts: number[] = [];
    const vs: number[] = [];
    values.forEach((v, i) => {
      if (finite(v)) {
        ts.push(times[i]);
        vs.push(v);
      }
    });
    this.merge(ts, vs);
  }

  /** Drops values older than `since`. */
  trim(since: number): void {
    let i = 0;
    while (i < this.t.length && this.t[i] < since) i++;
    if (i) {
      this.t.splice(0, i);
      this.v.splice(0, i);
    }
  }
}

/**
 * The start of the time axis all rows share: the window, or while less than the window is
 * stored (a fresh server, a fresh kernel) what there is since `first`, but at least
 * MIN_SPAN_S, so the lines are not squeezed to the right.
 */
export function axisStart(now: number, windowS: number, first: number): number {
  return now - Math.min(windowS, Math.max(MIN_SPAN_S, now - first));
}

/**
 * An SVG path of a 0–`max` trail (0–100 % by default) between `t0` and `t1`: a fixed scale
 * so that rows compare at a glance. Several values per horizontal unit keep their min and
 * max (a one-sample spike stays visible); a pause longer than `gapS` breaks the line
 * instead of bridging it.
 */
export function sparkPath(trail: Trail, t0: number, t1: number, gapS: number, w = SPARK_W, hgt = SPARK_H, max = 100): string {
  const span = t1 - t0;
  if (!(span > 0) || !(max > 0) || !trail.length) return "";
  const x = (t: number) => ((t - t0) / span) * w;
  const y = (v: number) => hgt - 1 - (Math.min(max, Math.max(0, v)) / max) * (hgt - 2);
  const out: string[] = [];
  let prevT = -Infinity;
  let col = NaN;
  let lo = 0;
  let hi = 0;
  let cx = 0;
  let pen = "M";
  const flush = () => {
    if (Number.isNaN(col)) return;
    out.push(`${pen}${cx.toFixed(1)},${y(lo).toFixed(1)}`);
    pen = "L";
    if (hi !== lo) out.push(`L${cx.toFixed(1)},${y(hi).toFixed(1)}`);
    col = NaN;
  };
  for (let i = 0; i < trail.t.length; i++) {
    const t = trail.t[i];
    const v = trail.v[i];
    if (t < t0) continue;
    if (t - prevT > gapS) {
      flush();
      pen = "M";
    }
    prevT = t;
    const c = Math.floor(x(t));
    if (c !== col) {
      flush();
      col = c;
      cx = x(t);
      lo = hi = v;
    } else {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
  }
  flush();
  return out.join("");
}

/** An empty sparkline (SPARK_W × SPARK_H, stretched to its box) and the path it draws. */
export function sparkSvg(cls: string, attrs: Record<string, string> = {}): { svg: SVGSVGElement; path: SVGPathElement } {
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("viewBox", `0 0 ${SPARK_W} ${SPARK_H}`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("class", cls);
  for (const [k, v] of Object.entries(attrs)) svg.setAttribute(k, v);
  const path = document.createElementNS(SVG_NS, "path");
  path.setAttribute("vector-effect", "non-scaling-stroke");
  svg.append(path);
  return { svg, path };
}
