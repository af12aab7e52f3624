// REST access to the server extension under `{base_url}tracklab/api/`, through
// ServerConnection so requests carry Jupyter's auth (token header, XSRF cookie header).

import { ServerConnection } from "@jupyterlab/services";

/** A non-2xx answer; `detail` is the JSON body's `detail` (or `error`) when it has one. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly detail: string,
    path: string,
  ) {
    super(`${path}: HTTP ${status}${detail ? ` (${detail})` : ""}`);
  }
}

export type Params = Record<string, string | undefined>;

export class Api {
  readonly settings = ServerConnection.makeSettings();

  url(path: string, params: Params = {}): string {
    const base = this.settings.baseUrl.replace(/\/?$/, "/");
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v != null && v !== "") q.set(k, v);
    const qs = q.toString();
    return `${base}tracklab/api/${path}${qs ? `?${qs}` : ""}`;
  }

  /**
   * ServerConnection appends a cache-busting `?<time>` under its default cache "no-store",
   * which the tracklab endpoints (strict about their parameters) refuse with 400:
   * "no-cache" revalidates every request instead. Every request goes through here.
   */
  request(path: string, init: RequestInit = {}, params: Params = {}): Promise<Response> {
    return ServerConnection.makeRequest(this.url(path, params), { cache: "no-cache", ...init }, this.settings);
  }

  async get<T = any>(path: string, params: Params = {}): Promise<T> {
    const r = await this.request(path, { method: "GET" }, params);
    if (!r.ok) throw await apiError(path, r);
    return (await r.json()) as T;
  }

  async delete(path: string): Promise<void> {
    const r = await this.request(path, { method: "DELETE" });
    if (!r.ok) throw await apiError(path, r);
  }

  wsUrl(): string {
    const base = this.settings.wsUrl.replace(/\/?$/, "/");
    const token = this.settings.token;
    return `${base}tracklab/ws${token ? `?token=${encodeURIComponent(token)}` : ""}`;
  }
}

async function apiError(path: string, r: Response): Promise<ApiError> {
  let detail = "";
  try {
    const body = await r.json();
    detail = String(body?.detail || body?.error || "");
  } catch {
    /* not JSON */
  }
  return new ApiError(r.status, detail, path);
}
