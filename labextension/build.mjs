// `npm run build`, step 1: bundle src/index.ts with the shared chart module (../js/charts.ts)
// and uPlot into lib/index.js (+ lib/index.css). JupyterLab packages stay external: the
// second step (`jupyter-builder build .`) turns lib/ into a prebuilt (federated) extension
// under ../tracklab_jupyter/labextension, sharing them with JupyterLab.
import { build } from "esbuild";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
await build({
  entryPoints: [join(here, "src", "index.ts")],
  bundle: true,
  format: "esm",
  target: ["es2022"],
  outfile: join(here, "lib", "index.js"),
  external: ["@jupyterlab/*", "@lumino/*"],
  nodePaths: [join(here, "node_modules")],
  legalComments: "none",
  logLevel: "warning",
});
