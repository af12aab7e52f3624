// The built bundle (npm run build) ships in the wheel: check it is there, within budget,
// self-contained (no CDN or bare imports) and an anywidget module.
import assert from "node:assert/strict";
import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";

const staticDir = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "tracklab_jupyter", "static");
const js = join(staticDir, "widget.js");
const css = join(staticDir, "widget.css");

test("widget.js and widget.css are built", () => {
  assert.ok(existsSync(js), `${js} missing: run npm run build --prefix js`);
  assert.ok(existsSync(css), `${css} missing: run npm run build --prefix js`);
});

test("bundle is at most 80 KB minified", () => {
  const size = statSync(js).size;
  assert.ok(size <= 80_000, `widget.js is ${size} bytes`);
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
