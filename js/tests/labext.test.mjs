// The sidebar's pure parts (labextension/src/kernel_model.ts, alert_model.ts): the Kernels
// section's order and figures, the history backfill's chunks and retries, and the texts of
// alert notifications (issue 15).
import assert from "node:assert/strict";
import { test } from "node:test";
import { alerts as A, kernels as K } from "./load.mjs";

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;
const kernel = (id, rss, extra = {}) => ({ id, name: "python3", notebook: `${id}.ipynb`, execution_state: "idle", sampled: true, rss_bytes: rss, ...extra });

test("kernels sort by RSS, largest first; unsampled ones last by name", () => {
  const list = [kernel("small", 80 * MiB), kernel("remote", null, { sampled: false, not_sampled: "remote" }), kernel("big", 2 * GiB), kernel("alpha", null, { sampled: false }), kernel("mid", 300 * MiB)];
  assert.deepEqual(K.sortKernels(list).map((k) => k.id), ["big", "mid", "small", "alpha", "remote"]);
  assert.equal(list[0].id, "small"); // a sorted copy
});

test("a kernel is named by its notebook's file name, else by spec and id", () => {
  assert.equal(K.kernelLabel({ id: "k", name: "python3", notebook: "work/deep/train.ipynb" }), "train.ipynb");
  assert.equal(K.kernelLabel({ id: "0b7f3c2a-1111", name: "ir", notebook: null }), "ir 0b7f3c2a");
});

test("RAM against the kernel's limit, else the server's; unknown is NaN", () => {
  assert.equal(K.memFraction(kernel("a", GiB, { mem_limit_bytes: 4 * GiB })), 0.25);
  assert.equal(K.memFraction(kernel("a", GiB), 2 * GiB), 0.5);
  assert.equal(K.memFraction(kernel("a", 9 * GiB, { mem_limit_bytes: 4 * GiB })), 1);
  assert.ok(Number.isNaN(K.memFraction(kernel("a", null), 2 * GiB)));
  assert.ok(Number.isNaN(K.memFraction(kernel("a", GiB))));
});

test("GPU memory: the sum, and each device in the tooltip", () => {
  const g = K.gpuText(kernel("a", GiB, { gpu_mem_bytes: 3 * GiB, gpus: { "gpu.10": { mem_used_bytes: GiB, util_pct: null }, "gpu.2": { mem_used_bytes: 2 * GiB, util_pct: 35, proc_util_pct: 20 } } }));
  assert.equal(g.text, "GPU 3.00 GiB");
  assert.deepEqual(g.title.split("\n").slice(1), ["gpu.2: 2.00 GiB · device 35 % · own 20 %", "gpu.10: 1.00 GiB"]);
  assert.deepEqual(K.gpuText(kernel("a", GiB)), { text: "", title: "" });
});

test("the backfill asks for at most HISTORY_NAMES_PER_REQUEST names at a time", () => {
  const names = Array.from({ length: 600 }, (_, i) => K.rssSeries(`k${i}`));
  const parts = K.chunks(names);
  assert.deepEqual(parts.map((p) => p.length), [256, 256, 88]);
  assert.deepEqual(parts.flat(), names);
  assert.deepEqual(K.chunks([]), []);
});

test("a 404 names the one unknown series, not its close matches", () => {
  const names = ["kernel.a.rss_bytes", "kernel.b.rss_bytes"];
  const detail = "no metric 'kernel.b.rss_bytes' in the history at <data dir>; close matches: kernel.a.rss_bytes";
  assert.deepEqual(K.unknownNames(detail, names), ["kernel.b.rss_bytes"]);
  assert.deepEqual(K.unknownNames("no metric 'cpu.util_pct' in the history", names), []);
  assert.deepEqual(K.unknownNames("reply too large", names), []);
});

test("alert severities map to notification types", () => {
  assert.equal(A.notificationType("critical"), "error");
  assert.equal(A.notificationType("warning"), "warning");
  assert.equal(A.notificationType("whatever"), "warning");
});

test("alert texts lead with the title once", () => {
  assert.equal(A.alertText({ key: "memory:host", title: "OOM risk", message: "memory at 93 %" }), "OOM risk: memory at 93 %");
  assert.equal(A.alertText({ key: "memory:host", title: "OOM risk", message: "OOM risk: memory at 93 %" }), "OOM risk: memory at 93 %");
  assert.equal(A.alertText({ key: "disk:/", title: "", message: "" }), "disk:/");
  assert.equal(A.resolvedText({ key: "memory:host", message: "resolved: memory back to 71 %" }), "resolved: memory back to 71 %");
  assert.equal(A.resolvedText({ key: "memory:host", title: "OOM risk" }), "resolved: OOM risk");
});

test("'Open notebook' only when the alert names exactly one notebook", () => {
  assert.equal(A.alertNotebook({ kernels: [{ id: "a", notebook: "w/train.ipynb" }] }), "w/train.ipynb");
  assert.equal(A.alertNotebook({ kernels: [{ id: "a", notebook: "x.ipynb" }, { id: "b", notebook: "x.ipynb" }] }), "x.ipynb");
  assert.equal(A.alertNotebook({ kernels: [{ id: "a", notebook: "x.ipynb" }, { id: "b", notebook: "y.ipynb" }] }), null);
  assert.equal(A.alertNotebook({ kernels: [{ id: "a", notebook: null }] }), null);
  assert.equal(A.alertNotebook({}), null);
});
