// js/a11y.ts: the text alternative of a chart names what it shows and its current values.
// a11y.ts is pure (types from charts.ts only): bundled here on its own.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, test } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";
import { build } from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const out = mkdtempSync(join(tmpdir(), "tracklab-a11y-"));
after(() => rmSync(out, { recursive: true, force: true }));
await build({ entryPoints: [join(here, "..", "a11y.ts")], bundle: true, format: "esm", platform: "neutral", outfile: join(out, "a11y.mjs"), logLevel: "warning" });
const A = await import(pathToFileURL(join(out, "a11y.mjs")).href);

const GiB = 1024 ** 3;

test("the window in words", () => {
  assert.equal(A.windowText(300), "last 5 minutes");
  assert.equal(A.windowText(60), "last 60 seconds");
  assert.equal(A.windowText(45), "last 45 seconds");
  assert.equal(A.windowText(7200), "last 2 hours");
  assert.equal(A.windowText(3600), "last 60 minutes");
});

test("a utilisation chart: now and the maximum of the visible window", () => {
  const spec = { unit: "pct", series: [{ name: "cpu.util_pct", label: "all cores" }] };
  // the point before x0 (99 %) is outside the window; null is a gap
  const data = [[90, 100, 110, 120, 130], [99, 20, 55.5, null, 23]];
  assert.equal(A.chartText("CPU", spec, data, 100, 400), "CPU utilisation, last 5 minutes: now 23 %, max 56 %");
  assert.equal(A.chartText("GPU 0", { ...spec, title: "utilisation" }, [[], []], 100, 400), "GPU 0 utilisation, last 5 minutes: no data");
});

test("two series: each named; a limit by its value only", () => {
  const spec = {
    unit: "bytes",
    title: "memory",
    series: [
      { name: "gpu.0.mem_used_bytes", label: "used" },
      { name: "gpu.0.mem_total_bytes", label: "total", dash: true },
    ],
  };
  const data = [[1, 2], [2 * GiB, 1 * GiB], [140 * GiB, 140 * GiB]];
  assert.equal(A.chartText("GPU 0", spec, data, 0, 120), "GPU 0 memory, last 2 minutes: used now 1.00 GiB, max 2.00 GiB; total 140 GiB");
});
