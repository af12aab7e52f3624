// `npm run build`: bundles js/widget.ts (+ uPlot, + CSS) into tracklab_jupyter/static/.
// Fails when the minified bundle exceeds the budget from issue 4/7 (80 KB).
import { build } from "esbuild";
import { statSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
export const outfile = join(here, "..", "tracklab_jupyter", "static", "widget.js");
export const BUDGET = 80_000;

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

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const t0 = performance.now();
  await build(options);
  const ms = Math.round(performance.now() - t0);
  const js = statSync(outfile).size;
  const css = statSync(outfile.replace(/\.js$/, ".css")).size;
  console.log(
    `${relative(process.cwd(), outfile)}: ${js} bytes (${(js / 1024).toFixed(1)} KiB; budget ${BUDGET}) ` +
      `+ widget.css ${css} bytes, in ${ms} ms`,
  );
  if (js > BUDGET) {
    console.error(`widget.js is ${js} bytes, over the ${BUDGET}-byte budget`);
    process.exit(1);
  }
}
