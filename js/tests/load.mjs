// The pure modules, as bundled by tests/run.mjs (`npm test`) into $TRACKLAB_TEST_BUILD.
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const dir = process.env.TRACKLAB_TEST_BUILD;
if (!dir) throw new Error("run the JS tests with `npm test` (js/tests/run.mjs builds what they import)");
export const format = await import(pathToFileURL(join(dir, "format.mjs")).href);
export const series = await import(pathToFileURL(join(dir, "series.mjs")).href);
export const kernels = await import(pathToFileURL(join(dir, "kernel_model.mjs")).href);
export const alerts = await import(pathToFileURL(join(dir, "alert_model.mjs")).href);
