// The WebSocket `{base_url}tracklab/ws` as the sidebar and the alert notifier use it (each
// its own socket): the one Transport class (socket, REST fallback, reconnect backoff) and its
// parts: opening a socket with its handlers, closing it so that nothing more reaches its
// owner, reading its frames (envelope {type, data, time, node}; js/PROTOCOL.md), and the
// delays between reconnects.

export interface SocketHandlers {
  open: (ws: WebSocket) => void;
  /** One frame, parsed: a JSON object (anything else is dropped). */
  message: (ws: WebSocket, msg: any) => void;
  /** The socket closed (or failed: onclose follows onerror). */
  close: (ws: WebSocket) => void;
}

/** A socket on `url` with these handlers; null when the browser refuses to open one. */
export function openSocket(url: string, on: SocketHandlers): WebSocket | null {
  let ws: WebSocket;
  try {
    ws = new WebSocket(url);
  } catch {
    return null;
  }
  ws.onopen = () => on.open(ws);
  ws.onmessage = (ev) => {
    const msg = parseFrame(ev.data);
    if (msg) on.message(ws, msg);
  };
  ws.onclose = () => on.close(ws);
  ws.onerror = () => {
    /* onclose follows */
  };
  return ws;
}

/** Closes `ws` without telling its owner: no message and no close handler runs after this. */
export function closeSocket(ws: WebSocket | null): void {
  if (!ws) return;
  ws.onclose = null;
  ws.onmessage = null;
  ws.close();
}

/** A frame's JSON object; null for anything else. */
export function parseFrame(raw: unknown): any {
  let msg: any;
  try {
    msg = JSON.parse(String(raw));
  } catch {
    return null;
  }
  return msg && typeof msg === "object" ? msg : null;
}

/** Reconnect delays: doubling from `min` to at most `max` (ms), each ±20 % (clients spread out). */
export class Backoff {
  #ms: number;

  constructor(
    readonly min: number,
    readonly max: number,
  ) {
    this.#ms = min;
  }

  /** Connected: the next failure waits `min` again. */
  reset(): void {
    this.#ms = this.min;
  }

  next(): number {
    const d = this.#ms;
    this.#ms = Math.min(d * 2, this.max);
    return d * (0.8 + 0.4 * Math.random());
  }
}

export type TransportMode = "websocket" | "polling" | "stopped";

/** A REST fallback: `run` every `everyMs()` while the socket is down (and at once, unless `later`). */
export interface Poll {
  everyMs: () => number;
  run: () => void;
  later?: boolean;
}

export interface TransportOptions {
  /** The socket's URL (asked at every connect). */
  url: () => string;
  /** Reconnect delays: doubling from the first to at most the second (ms). */
  backoffMs: [number, number];
  /** A socket opened (the first, or one after a failure): subscribe here. */
  onOpen?: (t: Transport) => void;
  /** One frame, parsed (a JSON object). */
  onMessage: (msg: any, t: Transport) => void;
  /** The socket closed or could not open: the fallback polls start right after this. */
  onClose?: () => void;
  /** The mode changed: live on the socket, on the REST fallback, or stopped. */
  onMode?: (mode: TransportMode) => void;
  /** The REST fallback while the socket is down. */
  polls: Poll[];
}

/**
 * The sidebar's one transport: the WebSocket `{base_url}tracklab/ws`, with REST polls while
 * it is down (some proxies break WebSockets) and reconnects spaced by a {@link Backoff}.
 * The panel's sections and the alert notifier each hold one (each its own socket); what
 * goes over it (topics, frames, REST calls) stays theirs.
 */
export class Transport {
  readonly backoff: Backoff;
  #opts: TransportOptions;
  #ws: WebSocket | null = null;
  #open = false;
  #running = false;
  #reconnectTimer = 0;
  #pollTimers: number[] = [];

  constructor(opts: TransportOptions) {
    this.#opts = opts;
    this.backoff = new Backoff(opts.backoffMs[0], opts.backoffMs[1]);
  }

  /** A socket is open: frames come and `send` reaches the server. */
  get connected(): boolean {
    return this.#open;
  }

  /** The REST fallback runs. */
  get polling(): boolean {
    return this.#pollTimers.length > 0;
  }

  /** Connect (no-op while running). */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#connect();
  }

  /** No socket, no polls, no reconnect; nothing reaches the owner after this. */
  stop(): void {
    this.#running = false;
    this.#closeSocket();
    window.clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = 0;
    this.#stopPolls();
    this.#opts.onMode?.("stopped");
  }

  /** Sends one JSON message; false while no socket is open. */
  send(msg: unknown): boolean {
    if (!this.#ws || !this.#open) return false;
    this.#ws.send(JSON.stringify(msg));
    return true;
  }

  /** This server's socket has nothing for the owner: REST polls only, until stop(). */
  pollOnly(): void {
    if (!this.#running) return;
    this.#closeSocket();
    window.clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = 0;
    this.#startPolls();
  }

  /** The polls' intervals changed: running polls restart with them. */
  repoll(): void {
    if (this.polling) this.#startPolls();
  }

  #connect(): void {
    if (!this.#running) return;
    this.#closeSocket();
    this.#ws = openSocket(this.#opts.url(), {
      open: () => {
        this.#open = true;
        this.backoff.reset();
        this.#stopPolls();
        this.#opts.onOpen?.(this);
        this.#opts.onMode?.("websocket");
      },
      message: (_ws, msg) => this.#opts.onMessage(msg, this),
      close: (ws) => {
        if (this.#ws !== ws) return;
        this.#ws = null;
        this.#open = false;
        this.#opts.onClose?.();
        this.#failed();
      },
    });
    if (!this.#ws) this.#failed();
  }

  #closeSocket(): void {
    const ws = this.#ws;
    this.#ws = null;
    this.#open = false;
    closeSocket(ws);
  }

  #failed(): void {
    if (!this.#running) return;
    // the REST polls keep the owner live while the socket is down
    if (!this.polling) this.#startPolls();
    window.clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = window.setTimeout(() => this.#connect(), this.backoff.next());
  }

  #startPolls(): void {
    this.#stopPolls();
    this.#pollTimers = this.#opts.polls.map((p) => window.setInterval(() => this.#running && !this.#open && p.run(), p.everyMs()));
    this.#opts.onMode?.("polling");
    for (const p of this.#opts.polls) if (!p.later) p.run();
  }

  #stopPolls(): void {
    for (const t of this.#pollTimers) window.clearInterval(t);
    this.#pollTimers = [];
  }
}
