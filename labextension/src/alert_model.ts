// Pure parts of TrackLab's alert notifications (alerts.ts): the alert event data of
// issue 15's contract (api/alerts `active`, WS `alert` frames) and the texts shown. No DOM:
// unit-tested under plain node (js/tests/labext.test.mjs).

export type Severity = "warning" | "critical" | string;

/** A kernel an alert names (the largest holders of memory, a dead kernel). */
export interface AlertKernel {
  id: string;
  notebook?: string | null;
  rss_bytes?: number | null;
}

/** The data of an `alert` event (api/alerts `active` entries add `time`). */
export interface AlertData {
  key: string;
  rule: string;
  severity: Severity;
  title: string;
  message?: string;
  subject?: string;
  since: number;
  value?: number | null;
  threshold?: number | null;
  kernels?: AlertKernel[];
  instant?: boolean;
  time?: number;
}

/** A WebSocket `alert` frame's data. */
export interface AlertFrame extends Partial<AlertData> {
  kind: "alert" | "alert_resolved";
  time?: number;
  message?: string;
  resolved?: number;
}

/** Severity → notification type: critical is an error, anything else a warning. */
export function notificationType(severity: Severity): "warning" | "error" {
  return severity === "critical" ? "error" : "warning";
}

/** `OOM risk: memory at 93 % of the limit …` (JupyterLab cuts messages at 140 characters). */
export function alertText(a: Pick<AlertData, "title" | "message" | "key">): string {
  const title = a.title || a.key;
  const msg = a.message || "";
  if (!msg) return title;
  return msg.toLowerCase().startsWith(title.toLowerCase()) ? msg : `${title}: ${msg}`;
}

/** The notebook an alert is about, when it names exactly one (else null). */
export function alertNotebook(a: Pick<AlertData, "kernels">): string | null {
  const books = new Set((a.kernels ?? []).map((k) => k?.notebook).filter((p): p is string => !!p));
  return books.size === 1 ? [...books][0] : null;
}

/** The text a resolved alert's notification turns into. */
export function resolvedText(r: Pick<AlertFrame, "message" | "title" | "key">): string {
  const msg = r.message || "";
  if (/^resolved\b/i.test(msg)) return msg;
  return `resolved: ${msg || r.title || r.key || "alert"}`;
}
