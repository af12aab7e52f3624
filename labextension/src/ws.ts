// The WebSocket `{base_url}tracklab/ws` as the sidebar and the alert notifier use it (each
// its own socket): opening one with its handlers, closing it so that nothing more reaches
// its owner, reading its frames (envelope {type, data, time, node}; js/PROTOCOL.md), and the
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
