import assert from "node:assert/strict";
import { test } from "node:test";
import { format as F } from "./load.mjs";

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

test("bytes use binary units with about three significant digits", () => {
  assert.equal(F.formatBytes(0), "0 B");
  assert.equal(F.formatBytes(1000), "1000 B");
  assert.equal(F.formatBytes(1023.7), "1.00 KiB"); // not "1024 B"
  assert.equal(F.formatBytes(1536), "1.50 KiB");
  assert.equal(F.formatBytes(644939776), "615 MiB");
  assert.equal(F.formatBytes(13.2e9), "12.3 GiB");
  assert.equal(F.formatBytes(64 * GiB), "64.0 GiB");
  assert.equal(F.formatBytes(143771 * MiB), "140 GiB");
  assert.equal(F.formatBytes(2.5 * 1024 ** 4), "2.50 TiB");
});

test("missing values print a dash, never NaN or 0", () => {
  for (const f of [F.formatBytes, F.formatRate, F.formatPct, F.formatTemp, F.formatWatts, F.formatNumber]) {
    assert.equal(f(NaN), F.MISSING);
    assert.equal(f(null), F.MISSING);
    assert.equal(f(undefined), F.MISSING);
    assert.equal(f(Infinity), F.MISSING);
  }
});

test("used / total pairs share the unit of the total", () => {
  assert.equal(F.formatBytesOf(13.2e9, 64 * GiB), "12.3 / 64.0 GiB");
  assert.equal(F.formatBytesOf(1704853504, 143771 * MiB), "1.6 / 140 GiB");
  assert.equal(F.formatBytesOf(644939776, 143771 * MiB), "0.6 / 140 GiB");
  assert.equal(F.formatBytesOf(120 * GiB, 128 * GiB), "120 / 128 GiB");
  assert.equal(F.formatBytesOf(NaN, 64 * GiB), "– / 64.0 GiB");
  assert.equal(F.formatBytesOf(13.2e9, null), "12.3 GiB");
  assert.equal(F.formatBytesOf(13.2e9, 0), "12.3 GiB");
});

test("rates use decimal units", () => {
  assert.equal(F.formatRate(0), "0 B/s");
  assert.equal(F.formatRate(999), "999 B/s");
  assert.equal(F.formatRate(2.5e6), "2.50 MB/s");
  assert.equal(F.formatRate(12_345_678), "12.3 MB/s");
  assert.equal(F.formatRate(1.5e9), "1.50 GB/s");
  assert.equal(F.formatRate(999_800), "1.00 MB/s");
});

test("percent, temperature, power, plain numbers", () => {
  assert.equal(F.formatPct(0), "0 %");
  assert.equal(F.formatPct(6.34), "6.3 %");
  assert.equal(F.formatPct(97.4), "97 %");
  assert.equal(F.formatPct(100), "100 %");
  assert.equal(F.formatTemp(58.6), "59 °C");
  assert.equal(F.formatWatts(686.4), "686 W");
  assert.equal(F.formatWatts(7.25), "7.3 W");
  assert.equal(F.formatWattsOf(692.02, 700), "692 / 700 W");
  assert.equal(F.formatWattsOf(NaN, 700), "– / 700 W");
  assert.equal(F.formatWattsOf(692.02, null), "692 W");
  assert.equal(F.formatNumber(0.0615234375), "0.06");
  assert.equal(F.formatNumber(123.4), "123");
});

test("the unit comes from the metric name", () => {
  assert.equal(F.unitOf("gpu.0.mem_used_bytes"), "bytes");
  assert.equal(F.unitOf("disk.read_bytes_per_s"), "rate");
  assert.equal(F.unitOf("cpu.core.3.util_pct"), "pct");
  assert.equal(F.unitOf("gpu.1.temp_c"), "temp");
  assert.equal(F.unitOf("gpu.1.power_limit_w"), "watts");
  assert.equal(F.unitOf("cpu.load1"), "number");
  assert.equal(F.formatMetric("net.recv_bytes_per_s", 1234), "1.23 kB/s");
  assert.equal(F.formatMetric("mem.used_bytes", 13.2e9), "12.3 GiB");
});

test("axis ticks share one unit and only the decimals the step needs", () => {
  assert.deepEqual(F.formatTicks("bytes", [0, 0.5 * GiB, GiB, 1.5 * GiB]), ["0", "0.5G", "1.0G", "1.5G"]);
  assert.deepEqual(F.formatTicks("bytes", [0, 32 * GiB, 64 * GiB]), ["0", "32G", "64G"]);
  assert.deepEqual(F.formatTicks("bytes", [0, 256 * MiB, 512 * MiB, 768 * MiB]), ["0", "256M", "512M", "768M"]);
  assert.deepEqual(F.formatTicks("rate", [0, 250e3, 500e3]), ["0", "250K", "500K"]);
  assert.deepEqual(F.formatTicks("rate", [0, 200, 400]), ["0", "200", "400"]);
  assert.deepEqual(F.formatTicks("pct", [0, 50, 100]), ["0", "50%", "100%"]);
  assert.deepEqual(F.formatTicks("temp", [30, 40]), ["30°", "40°"]);
});

