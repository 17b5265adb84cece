// The run's state as a fold of its events, in the browser: what the page shows at any event.
//
// It mirrors kernel/_projection.py for what the page shows (components' vars, Works' status,
// workers, endpoints, the run's status), with the same fencing of superseded worker attempts, so
// that dragging the scrubber needs no request. It never mutates a state it handed out: the parts an
// event touches are copied. A Timeline keeps a checkpoint every CHECKPOINT_EVERY events, so the
// state at any event is at most that many applications away, also in a run of 100k events.

export interface EventRec {
  seq: number;
  id: string;
  type: string;
  version: number;
  ts: number;
  source: string;
  body: any;
  input_seq?: number;
}

export type Vars = Record<string, unknown>;

export interface Comp {
  kind: string; // "flow" | "work" | "structure"
  vars: Vars;
  spec: Record<string, any>;
}

export interface WorkView {
  stage: string;
  since: number;
  reason: string;
  message: string;
  lastIndex: number;
  attempt: number;
  fenced: number;
  worker: { attempt: number; executor: string; ref: Record<string, unknown>; state: string; cause?: string } | null;
  endpoint: Record<string, unknown> | null;
}

export interface RunView {
  id: string;
  name: string;
  status: string;
  message: string;
  seq: number;
  createdAt: number;
  stopRequested: boolean;
}

export interface State {
  run: RunView;
  components: Record<string, Comp>;
  works: Record<string, WorkView>;
}

export const RUN_ENDED = new Set(["succeeded", "failed", "stopped"]);
const FINISHED = new Set(["succeeded", "failed", "stopped"]);

function newWork(): WorkView {
  return {
    stage: "not_started",
    since: 0,
    reason: "",
    message: "",
    lastIndex: 0,
    attempt: 0,
    fenced: 0,
    worker: null,
    endpoint: null,
  };
}

function stale(w: WorkView, body: any): boolean {
  const attempt = body?.attempt ?? 0;
  if (typeof attempt !== "number" || attempt <= 0) return false;
  return attempt < w.attempt || attempt <= w.fenced;
}

function withRun(s: State, changes: Partial<RunView>): State {
  return { ...s, run: { ...s.run, ...changes } };
}

function withWork(s: State, name: string, w: WorkView): State {
  return { ...s, works: { ...s.works, [name]: w } };
}

function setVars(s: State, changes: Record<string, Vars>): State {
  const comps = { ...s.components };
  for (const [name, attrs] of Object.entries(changes ?? {})) {
    const c = comps[name];
    if (!c) continue;
    comps[name] = { ...c, vars: { ...c.vars, ...attrs } };
  }
  return { ...s, components: comps };
}

/** Call ids to their index, filled as requests are folded (an id's index never changes). */
export type CallIndex = Map<string, number>;

/** The state after `e`; `null` before the run's `run.created`. Unknown kinds change only `seq`. */
export function apply(s: State | null, e: EventRec, calls: CallIndex): State | null {
  const b = e.body ?? {};
  if (s === null) {
    if (e.type !== "run.created") return null;
    const components: Record<string, Comp> = {};
    const works: Record<string, WorkView> = {};
    for (const [name, c] of Object.entries<any>(b.components ?? {})) {
      components[name] = { kind: c.kind, vars: c.vars ?? {}, spec: c.spec ?? {} };
      if (c.kind === "work") works[name] = newWork();
    }
    return {
      run: {
        id: "",
        name: b.name ?? "",
        status: "running",
        message: "",
        seq: e.seq,
        createdAt: e.ts,
        stopRequested: false,
      },
      components,
      works,
    };
  }
  let n: State = s;
  try {
    n = step(s, e, b, calls);
  } catch {
    n = s; // a body that does not fit its type changes nothing (as the kernel's fold)
  }
  return { ...n, run: { ...n.run, seq: e.seq } };
}

