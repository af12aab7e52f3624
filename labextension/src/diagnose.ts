// The health line's "Diagnose" button: asks `health?full=1` (the checks of
// `tracklab-jupyter doctor` that apply to this server) and shows each finding, with its
// fix, in a dialog. The server runs the checks off its event loop; they take a second or two.

import { Dialog, showDialog } from "@jupyterlab/apputils";
import { Widget } from "@lumino/widgets";
import { h } from "../../js/charts";
import type { Api } from "./api";

/** One check's result, as `tracklab-jupyter doctor --json` writes it. */
export interface Finding {
  section: string;
  check: string;
  status: "ok" | "warning" | "problem" | "skipped";
  found: string;
  fix: string;
}

export interface DoctorReport {
  status: "ok" | "warning" | "problem";
  counts: Record<string, number>;
  checks: Finding[];
}

/** The mark beside each finding; the status word is written out too (colour is not the only signal). */
const MARKS: Record<Finding["status"], string> = { ok: "✓", warning: "⚠", problem: "✗", skipped: "–" };
const HEADLINES: Record<DoctorReport["status"], string> = {
  ok: "Everything TrackLab needs is in order.",
  warning: "TrackLab works, with warnings.",
  problem: "TrackLab has problems to fix.",
};

/** The report as DOM: a headline, then one list per section. */
export function renderReport(report: DoctorReport): HTMLElement {
  const root = h("div", "tl-diagnosis", { "data-status": report.status });
  const c = report.counts ?? {};
  root.append(
    h("p", "tl-diagnosis-headline", {}, `${HEADLINES[report.status] ?? report.status} ${c.ok ?? 0} ok, ${c.warning ?? 0} warnings, ${c.problem ?? 0} problems.`),
  );
  let list: HTMLElement | null = null;
  let section = "";
  for (const f of report.checks) {
    if (f.section !== section || !list) {
      section = f.section;
      root.append(h("h3", "tl-diagnosis-section", {}, section));
      list = h("ul", "tl-diagnosis-list");
      root.append(list);
    }
    const item = h("li", "tl-finding", { "data-status": f.status, "data-check": f.check });
    const line = h("div", "tl-finding-line");
    line.append(
      h("span", "tl-finding-mark", { "aria-hidden": "true" }, MARKS[f.status] ?? "?"),
      h("span", "tl-finding-status", {}, f.status),
      h("span", "tl-finding-check", {}, `${f.check}:`),
      h("span", "tl-finding-found", {}, f.found),
    );
    item.append(line);
    if (f.fix) {
      const fix = h("div", "tl-finding-fix", {}, "fix: ");
      fix.append(h("code", "", {}, f.fix));
      item.append(fix);
    }
    list.append(item);
  }
  return root;
}

/** Run the checks on the server and show them; a failed request is shown in the dialog too. */
export async function showDiagnosis(api: Api): Promise<void> {
  let body: HTMLElement;
  try {
    const health = await api.get<{ doctor?: DoctorReport }>("health", { full: "1" });
    body = health.doctor ? renderReport(health.doctor) : h("p", "tl-diagnosis-error", {}, "This server's TrackLab does not run the checks (an older version?). Run `tracklab-jupyter doctor` in a terminal.");
  } catch (e) {
    body = h("p", "tl-diagnosis-error", {}, `The checks could not run: ${(e as Error).message}. Run \`tracklab-jupyter doctor\` in a terminal.`);
  }
  await showDialog({ title: "TrackLab diagnosis", body: new Widget({ node: body }), buttons: [Dialog.okButton({ label: "Close" })] });
}

/** The button for the health line. */
export function diagnoseButton(api: Api): HTMLButtonElement {
  const button = h("button", "tl-diagnose", { type: "button", title: "Check accelerators, the data dir, the Jupyter install and the sampler (tracklab-jupyter doctor)" }, "Diagnose");
  button.addEventListener("click", () => {
    button.disabled = true;
    button.textContent = "Diagnosing…";
    void showDiagnosis(api).finally(() => {
      button.disabled = false;
      button.textContent = "Diagnose";
    });
  });
  return button;
}
