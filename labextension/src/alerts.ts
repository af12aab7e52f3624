// TrackLab alerts as JupyterLab notifications (the Lab 4 notification API). Runs for the
// life of the page, sidebar open or not: its own small WebSocket carries only the `alerts`
// topic (the sidebar's socket lives only while the panel is visible, and carries a sample
// every interval). An `alert` frame (kind "alert") emits a notification that stays until
// dismissed, with "Open notebook" when the alert names one kernel's notebook; its
// "alert_resolved" turns that same notification into a short "resolved: …" success.
// Instant alerts (a kernel's death, new ECC errors) are emitted once and never updated.
// On start and after every reconnect `GET api/alerts` brings the active alerts: each key
// is shown once however often the socket reconnects, and one that ended meanwhile is
// shown resolved. While the socket is down, `api/alerts` is re-read every 30 s instead.
// Contract: the alert event of issue 15 (event data, api/alerts, WS `alert` frames).

import { Notification } from "@jupyterlab/apputils";

import { alertNotebook, alertText, notificationType, resolvedText, type AlertData, type AlertFrame, type Severity } from "./alert_model";
import { finite } from "../../js/format";
import { ApiError, type Api } from "./api";
import { Transport } from "./ws";

interface AlertsBody {
  active?: AlertData[];
  rules?: Record<string, { enabled?: boolean }>;
}

/** The client-side settings (plugin.json): the server's own switch is c.TrackLab.alerts. */
export interface AlertSettings {
  enabled: boolean;
  muted: string[];
}

const BACKOFF_MIN_MS = 1000;
const BACKOFF_MAX_MS = 60_000;
/** Re-read of `api/alerts` while the socket is down. */
export const ALERTS_POLL_MS = 30_000;
/** How long a "resolved" notification stays (ms). */
export const RESOLVED_CLOSE_MS = 5000;
/** Instant alerts remembered (so a reconnect does not show them again). */
const MAX_INSTANT_SEEN = 500;
/** The topics a new connection gets by default that this socket does not want. */
const UNWANTED_TOPICS = ["system_metrics", "hardware_update"];


// -- the notifier -----------------------------------------------------------------------

interface Shown {
  id: string;
  since: number;
  severity: Severity;
  text: string;
  title: string;
  /** When this page learnt of it (ms): a snapshot asked for before that may not list it. */
  seenAt: number;
}

export interface AlertNotifierOptions {
  /** Opens a notebook (the "Open notebook" action). */
  open: (path: string) => void;
}

export class AlertNotifier {
  #api: Api;
  #opts: AlertNotifierOptions;
  #settings: AlertSettings = { enabled: true, muted: [] };
  #running = false;
  /** Its own socket (only the `alerts` topic); `api/alerts` every ALERTS_POLL_MS while down. */
  #link: Transport;
  #loadSeq = 0;
  /** Active alerts with a notification, by key. */
  #shown = new Map<string, Shown>();
  /** `key@since` of instant alerts already emitted, oldest first. */
  #instant = new Set<string>();