test("niceMax rounds an axis top up to a few even steps", () => {
  assert.equal(F.niceMax(147 * GiB, true), 160 * GiB);
  assert.equal(F.niceMax(1.04 * GiB, true), 1.25 * GiB);
  assert.equal(F.niceMax(104), 125);
  assert.equal(F.niceMax(1.08e6), 1.25e6);
  assert.equal(F.niceMax(0), 1);
  assert.equal(F.niceMax(NaN), 1);
  for (const v of [1, 3.3, 77, 999, 1e5 + 1, 7.7e9]) {
    const m = F.niceMax(v);
    assert.ok(m >= v && m <= 1.6 * v + 1e-9, `${v} → ${m}`);
  }
});

test("throttle badge: any reason except idle (0x1), app clocks (0x2), display clocks (0x100)", () => {
  for (const benign of [0, 0x1, 0x2, 0x3, 0x100, 0x103]) assert.equal(F.isThrottled(benign), false, benign.toString(16));
  for (const bad of [0x4, 0x8, 0x20, 0x40, 0x80, 0x104, 0x105, 0x200, 2 ** 33]) assert.equal(F.isThrottled(bad), true, bad.toString(16));
  for (const none of [NaN, null, undefined, -1]) assert.equal(F.isThrottled(none), false);
  assert.deepEqual(F.throttleReasons(4), ["power cap"]);
  assert.deepEqual(F.throttleReasons(0x1 | 0x4 | 0x20), ["power cap", "SW thermal"]);
  assert.deepEqual(F.throttleReasons(0x40), ["HW thermal"]);
  assert.deepEqual(F.throttleReasons(0x200), ["other"]);
  assert.deepEqual(F.throttleReasons(0x1), []);
  // AMD: the backend's folded mask; every bit is a slowdown (0x1 is power here, not idle)
  assert.equal(F.isThrottled(0x1, "amd"), true);
  assert.equal(F.isThrottled(0, "amd"), false);
  assert.deepEqual(F.throttleReasons(0x1, "amd"), ["power limit"]);
  assert.deepEqual(F.throttleReasons(0x4 | 0x8, "amd"), ["temperature", "platform limit"]);
  assert.deepEqual(F.throttleReasons(0x10, "amd"), ["other"]);
});

test("metric globs (the widget's `metrics` trait)", () => {
  assert.equal(F.matchesAny("gpu.0.util_pct", []), true);
  assert.equal(F.matchesAny("gpu.0.util_pct", undefined), true);
  assert.equal(F.matchesAny("gpu.0.util_pct", ["gpu.*"]), true);
  assert.equal(F.matchesAny("gpu.0.util_pct", ["gpu.?.util_pct"]), true);
  assert.equal(F.matchesAny("gpu.10.util_pct", ["gpu.?.util_pct"]), false);
  assert.equal(F.matchesAny("cpu.util_pct", ["gpu.*", "mem.*"]), false);
  assert.equal(F.matchesAny("cpuxutil_pct", ["cpu.util_pct"]), false); // dots are literal
});

test("clock labels", () => {
  const t = new Date(2026, 10, 27, 9, 5, 7).getTime() / 1000;
  assert.equal(F.formatClock(t), "09:05:07");
  assert.equal(F.formatClock(t, true), "09:05");
  assert.equal(F.formatClock(NaN), "");
});

test("a run's duration and its logged values", () => {
  assert.equal(F.formatDuration(42.9), "00:00:42");
  assert.equal(F.formatDuration(2 * 3600 + 5 * 60 + 9), "02:05:09");
  assert.equal(F.formatDuration(3 * 86400 + 4 * 3600 + 5 * 60 + 9), "3d 04:05:09");
  assert.equal(F.formatDuration(-1), F.MISSING);
  assert.equal(F.formatDuration(null), F.MISSING);
  assert.equal(F.formatValue(0.00123456), "0.001235");
  assert.equal(F.formatValue(2.5), "2.5");
  assert.equal(F.formatValue(123456), "123500");
  assert.equal(F.formatValue(-3e-9), "-3e-9");
  assert.equal(F.formatValue(NaN), F.MISSING);
  assert.equal(F.FORMATTERS.value, F.formatValue);
  // the sidebar's runs list: a name's unit first, whole numbers (steps, counts) as they are
  assert.equal(F.formatLogged("loss", 0.00123456), "0.001235");
  assert.equal(F.formatLogged("step", 123456), "123456");
  assert.equal(F.formatLogged("gpu_mem_bytes", 1536), "1.50 KiB");
  assert.equal(F.formatLogged("acc_pct", 97.2), "97 %");
  assert.equal(F.formatLogged("loss", null), F.MISSING);
  assert.equal(F.finite(0) && !F.finite(NaN) && !F.finite("1") && !F.finite(null), true);
});
