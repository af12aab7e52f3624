// `npm test`: bundles the pure modules (format.ts, series.ts, and the sidebar's
// labextension/src/kernel_model.ts and alert_model.ts) with esbuild into a temporary folder
// and runs js/tests/*.test.mjs with node's test runner.
import { build } from "esbuild";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const js = join(here, "..");
const outdir = mkdtempSync(join(tmpdir(), "tracklab-js-tests-"));
let status = 1;
try {
  await build({
    entryPoints: [join(js, "format.ts"), join(js, "series.ts"), ...["kernel_model.ts", "alert_model.ts"].map((f) => join(js, "..", "labextension", "src", f))],
    // every module flat in outdir, whichever folder it comes from
    entryNames: "[name]",
    bundle: true,
    format: "esm",
    platform: "neutral",
    target: ["es2022"],
    outdir,
    outExtension: { ".js": ".mjs" },
    logLevel: "warning",
  });
  const files = readdirSync(here)
    .filter((f) => f.endsWith(".test.mjs"))
    .sort()
    .map((f) => join(here, f));
  const r = spawnSync(process.execPath, ["--test", "--test-reporter=spec", ...files], {
    stdio: "inherit",
    env: { ...process.env, TRACKLAB_TEST_BUILD: outdir },
  });
  status = r.status ?? 1;
} finally {
  rmSync(outdir, { recursive: true, force: true });
}
process.exit(status);
