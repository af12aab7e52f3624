// Time-series buffers for the live charts. Pure (no DOM): unit-tested under plain node.
//
// One shared, ascending time axis and one Float64 column per metric name, all the same
// length, so every chart gets uPlot's "aligned data" without any joining. A name missing
// from a batch gets NaN for those rows; a name seen for the first time gets NaN for the
// rows before it. The buffers grow by doubling and drop old rows from the front
// (`trim`), so appending is amortised O(batch) and memory stays O(window).

/** One decoded `data` message (see js/PROTOCOL.md). */
export interface Batch {
  names: string[];
  n: number;
  /** `n` epoch seconds, ascending. */
  times: Float64Array;
  /** `names.length * n` values, series-major; NaN where absent. */
  values: Float64Array;
}

type BufferLike = ArrayBuffer | ArrayBufferView;

/**
 * Float64 view of a message buffer (anywidget hands a DataView; other hosts an
 * ArrayBuffer or a typed array). Copies when the bytes are not 8-byte aligned, since a
 * Float64Array cannot start at an unaligned offset.
 */
export function toFloat64(buf: BufferLike): Float64Array {
  if (buf instanceof Float64Array) return buf;
  let ab: ArrayBufferLike;
  let off = 0;
  let len: number;
  if (ArrayBuffer.isView(buf)) {
    ab = buf.buffer;
    off = buf.byteOffset;
    len = buf.byteLength;
  } else {
    ab = buf;
    len = buf.byteLength;
  }
  if (len % 8 !== 0) throw new RangeError(`buffer of ${len} bytes is not a whole number of float64`);
  if (off % 8 === 0) return new Float64Array(ab, off, len / 8);
  return new Float64Array(new Uint8Array(ab, off, len).slice().buffer);
}

/**
 * Checks and decodes a `data` message with its two buffers. Throws on a malformed
 * message (wrong sizes, missing buffers) so the caller can log and drop it.
 */
export function decodeData(msg: { names?: unknown; n?: unknown }, buffers: readonly BufferLike[] | undefined): Batch {
  const names = msg.names;
  if (!Array.isArray(names) || !names.every((x) => typeof x === "string")) throw new TypeError("data: names must be a list of strings");
  if (!buffers || buffers.length < 2) throw new TypeError("data: expected 2 buffers (times, values)");
  const times = toFloat64(buffers[0]);
  const values = toFloat64(buffers[1]);
  const n = typeof msg.n === "number" ? msg.n : times.length;
  if (times.length !== n) throw new RangeError(`data: ${times.length} times for n=${n}`);
  if (values.length !== names.length * n) throw new RangeError(`data: ${values.length} values for ${names.length} names × ${n}`);
  return { names: names as string[], n, times, values };
}

const MIN_CAP = 64;

export class SeriesStore {
  #cap = 0;
  #start = 0;
  #len = 0;
  #t = new Float64Array(0);
  #cols = new Map<string, Float64Array>();
  /** Bumped on every change; lets views cache derived arrays. */
  version = 0;
  /** Points received since the last clear: rows × names, counting NaNs only once per row. */
  received = 0;

  get length(): number {
    return this.#len;
  }

  /** Rows the buffers can hold before they grow (memory is capacity × (names + 1) × 8 B). */
  get capacity(): number {
    return this.#cap;
  }