  constructor(api: Api, opts: AlertNotifierOptions) {
    this.#api = api;
    this.#opts = opts;
    this.#link = new Transport({
      url: () => this.#api.wsUrl(),
      backoffMs: [BACKOFF_MIN_MS, BACKOFF_MAX_MS],
      onOpen: (t) => t.send({ type: "unsubscribe", topics: UNWANTED_TOPICS }),
      onMessage: (msg, t) => this.#onMessage(t, msg),
      // alerts keep coming by REST while the socket is down (a proxy that breaks it)
      polls: [{ everyMs: () => ALERTS_POLL_MS, run: () => void this.load() }],
    });
  }

  /** Apply settings: on starts listening, off stops and clears TrackLab's notifications. */
  configure(settings: AlertSettings): void {
    const was = this.#settings;
    this.#settings = { enabled: settings.enabled, muted: [...settings.muted] };
    for (const [key, s] of [...this.#shown]) {
      if (!settings.enabled || this.#muted(key)) {
        Notification.dismiss(s.id);
        this.#shown.delete(key);
      }
    }
    if (settings.enabled && !this.#running) this.start();
    else if (!settings.enabled && this.#running) this.stop();
    else if (this.#running && was.muted.join() !== settings.muted.join()) void this.load(); // unmuted ones show
  }

  start(): void {
    if (this.#running || !this.#settings.enabled) return;
    this.#running = true;
    this.#link.start();
  }

  stop(): void {
    this.#running = false;
    this.#link.stop();
    this.#loadSeq++;
  }

  dispose(): void {
    this.stop();
  }

  // -- REST -------------------------------------------------------------------------------
  /**
   * `GET api/alerts`: emits the active alerts not shown yet, and resolves the shown ones
   * the answer no longer lists (they ended while the socket was down).
   */
  async load(): Promise<void> {
    if (!this.#running) return;
    const seq = ++this.#loadSeq;
    const asked = Date.now();
    let body: AlertsBody;
    try {
      body = await this.#api.get<AlertsBody>("alerts");
    } catch (e) {
      if (seq !== this.#loadSeq) return;
      if (e instanceof ApiError && e.status === 404) this.#giveUp();
      else console.warn("tracklab: alerts not loaded", e);
      return;
    }
    if (seq !== this.#loadSeq || !this.#running) return;
    const active = (body.active ?? []).filter((a) => a && typeof a.key === "string");
    const keys = new Set(active.map((a) => a.key));
    for (const [key, s] of [...this.#shown]) {
      // learnt of after the request left: the answer may predate it
      if (!keys.has(key) && s.seenAt < asked) this.#resolve({ kind: "alert_resolved", key, title: s.title });
    }
    for (const a of active) this.#show(a);
  }

  /** A server without alerts: stop trying until the page is reloaded. */
  #giveUp(): void {
    this.#link.stop(); // running stays set: configure() does not start it again
  }

  // -- the socket -------------------------------------------------------------------------
  /** One frame of this socket (a JSON object). */
  #onMessage(link: Transport, msg: any): void {
    if (msg.type === "hello") {
      const topics: unknown = msg.data?.topics;
      if (Array.isArray(topics) && !topics.includes("alerts")) {
        // no alert frames on this server's socket: REST only (a 404 there stops it all)
        link.pollOnly();
        return;
      }
      // "alerts" is a default topic; asked for all the same (a client that unsubscribed
      // it before reconnecting gets a fresh session anyway), then the active ones by REST
      link.send({ type: "subscribe", topics: ["alerts"] });
      void this.load();
    } else if (msg.type === "alert") {
      this.handleFrame(msg.data);
    } else if (msg.type === "error") {
      console.warn("tracklab alerts ws:", msg.data);
    }
  }

  /** One `alert` frame's data. */
  handleFrame(d: AlertFrame | null | undefined): void {
    if (!d || typeof d.key !== "string" || !this.#running) return;
    if (d.kind === "alert") this.#show(d as AlertData);
    else if (d.kind === "alert_resolved") this.#resolve(d);
  }

  // -- notifications ----------------------------------------------------------------------
  #muted(key: string, rule?: string): boolean {
    const r = rule || key.split(":")[0];
    return this.#settings.muted.includes(r);
  }

  #options(a: AlertData, autoClose: number | false): Notification.IOptions<any> {
    const path = alertNotebook(a);
    const actions: Notification.IAction[] = path
      ? [{ label: "Open notebook", caption: `Open ${path}`, callback: () => this.#opts.open(path) }]
      : [];
    return { autoClose, actions, data: { tracklab: a.key } };
  }

  #show(a: AlertData): void {
    if (this.#muted(a.key, a.rule)) return;
    const since = finite(a.since) ? a.since : Number(a.time) || 0;
    const text = alertText(a);
    const type = notificationType(a.severity);
    if (a.instant) {
      // no resolve follows: shown once, left for the user to dismiss
      const sig = `${a.key}@${since}`;
      if (this.#instant.has(sig)) return;
      this.#instant.add(sig);
      if (this.#instant.size > MAX_INSTANT_SEEN) this.#instant.delete(this.#instant.values().next().value as string);
      Notification.emit(text, type, this.#options(a, false));
      return;
    }
    const cur = this.#shown.get(a.key);
    if (cur && cur.since === since) {
      // the same episode again (a reconnect's snapshot): only a changed text is news
      if ((cur.text !== text || cur.severity !== a.severity) && Notification.manager.has(cur.id)) {
        Notification.update({ id: cur.id, message: text, type, ...this.#options(a, false) });
        cur.text = text;
        cur.severity = a.severity;
      }
      return;
    }
    let id = cur?.id ?? "";
    if (!(id && Notification.update({ id, message: text, type, ...this.#options(a, false) }))) {
      id = Notification.emit(text, type, this.#options(a, false));
    }
    this.#shown.set(a.key, { id, since, severity: a.severity, text, title: a.title || a.key, seenAt: Date.now() });
  }

  #resolve(r: Pick<AlertFrame, "key" | "message" | "title" | "kind">): void {
    const key = r.key ?? "";
    const cur = this.#shown.get(key);
    if (!cur) return; // never shown here (muted, or resolved before this page knew of it)
    this.#shown.delete(key);
    const message = resolvedText({ ...r, title: r.title || cur.title });
    const update = { message, type: "success" as const, autoClose: RESOLVED_CLOSE_MS, actions: [], data: { tracklab: key } };
    // dismissed meanwhile: a short note that it is over all the same
    if (!Notification.update({ id: cur.id, ...update })) Notification.emit(message, "success", update);
  }
}