function step(s: State, e: EventRec, b: any, calls: CallIndex): State {
  const w: WorkView | undefined = b.work !== undefined ? s.works[b.work] : undefined;
  switch (e.type) {
    case "run.ended":
      return withRun(s, { status: b.status, message: b.message ?? "" });
    case "run.interrupted":
      return RUN_ENDED.has(s.run.status) ? s : withRun(s, { status: "interrupted", message: b.reason ?? "" });
    case "run.resumed":
      return withRun(s, { status: "running", message: "", stopRequested: false });
    case "run.stop_requested":
      return withRun(s, { stopRequested: true });
    case "flow.state_changed":
      return setVars(s, b.changes);
    case "work.state_changed":
      if (w && stale(w, b)) return s;
      return setVars(s, { [b.work]: b.changes });
    case "work.run_requested": {
      if (!w) return s;
      calls.set(`${b.work}\u0000${b.call}`, b.index);
      if (b.index <= w.lastIndex) return s;
      return withWork(s, b.work, { ...w, lastIndex: b.index, stage: "pending", since: e.ts, reason: "", message: "" });
    }
    case "work.status_changed": {
      if (!w || stale(w, b)) return s;
      const index = calls.get(`${b.work}\u0000${b.call}`);
      if (index === undefined || index !== w.lastIndex) return s;
      return withWork(s, b.work, { ...w, stage: b.stage, since: e.ts, reason: b.reason ?? "", message: b.message ?? "" });
    }
    case "work.worker_started": {
      if (!w || b.attempt <= w.fenced || b.attempt < w.attempt) return s;
      return withWork(s, b.work, {
        ...w,
        attempt: b.attempt,
        worker: { attempt: b.attempt, executor: b.executor, ref: b.ref ?? {}, state: "running" },
      });
    }
    case "work.worker_exited": {
      if (!w) return s;
      const worker =
        w.worker && w.worker.attempt === b.attempt ? { ...w.worker, state: "exited", cause: b.cause } : w.worker;
      return withWork(s, b.work, { ...w, fenced: Math.max(w.fenced, b.attempt), worker });
    }
    case "component.added": {
      if (s.components[b.name]) return s;
      const n: State = {
        ...s,
        components: { ...s.components, [b.name]: { kind: b.kind, vars: b.vars ?? {}, spec: b.spec ?? {} } },
      };
      return b.kind === "work" ? { ...n, works: { ...n.works, [b.name]: newWork() } } : n;
    }
    case "work.endpoint": {
      if (!w || stale(w, b)) return s;
      const { host, port, internal_ip, url, listening } = b;
      return withWork(s, b.work, { ...w, endpoint: { host, port, internal_ip, url, listening } });
    }
    default:
      return s;
  }
}

export const CHECKPOINT_EVERY = 512;

/** A run's events in order, the state after the newest (`head`), and the state after any of them. */
export class Timeline {
  events: EventRec[] = [];
  head: State | null = null;
  private calls: CallIndex = new Map();
  private checkpoints: (State | null)[] = [null]; // checkpoints[k]: after the first k*EVERY events

  constructor(readonly runId = "") {}

  get lastSeq(): number {
    return this.events.length ? this.events[this.events.length - 1].seq : 0;
  }

  /** Add events (in seq order); those already held are skipped. The number added. */
  append(batch: EventRec[]): number {
    let added = 0;
    for (const e of batch) {
      if (e.seq <= this.lastSeq) continue;
      this.events.push(e);
      this.head = apply(this.head, e, this.calls);
      if (this.head && !this.head.run.id) this.head = withRun(this.head, { id: this.runId });
      if (this.events.length % CHECKPOINT_EVERY === 0) this.checkpoints.push(this.head);
      added++;
    }
    return added;
  }