  /** Metric names with a column, in first-seen order. */
  names(): string[] {
    return [...this.#cols.keys()];
  }

  has(name: string): boolean {
    return this.#cols.has(name);
  }

  /** The shared time axis (a view: valid until the next append/trim). */
  times(): Float64Array {
    return this.#t.subarray(this.#start, this.#start + this.#len);
  }

  /** One metric's column aligned with `times()` (a view), or undefined if never seen. */
  values(name: string): Float64Array | undefined {
    const c = this.#cols.get(name);
    return c && c.subarray(this.#start, this.#start + this.#len);
  }

  firstTime(): number {
    return this.#len ? this.#t[this.#start] : NaN;
  }

  lastTime(): number {
    return this.#len ? this.#t[this.#start + this.#len - 1] : NaN;
  }

  /**
   * Latest non-NaN value of `name`. With `maxAgeS`, a value older than that (against
   * the newest row) counts as absent: a GPU that fell off the bus must not keep showing
   * its last reading.
   */
  latest(name: string, maxAgeS = Infinity): number {
    const c = this.#cols.get(name);
    if (!c || !this.#len) return NaN;
    const end = this.#start + this.#len;
    const tmin = this.#t[end - 1] - maxAgeS;
    for (let i = end - 1; i >= this.#start; i--) {
      if (this.#t[i] < tmin) break;
      const v = c[i];
      if (!Number.isNaN(v)) return v;
    }
    return NaN;
  }

  clear(): void {
    this.#memo.clear();
    this.#timesMemo = null;
    this.#cap = 0;
    this.#start = 0;
    this.#len = 0;
    this.#t = new Float64Array(0);
    this.#cols.clear();
    this.received = 0;
    this.version++;
  }

  /** Makes room for `extra` more rows at the end (compacting or doubling). */
  #reserve(extra: number): void {
    const need = this.#len + extra;
    if (this.#start + need <= this.#cap) return;
    if (need <= this.#cap >> 1) {
      // Plenty of room once the trimmed front is reclaimed: slide everything down.
      const s = this.#start;
      const e = s + this.#len;
      this.#t.copyWithin(0, s, e);
      for (const c of this.#cols.values()) c.copyWithin(0, s, e);
      this.#start = 0;
      return;
    }
    let cap = Math.max(MIN_CAP, this.#cap);
    while (cap < need) cap *= 2;
    const grow = (old: Float64Array) => {
      const a = new Float64Array(cap);
      a.set(old.subarray(this.#start, this.#start + this.#len));
      return a;
    };
    this.#t = grow(this.#t);
    for (const [k, c] of this.#cols) this.#cols.set(k, grow(c));
    this.#cap = cap;
    this.#start = 0;
  }

  #column(name: string): Float64Array {
    let c = this.#cols.get(name);
    if (!c) {
      c = new Float64Array(this.#cap).fill(NaN);
      this.#cols.set(name, c);
    }
    return c;
  }

  /**
   * Appends a columnar batch. Rows not newer than the last stored time are skipped
   * (a live batch overlapping the backfill), so the time axis stays strictly ascending.
   * Returns the number of rows appended.
   */
  append(batch: Batch): number {
    const { names, n, times, values } = batch;
    const last = this.lastTime();
    let i0 = 0;
    if (this.#len) while (i0 < n && !(times[i0] > last)) i0++;
    // Rows must ascend within the batch too; keep the ascending ones.
    const rows: number[] = [];
    let prev = this.#len ? last : -Infinity;
    for (let i = i0; i < n; i++) {
      const ti = times[i];
      if (ti > prev) {
        rows.push(i);
        prev = ti;
      }
    }
    const k = rows.length;
    if (!k) return 0;
    this.#reserve(k);
    const base = this.#start + this.#len;
    const contiguous = rows[k - 1] - rows[0] === k - 1;
    if (contiguous) this.#t.set(times.subarray(rows[0], rows[0] + k), base);
    else for (let j = 0; j < k; j++) this.#t[base + j] = times[rows[j]];
    const seen = new Set<string>();
    for (let s = 0; s < names.length; s++) {
      const name = names[s];
      if (seen.has(name)) continue;
      seen.add(name);
      const col = this.#column(name);
      const off = s * n;
      if (contiguous) col.set(values.subarray(off + rows[0], off + rows[0] + k), base);
      else for (let j = 0; j < k; j++) col[base + j] = values[off + rows[j]];
    }
    for (const [name, col] of this.#cols) if (!seen.has(name)) col.fill(NaN, base, base + k);
    this.#len += k;
    this.received += k * seen.size;
    this.version++;
    return k;
  }

  /** Drops rows older than `minTime`. */
  trimBefore(minTime: number): number {
    let i = 0;
    const end = this.#start + this.#len;
    while (this.#start + i < end && this.#t[this.#start + i] < minTime) i++;
    if (i) {
      this.#start += i;
      this.#len -= i;
      this.version++;
      // Forget names that only had NaN left, so a removed disk or lost GPU goes away.
      for (const [name, c] of this.#cols) {
        let any = false;
        for (let j = this.#start; j < this.#start + this.#len; j++) {
          if (!Number.isNaN(c[j])) {
            any = true;
            break;
          }
        }
        if (!any) this.#cols.delete(name);
      }
    }
    return i;
  }

  /**
   * Drops the rows at `x` and after (a run's last step, about to come again with more
   * values logged at it). Names are kept; the next append overwrites the dropped rows.
   */
  dropFrom(x: number): void {
    while (this.#len && this.#t[this.#start + this.#len - 1] >= x) this.#len--;
    this.version++;
  }

  /** Keeps the last `windowS` seconds, measured from the newest row. */
  trim(windowS: number): number {
    if (!this.#len || !(windowS > 0)) return 0;
    return this.trimBefore(this.lastTime() - windowS);
  }

  #memo = new Map<string, { version: number; arr: (number | null)[] }>();

  /**
   * Column as a plain array with null for NaN, the form uPlot draws gaps from. Cached
   * until the next change, so charts sharing a column convert it once per frame.
   */
  toChartArray(name: string): (number | null)[] {
    const m = this.#memo.get(name);
    if (m && m.version === this.version) return m.arr;
    const v = this.values(name);
    const out: (number | null)[] = new Array(this.#len);
    if (!v) out.fill(null);
    else
      for (let i = 0; i < v.length; i++) {
        const x = v[i];
        out[i] = Number.isNaN(x) ? null : x;
      }
    if (this.#memo.size > 256) this.#memo.clear();
    this.#memo.set(name, { version: this.version, arr: out });
    return out;
  }

  #timesMemo: { version: number; arr: number[] } | null = null;

  /** The time axis as a plain array (cached like toChartArray). */
  chartTimes(): number[] {
    const m = this.#timesMemo;
    if (m && m.version === this.version) return m.arr;
    const arr = Array.from(this.times());
    this.#timesMemo = { version: this.version, arr };
    return arr;
  }
}

export type AcceleratorKind = "gpu" | "npu" | "tpu";

/** The accelerators named in metric names (`gpu.3.util_pct`, `tpu.0.mem_used_bytes`): GPUs, then NPUs, then TPUs, each by index. */
export function devicesIn(names: Iterable<string>): { kind: AcceleratorKind; index: number }[] {
  const seen = new Map<string, { kind: AcceleratorKind; index: number }>();
  for (const n of names) {
    const m = /^(gpu|npu|tpu)\.(\d+)\./.exec(n);
    if (m && !seen.has(`${m[1]}.${m[2]}`)) seen.set(`${m[1]}.${m[2]}`, { kind: m[1] as AcceleratorKind, index: Number(m[2]) });
  }
  const order = { gpu: 0, npu: 1, tpu: 2 };
  return [...seen.values()].sort((a, b) => order[a.kind] - order[b.kind] || a.index - b.index);
}

export function coreNames(names: Iterable<string>): string[] {
  const cores: [number, string][] = [];
  for (const n of names) {
    const m = /^cpu\.core\.(\d+)\.util_pct$/.exec(n);
    if (m) cores.push([Number(m[1]), n]);
  }
  return cores.sort((a, b) => a[0] - b[0]).map(([, n]) => n);
}
