import assert from "node:assert/strict";
import { test } from "node:test";
import { series as S } from "./load.mjs";

/** A protocol `data` message: times + series-major values, as DataViews like anywidget gives. */
function message(names, times, cols, { offset = 0 } = {}) {
  const n = times.length;
  const t = new Float64Array(times);
  const v = new Float64Array(names.length * n);
  names.forEach((_, s) => cols[s].forEach((x, i) => (v[s * n + i] = x ?? NaN)));
  const view = (a) => {
    if (!offset) return new DataView(a.buffer);
    const raw = new Uint8Array(a.byteLength + offset);
    raw.set(new Uint8Array(a.buffer), offset);
    return new DataView(raw.buffer, offset, a.byteLength);
  };
  return [{ type: "data", names, n, backfill: false }, [view(t), view(v)]];
}

const decode = (...a) => S.decodeData(...message(...a));

test("decodes series-major Float64 buffers, NaN included", () => {
  const b = decode(["a", "b"], [10, 11, 12], [[1, 2, 3], [4, null, 6]]);
  assert.deepEqual(b.names, ["a", "b"]);
  assert.equal(b.n, 3);
  assert.deepEqual([...b.times], [10, 11, 12]);
  assert.deepEqual([...b.values.subarray(0, 3)], [1, 2, 3]);
  assert.equal(b.values[3], 4);
  assert.ok(Number.isNaN(b.values[4]));
  assert.equal(b.values[5], 6);
});

test("unaligned buffers are copied, other buffer types accepted", () => {
  const b = decode(["a"], [1, 2], [[5, 6]], { offset: 4 });
  assert.deepEqual([...b.times], [1, 2]);
  assert.deepEqual([...b.values], [5, 6]);
  const f = new Float64Array([1, 2]);
  assert.deepEqual([...S.toFloat64(f.buffer)], [1, 2]);
  assert.deepEqual([...S.toFloat64(new Uint8Array(f.buffer))], [1, 2]);
  assert.equal(S.toFloat64(f), f);
  assert.throws(() => S.toFloat64(new Uint8Array(12)), RangeError);
});

test("malformed data messages throw", () => {
  const [msg, bufs] = message(["a", "b"], [1, 2], [[1, 2], [3, 4]]);
  assert.throws(() => S.decodeData({ ...msg, n: 3 }, bufs), RangeError);
  assert.throws(() => S.decodeData({ ...msg, names: ["a"] }, bufs), RangeError);
  assert.throws(() => S.decodeData(msg, bufs.slice(0, 1)), TypeError);
  assert.throws(() => S.decodeData(msg, undefined), TypeError);
  assert.throws(() => S.decodeData({ ...msg, names: [1, 2] }, bufs), TypeError);
  // n may be left out: the number of times counts.
  assert.equal(S.decodeData({ names: msg.names }, bufs).n, 2);
});

test("append keeps one aligned column per name; absent rows are NaN", () => {
  const st = new S.SeriesStore();
  assert.equal(st.append(decode(["a", "b"], [1, 2], [[10, 20], [1, 2]])), 2);
  // "b" is missing from this batch, "c" is new.
  assert.equal(st.append(decode(["a", "c"], [3, 4], [[30, 40], [300, 400]])), 2);
  assert.equal(st.length, 4);
  assert.deepEqual([...st.times()], [1, 2, 3, 4]);
  assert.deepEqual([...st.values("a")], [10, 20, 30, 40]);
  assert.deepEqual(st.toChartArray("b"), [1, 2, null, null]);
  assert.deepEqual(st.toChartArray("c"), [null, null, 300, 400]);
  assert.deepEqual(st.toChartArray("zzz"), [null, null, null, null]);
  assert.equal(st.values("zzz"), undefined);
  assert.deepEqual(st.names(), ["a", "b", "c"]);
  assert.equal(st.firstTime(), 1);
  assert.equal(st.lastTime(), 4);
});

test("rows not newer than the last stored time are skipped (live batch overlapping the backfill)", () => {
  const st = new S.SeriesStore();
  st.append(decode(["a"], [1, 2, 3], [[1, 2, 3]]));
  assert.equal(st.append(decode(["a"], [2, 3, 4, 5], [[9, 9, 4, 5]])), 2);
  assert.deepEqual([...st.values("a")], [1, 2, 3, 4, 5]);
  // Out-of-order rows inside one batch are dropped too.
  assert.equal(st.append(decode(["a"], [7, 6, 8], [[7, 6, 8]])), 2);
  assert.deepEqual([...st.times()], [1, 2, 3, 4, 5, 7, 8]);
  assert.deepEqual([...st.values("a")], [1, 2, 3, 4, 5, 7, 8]);
  assert.equal(st.append(decode(["a"], [1], [[1]])), 0);
});

test("trim keeps the window and forgets names that only have NaN left", () => {
  const st = new S.SeriesStore();
  st.append(decode(["a", "gpu.1.util_pct"], [0, 1, 2], [[0, 1, 2], [5, 5, 5]]));
  st.append(decode(["a"], [3, 4, 5], [[3, 4, 5]]));
  assert.equal(st.trim(2), 3);
  assert.deepEqual([...st.times()], [3, 4, 5]);
  assert.deepEqual([...st.values("a")], [3, 4, 5]);
  assert.equal(st.has("gpu.1.util_pct"), false, "a lost GPU's column goes once its data is out of the window");
  assert.equal(st.trim(0), 0);
  assert.equal(st.trim(NaN), 0);
});