  /** How many events have a seq <= `seq`. */
  countUpTo(seq: number): number {
    let lo = 0;
    let hi = this.events.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.events[mid].seq <= seq) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** The state just after the event `seq` (after the newest event before it, if it is not one of
   *  this run's); `null` before `run.created`. */
  stateAt(seq: number): State | null {
    const count = this.countUpTo(seq);
    if (count >= this.events.length) return this.head;
    const k = Math.floor(count / CHECKPOINT_EVERY);
    let s = this.checkpoints[k] ?? null;
    for (let i = k * CHECKPOINT_EVERY; i < count; i++) {
      s = apply(s, this.events[i], this.calls);
      if (s && !s.run.id) s = withRun(s, { id: this.runId });
    }
    return s;
  }
}

// -- what the page derives from the events --------------------------------------------------------

/** The components an event is about (the Work, the flows whose attributes changed, or its source). */
export function componentsOf(e: EventRec): string[] {
  const b = e.body ?? {};
  if (e.type === "flow.state_changed") return Object.keys(b.changes ?? {});
  if (e.type === "run.created") return Object.keys(b.components ?? {});
  if (typeof b.work === "string") return [b.work];
  if (e.type === "component.added" && typeof b.name === "string") return [b.name];
  if (typeof b.flow === "string") return [b.flow];
  return e.source ? [e.source] : [];
}

export interface EventFilter {
  component?: string; // this component and those under it
  kind?: string; // an event type, or a prefix ending in "." ("work.")
  text?: string;
}

/** The indices of the events that pass `f`. */
export function filterEvents(events: EventRec[], f: EventFilter): number[] {
  const out: number[] = [];
  const comp = f.component || "";
  const kind = f.kind || "";
  const text = (f.text || "").toLowerCase();
  for (let i = 0; i < events.length; i++) {
    const e = events[i];
    if (kind && !(kind.endsWith(".") ? e.type.startsWith(kind) : e.type === kind)) continue;
    if (comp && !componentsOf(e).some((c) => c === comp || c.startsWith(comp + "."))) continue;
    if (text && !summary(e).toLowerCase().includes(text) && !e.type.includes(text)) continue;
    out.push(i);
  }
  return out;
}

const j = (v: unknown) => JSON.stringify(v);

/** One line about an event, as `lightning-kernel history` prints it. */
export function summary(e: EventRec): string {
  const b = e.body ?? {};
  try {
    switch (e.type) {
      case "run.created":
        return `${b.name} (${Object.keys(b.components).length} components)`;
      case "flow.state_changed":
        return Object.entries<any>(b.changes)
          .flatMap(([c, attrs]) => Object.entries(attrs).map(([k, v]) => `${c}.${k}=${j(v)}`))
          .join(" ");
      case "work.state_changed":
        return `${b.work} ` + Object.entries(b.changes).map(([k, v]) => `${k}=${j(v)}`).join(" ");
      case "work.run_requested":
        return `${b.work} call ${b.call} args=${j(b.args)} kwargs=${j(b.kwargs)}`;
      case "work.status_changed":
        return `${b.work} call ${b.call} ${b.stage}${b.reason ? ` (${b.reason})` : ""}`;
      case "work.worker_started":
        return `${b.work} worker ${b.attempt} ${b.attached ? "re-attached" : "started"} (${b.executor})`;
      case "work.worker_exited":
        return `${b.work} worker ${b.attempt} ${b.cause}: ${b.message ?? ""}`;
      case "work.endpoint":
        return `${b.work} ${b.listening ? "serves at" : "may serve at"} ${b.url}`;
      case "component.added":
        return `${b.name} (${b.kind})`;
      case "work.record":
        return `${b.work} ${b.kind} ${j(b.data)}`;
      default:
        return j(b);
    }
  } catch {
    return j(b);
  }
}

export interface Call {
  call: string;
  index: number;
  args: unknown;
  kwargs: unknown;
  stage: string;
  requested: number;
  started: number | null;
  ended: number | null;
  attempts: number[];
  reason: string;
  seq: number;
}

/** The calls of `work` up to the event `seq` (all when undefined), oldest first. */
export function callsOf(events: EventRec[], work: string, seq?: number): Call[] {
  const byId = new Map<string, Call>();
  for (const e of events) {
    if (seq !== undefined && e.seq > seq) break;
    const b = e.body;
    if (!b || b.work !== work) continue;
    if (e.type === "work.run_requested") {
      const old = byId.get(b.call);
      if (old) continue; // a resume's copy
      byId.set(b.call, {
        call: b.call,
        index: b.index,
        args: b.args,
        kwargs: b.kwargs,
        stage: "pending",
        requested: e.ts,
        started: null,
        ended: null,
        attempts: [],
        reason: "",
        seq: e.seq,
      });
    } else if (e.type === "work.status_changed") {
      const c = byId.get(b.call);
      if (!c) continue;
      c.stage = b.stage;
      c.reason = b.reason ?? "";
      if (b.attempt && !c.attempts.includes(b.attempt)) c.attempts.push(b.attempt);
      if (b.stage === "running" && c.started === null) c.started = e.ts;
      if (FINISHED.has(b.stage)) c.ended = e.ts;
      else c.ended = null;
    }
  }
  return [...byId.values()].sort((a, b) => a.index - b.index);
}

export interface PathInfo {
  path: string;
  attribute: string;
  persisted: Record<string, any> | null;
}

/** The Paths of `work`: those in its attributes and those it persisted, up to the event `seq`. */
export function pathsOf(events: EventRec[], state: State | null, work: string, seq?: number): PathInfo[] {
  const found = new Map<string, PathInfo>();
  const vars = state?.components[work]?.vars ?? {};
  const walk = (v: any, at: string) => {
    if (typeof v === "string" && v.startsWith("lit://")) found.set(v, { path: v, attribute: at, persisted: null });
    else if (v && typeof v === "object" && v.type === "__path__" && typeof v.path === "string")
      found.set(v.path, { path: v.path, attribute: at, persisted: null });
    else if (v && typeof v === "object")
      for (const [k, x] of Object.entries(v)) walk(x, at ? `${at}.${k}` : k);
  };
  walk(vars, "");
  for (const e of events) {
    if (seq !== undefined && e.seq > seq) break;
    if (e.type !== "work.record" || e.body?.work !== work || e.body?.kind !== "path.persisted") continue;
    const d = e.body.data ?? {};
    const p = found.get(d.path) ?? { path: d.path, attribute: "", persisted: null };
    p.persisted = d;
    found.set(d.path, p);
  }
  return [...found.values()];
}

/** The paths (`["metrics", "loss"]`) of the numbers in `vars`, nested objects included. */
export function numericAttributes(vars: Vars, depth = 3): string[][] {
  const out: string[][] = [];
  const walk = (v: unknown, at: string[]) => {
    if (typeof v === "number" && Number.isFinite(v)) out.push(at);
    else if (v && typeof v === "object" && !Array.isArray(v) && at.length < depth)
      for (const [k, x] of Object.entries(v as Vars)) walk(x, [...at, k]);
  };
  for (const [k, v] of Object.entries(vars)) walk(v, [k]);
  return out;
}

function dig(v: unknown, path: string[]): unknown {
  let x: any = v;
  for (const p of path) {
    if (x === null || typeof x !== "object") return undefined;
    x = x[p];
  }
  return x;
}

export interface Series {
  seq: number[];
  ts: number[];
  value: number[];
}

/** The values the attribute `path` of `component` took, event by event (a change of the attribute
 *  that holds it counts too), from its first value in `run.created` or `component.added`. */
export function seriesOf(events: EventRec[], component: string, path: string[]): Series {
  const out: Series = { seq: [], ts: [], value: [] };
  const [top, ...rest] = path;
  let current: unknown;
  const push = (e: EventRec, top_value: unknown) => {
    current = top_value;
    const v = rest.length ? dig(top_value, rest) : top_value;
    if (typeof v === "number" && Number.isFinite(v)) {
      out.seq.push(e.seq);
      out.ts.push(e.ts);
      out.value.push(v);
    }
  };
  for (const e of events) {
    const b = e.body;
    if (!b) continue;
    let changes: Vars | undefined;
    if (e.type === "run.created") changes = b.components?.[component]?.vars;
    else if (e.type === "component.added" && b.name === component) changes = b.vars;
    else if (e.type === "flow.state_changed") changes = b.changes?.[component];
    else if (e.type === "work.state_changed" && b.work === component) changes = b.changes;
    if (changes && top in changes && changes[top] !== current) push(e, changes[top]);
  }
  return out;
}

// -- the tree ---------------------------------------------------------------------------------------

export interface Node {
  name: string; // the full dotted name
  key: string; // the last part
  kind: string;
  children: Node[];
}

/** The components of `state` as nested nodes (root first), in the order the app declared them. */
export function treeOf(state: State | null): Node | null {
  if (!state || !state.components.root) return null;
  const nodes = new Map<string, Node>();
  for (const [name, c] of Object.entries(state.components)) {
    nodes.set(name, { name, key: name.slice(name.lastIndexOf(".") + 1), kind: c.kind, children: [] });
  }
  for (const [name, node] of nodes) {
    if (name === "root") continue;
    let parent = name.slice(0, name.lastIndexOf("."));
    while (parent && !nodes.has(parent)) parent = parent.slice(0, Math.max(0, parent.lastIndexOf(".")));
    nodes.get(parent || "root")?.children.push(node);
  }
  return nodes.get("root") ?? null;
}

/** A summary of a Work's CloudCompute (`cpu`, `gpu x2`...), empty for the default. */
export function computeOf(comp: Comp | undefined): string {
  const cc = comp?.spec?.cloud_compute;
  if (!cc || typeof cc !== "object") return "";
  const parts = [String(cc.name ?? "default")];
  if (cc.interruptible) parts.push("interruptible");
  return parts.join(" ");
}

/** Where a Work's worker runs: its executor and what its ref says (a host, a pid, an actor). */
export function hostOf(w: WorkView | undefined): string {
  if (!w?.worker) return "";
  const ref = w.worker.ref ?? {};
  const where = (ref.host ?? ref.hostname ?? ref.node ?? (ref.pid !== undefined ? `pid ${ref.pid}` : "")) as string;
  return `${w.worker.executor}${where ? ` ${where}` : ""}${w.worker.state === "exited" ? " (exited)" : ""}`;
}
