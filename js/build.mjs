// `npm run build`: bundles js/widget.ts (+ uPlot, + CSS) into tracklab_jupyter/static/, and
// js/cluster_widget.ts (tracklab.widget(cluster=True): no uPlot) into static/cluster.js.
// Fails when a minified bundle exceeds its budget (widget.js: 80 KB from issue 4/7, 84 KB
// since one card serves every accelerator vendor and kind, js/accelerator_card.ts; 88 KB
// since issue 20: every card a named group and every chart a labelled image whose text
// names its current values, js/a11y.ts, about 1 KB, and the charts' layout and axes;
// cluster.js: 15 KB).
import { build } from "esbuild";
import { statSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
export const outfile = join(here, "..", "tracklab_jupyter", "static", "widget.js");
export const BUDGET = 88_000;

export const clusterOutfile = join(here, "..", "tracklab_jupyter", "static", "cluster.js");
export const CLUSTER_BUDGET = 15_000;

/** esbuild options of the shipped bundle (tests/bundle.test.mjs rebuilds with them). */
export const options = {
  entryPoints: [join(here, "widget.ts")],
  bundle: true,
  format: "esm",
  minify: true,
  // ES2022 keeps #private members native, so the minifier can shorten their names.
  target: ["es2022"],
  outfile,
  legalComments: "none",
  // "–" and "…" as UTF-8 bytes, not \u escapes (module scripts are always read as UTF-8).
  charset: "utf8",
  logLevel: "warning",
};

/** esbuild options of the cluster view's bundle (same settings, its own entry and file). */
export const clusterOptions = {
  ...options,
  entryPoints: [join(here, "cluster_widget.ts")],
  outfile: clusterOutfile,
};

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  let over = false;
  for (const [opts, budget] of [
    [options, BUDGET],
    [clusterOptions, CLUSTER_BUDGET],
  ]) {
    const t0 = performance.now();
    await build(opts);
    const ms = Math.round(performance.now() - t0);
    const file = opts.outfile;
    const js = statSync(file).size;
    const cssFile = file.replace(/\.js$/, ".css");
    const css = statSync(cssFile).size;
    console.log(
      `${relative(process.cwd(), file)}: ${js} bytes (${(js / 1024).toFixed(1)} KiB; budget ${budget}) ` +
        `+ ${relative(dirname(file), cssFile)} ${css} bytes, in ${ms} ms`,
    );
    if (js > budget) {
      console.error(`${relative(dirname(file), file)} is ${js} bytes, over the ${budget}-byte budget`);
      over = true;
    }
  }
  if (over) process.exit(1);
}