test("latest(): newest non-NaN value, optionally no older than maxAge", () => {
  const st = new S.SeriesStore();
  st.append(decode(["a", "b"], [1, 2, 3, 10], [[1, 2, null, null], [1, 2, 3, 4]]));
  assert.equal(st.latest("a"), 2);
  assert.ok(Number.isNaN(st.latest("a", 5)));
  assert.equal(st.latest("b", 5), 4);
  assert.ok(Number.isNaN(st.latest("nope")));
  assert.ok(Number.isNaN(new S.SeriesStore().latest("a")));
});

test("a long stream in small batches stays correct and bounded", () => {
  const st = new S.SeriesStore();
  let t = 0;
  for (let k = 0; k < 2000; k++) {
    const times = [];
    const a = [];
    for (let j = 0; j < 7; j++, t++) {
      times.push(t);
      a.push(t * 2);
    }
    // "b" only in every other batch.
    const names = k % 2 ? ["a", "b"] : ["a"];
    const cols = k % 2 ? [a, a.map((x) => -x)] : [a];
    st.append(decode(names, times, cols));
    st.trim(99);
  }
  assert.equal(st.length, 100);
  const ts = st.times();
  const va = st.values("a");
  const vb = st.values("b");
  for (let i = 0; i < ts.length; i++) {
    assert.equal(ts[i], t - 100 + i);
    assert.equal(va[i], ts[i] * 2);
    const batch = Math.floor(ts[i] / 7);
    if (batch % 2) assert.equal(vb[i], -ts[i] * 2);
    else assert.ok(Number.isNaN(vb[i]));
  }
  // The buffers reuse their space instead of growing with the stream.
  assert.ok(st.capacity <= 256, `capacity ${st.capacity}`);
});

test("chart arrays are cached until the next change", () => {
  const st = new S.SeriesStore();
  st.append(decode(["a"], [1, 2], [[1, null]]));
  const a = st.toChartArray("a");
  assert.deepEqual(a, [1, null]);
  assert.equal(st.toChartArray("a"), a);
  assert.deepEqual(st.chartTimes(), [1, 2]);
  assert.equal(st.chartTimes(), st.chartTimes());
  st.append(decode(["a"], [3], [[3]]));
  assert.deepEqual(st.toChartArray("a"), [1, null, 3]);
  assert.deepEqual(st.chartTimes(), [1, 2, 3]);
  st.trim(1);
  assert.deepEqual(st.toChartArray("a"), [null, 3]);
  assert.deepEqual(st.chartTimes(), [2, 3]);
});

test("clear drops everything and bumps the version", () => {
  const st = new S.SeriesStore();
  st.append(decode(["a"], [1], [[1]]));
  const v = st.version;
  st.clear();
  assert.equal(st.length, 0);
  assert.deepEqual(st.names(), []);
  assert.ok(st.version > v);
  assert.ok(Number.isNaN(st.lastTime()));
  assert.equal(st.append(decode(["a"], [0], [[1]])), 1, "after clear, earlier times are accepted again");
});

test("accelerators and per-core names from metric names", () => {
  const names = ["cpu.core.10.util_pct", "cpu.core.2.util_pct", "cpu.util_pct", "tpu.1.util_pct", "gpu.3.util_pct", "gpu.0.temp_c", "npu.0.health", "gpu.3.temp_c", "cpu.core.x.util_pct", "gpux.1.a"];
  assert.deepEqual(S.devicesIn(names), [
    { kind: "gpu", index: 0 },
    { kind: "gpu", index: 3 },
    { kind: "npu", index: 0 },
    { kind: "tpu", index: 1 },
  ]);
  assert.deepEqual(S.coreNames(names), ["cpu.core.2.util_pct", "cpu.core.10.util_pct"]);
});

test("dropFrom: a run's last step sent again with more values replaces the old row", () => {
  const s = new S.SeriesStore();
  // x = step: loss at steps 0..2, then step 2 again with acc logged at it too.
  s.append(decode(["loss"], [0, 1, 2], [[1.0, 0.8, 0.6]]));
  s.dropFrom(2);
  assert.deepEqual([...s.times()], [0, 1]);
  s.append(decode(["loss", "acc"], [2, 3], [[0.6, 0.5], [0.9, null]]));
  assert.deepEqual([...s.times()], [0, 1, 2, 3]);
  assert.deepEqual(s.toChartArray("loss"), [1.0, 0.8, 0.6, 0.5]);
  assert.deepEqual(s.toChartArray("acc"), [null, null, 0.9, null]);
  s.dropFrom(Infinity); // no `from`: nothing dropped
  assert.equal(s.length, 4);
  s.dropFrom(-1);
  assert.equal(s.length, 0);
  s.append(decode(["loss"], [5], [[0.1]]));
  assert.deepEqual(s.toChartArray("loss"), [0.1]);
  assert.deepEqual(s.toChartArray("acc"), [null]);
});
