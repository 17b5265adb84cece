// The HTTP API of lightning-kernel, as this page uses it. The token travels in the HttpOnly cookie
// that the printed URL (/view?token=...) set: same-origin requests carry it; the page never sees it.

import type { EventRec } from "./fold";

export interface Run {
  id: string;
  name: string;
  status: string;
  created_at: number;
  updated_at: number;
  last_seq: number;
  /** How many events the run has (last_seq is a stream sequence, global across runs). */
  events: number;
  app_file: string;
  message: string;
}

export interface LogLine {
  seq: number;
  component: string;
  ts: number;
  stream: string;
  line: string;
}

export interface Tab {
  name: string;
  kind: string;
  url: string;
  note: string;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

async function answer<T>(r: Response): Promise<T> {
  const text = await r.text();
  let body: any = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = { error: text };
  }
  if (!r.ok) {
    let message = body?.error ?? `${r.status} ${r.statusText}`;
    if (r.status === 401)
      message = `this page has no valid token: open the URL that \`lightning-kernel run app\` or \`serve\` printed (…/view?token=…). ${message}`;
    throw new ApiError(r.status, message);
  }
  return body as T;
}

export async function get<T>(path: string): Promise<T> {
  return answer<T>(await fetch(path, { credentials: "same-origin", headers: { accept: "application/json" } }));
}

export async function post<T>(path: string, body: unknown = {}): Promise<T> {
  return answer<T>(
    await fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/json", accept: "application/json" },
      body: JSON.stringify(body),
    }),
  );
}

const enc = encodeURIComponent;
export const runUrl = (run: string) => `/api/runs/${enc(run)}`;
export const pageUrl = (run: string) => `/runs/${enc(run)}/view`;

/** All the run's events after `after`, page by page (`onPage` as each comes). */
export async function loadEvents(run: string, after: number, onPage: (events: EventRec[]) => void): Promise<number> {
  for (;;) {
    const page = await get<EventRec[]>(`${runUrl(run)}/events?after=${after}&limit=10000`);
    if (!page.length) return after;
    onPage(page);
    after = page[page.length - 1].seq;
    if (page.length < 10000) return after;
  }
}

/** Listen to a server-sent stream; `on(kind, data)` for each message. Returns a closer. The
 *  browser reconnects by itself with Last-Event-ID; an `end` message closes it for good. */
export function listen(url: string, kinds: string[], on: (kind: string, data: any) => void): () => void {
  const source = new EventSource(url, { withCredentials: true });
  for (const kind of kinds) source.addEventListener(kind, (m) => on(kind, JSON.parse((m as MessageEvent).data)));
  source.addEventListener("end", (m) => {
    on("end", JSON.parse((m as MessageEvent).data));
    source.close();
  });
  return () => source.close();
}
