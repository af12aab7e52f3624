// The one base of the sidebar's sections (host, runs, cluster, kernels): the shape they share.
// A section has an element and the API; the panel resumes it when it shows and pauses it
// when it hides. Paused, a section has no timers (pause clears every timer it made through
// `every`/`later`) and drops answers to requests made before (`visit` and `nextLoad`).
// Frames of the panel's one transport (ws.ts) are offered to it through `handleMessage`.

import type { Api } from "./api";

/** A frame of the sidebar's socket (envelope of js/PROTOCOL.md). */
export interface Frame {
  type?: string;
  data?: any;
  node?: string;
  time?: number;
}

export abstract class Section {
  readonly el: HTMLElement;
  protected readonly api: Api;
  /** Shown: timers run, answers are applied. */
  protected active = false;
  /** Bumped by every resume and pause: work begun in an older visit drops its result. */
  protected visit = 0;
  #loadSeq = 0;
  #timers = new Map<string, number>();

  protected constructor(api: Api, el: HTMLElement) {
    this.api = api;
    this.el = el;
  }

  /** The panel is visible. */
  resume(): void {
    this.active = true;
    this.visit++;
    this.onResume();
  }

  /** Hidden: no timers, and answers still in flight are dropped. */
  pause(): void {
    this.active = false;
    this.visit++;
    for (const name of [...this.#timers.keys()]) this.cancel(name);
    this.onPause();
  }

  protected onResume(): void {}

  protected onPause(): void {}

  /** A frame of the panel's socket; true when it was this section's to handle. */
  handleMessage(_msg: Frame): boolean {
    return false;
  }

  /** A new load begins: its token. Loads overlap (a frame and a timer both load). */
  protected nextLoad(): number {
    return ++this.#loadSeq;
  }

  /** No load began after the one with this token: its answer is the one to show. */
  protected isLatest(token: number): boolean {
    return token === this.#loadSeq;
  }

  /** `fn` every `ms` until paused (replaces the timer of that name). */
  protected every(name: string, ms: number, fn: () => void): void {
    this.cancel(name);
    this.#timers.set(name, window.setInterval(fn, ms));
  }

  /** `fn` once after `ms`, unless the timer of that name is pending already (then false). */
  protected later(name: string, ms: number, fn: () => void): boolean {
    if (this.#timers.has(name)) return false;
    this.#timers.set(
      name,
      window.setTimeout(() => {
        this.#timers.delete(name);
        fn();
      }, ms),
    );
    return true;
  }

  /** Whether the timer of that name runs (or is pending). */
  protected pending(name: string): boolean {
    return this.#timers.has(name);
  }

  protected cancel(name: string): void {
    const id = this.#timers.get(name);
    if (id === undefined) return;
    // ids of setTimeout and setInterval share one pool: either clear works for both
    window.clearInterval(id);
    this.#timers.delete(name);
  }
}
