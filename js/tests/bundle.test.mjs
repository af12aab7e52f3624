// The built bundles (npm run build) ship in the wheel: check they are there, within budget,
// self-contained (no CDN or bare imports), anywidget modules, and not stale. widget.js is
// tracklab.widget(); cluster.js is tracklab.widget(cluster=True).
import assert from "node:assert/strict";
import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";
import { BUDGET } from "../build.mjs";

const staticDir = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "tracklab_jupyter", "static");
const js = join(staticDir, "widget.js");
const css = join(staticDir, "widget.css");
const clusterJs = join(staticDir, "cluster.js");
const clusterCss = join(staticDir, "cluster.css");

test("widget.js and widget.css are built", () => {
  assert.ok(existsSync(js), `${js} missing: run npm run build --prefix js`);
  assert.ok(existsSync(css), `${css} missing: run npm run build --prefix js`);
});

test("bundle is within its budget (build.mjs: 88 KB minified)", () => {
  const size = statSync(js).size;
  assert.ok(size <= BUDGET, `widget.js is ${size} bytes, over ${BUDGET}`);
});

test("bundle is self-contained", () => {
  const src = readFileSync(js, "utf8");
  assert.doesNotMatch(src, /\bimport\s*[\w{},*\s]*from\s*["']/, "no static imports left");
  assert.doesNotMatch(src, /\bimport\s*\(\s*["']http/, "no dynamic imports from the network");
  assert.doesNotMatch(src, /https?:\/\/(cdn|unpkg|esm\.sh)/);
  const style = readFileSync(css, "utf8");
  assert.match(style, /\.uplot/, "uPlot's CSS is bundled");
  assert.match(style, /\.tl-root/, "the widget's CSS is bundled");
});

test("default export is an anywidget module with render()", async () => {
  const mod = await import(pathToFileURL(js).href);
  assert.equal(typeof mod.default?.render, "function");
});

test("the bundle in the tree matches its sources (run `npm run build` after editing js/)", async () => {
  const { build } = await import("esbuild");
  const { options } = await import("../build.mjs");
  const r = await build({ ...options, write: false });
  for (const f of r.outputFiles) {
    const name = f.path.endsWith(".css") ? css : js;
    assert.ok(Buffer.from(f.contents).equals(readFileSync(name)), `${name} is stale: run npm run build --prefix js`);
  }
});

test("cluster.js and cluster.css are built, within 15 KB, self-contained and without uPlot", () => {
  assert.ok(existsSync(clusterJs), `${clusterJs} missing: run npm run build --prefix js`);
  assert.ok(existsSync(clusterCss), `${clusterCss} missing: run npm run build --prefix js`);
  const size = statSync(clusterJs).size;
  assert.ok(size <= 15_000, `cluster.js is ${size} bytes`);
  const src = readFileSync(clusterJs, "utf8");
  assert.doesNotMatch(src, /\bimport\s*[\w{},*\s]*from\s*["']/, "no static imports left");
  assert.doesNotMatch(src, /https?:\/\/(cdn|unpkg|esm\.sh)/);
  assert.doesNotMatch(src, /uPlot|uplot/, "no chart library in the cluster view");
  assert.match(readFileSync(clusterCss, "utf8"), /\.tlc-root/);
});

test("cluster.js's default export is an anywidget module with render()", async () => {
  const mod = await import(pathToFileURL(clusterJs).href);
  assert.equal(typeof mod.default?.render, "function");
});

test("cluster.js in the tree matches its sources (run `npm run build` after editing js/)", async () => {
  const { build } = await import("esbuild");
  const { clusterOptions } = await import("../build.mjs");
  const r = await build({ ...clusterOptions, write: false });
  assert.equal(r.outputFiles.length, 2);
  for (const f of r.outputFiles) {
    const name = f.path.endsWith(".css") ? clusterCss : clusterJs;
    assert.ok(Buffer.from(f.contents).equals(readFileSync(name)), `${name} is stale: run npm run build --prefix js`);
  }
});
