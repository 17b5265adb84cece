// The selected component: its state (as it was at the scrubber's event), calls, Paths, logs and charts.

import { useEffect, useMemo, useState } from "preact/hooks";
import { get, listen, runUrl, type LogLine } from "./api";
import { Chart } from "./chart";
import { coalescer } from "./coalesce";
import { callsOf, computeOf, hostOf, numericAttributes, pathsOf, seriesOf, type State, type Timeline } from "./fold";
import { bytes, duration, short, time } from "./format";
import { Badge, ValueTree, VirtualList } from "./widgets";

type View = "state" | "calls" | "paths" | "logs" | "chart";

export function Details(props: { run: string; name: string; state: State | null; timeline: Timeline; version: number; at: number | null }) {
  const { name, state, timeline, version, at } = props;
  const comp = state?.components[name];
  const work = state?.works[name];
  const [view, setView] = useState<View>("state");
  const views: View[] = comp?.kind === "work" ? ["state", "calls", "paths", "logs", "chart"] : ["state", "logs", "chart"];
  const shown = views.includes(view) ? view : "state";
  if (!comp) return <p class="muted pad">{name} does not exist at this event.</p>;
  return (
    <div class="details" data-details={name}>
      <div class="details-head">
        <strong>{name}</strong> <span class="muted">{comp.kind}</span> {work && <Badge status={work.stage} />}
        {work?.reason && <span class="muted"> ({work.reason})</span>}
        {comp.kind === "work" && <span class="muted"> · CloudCompute {computeOf(comp) || "default"}</span>}
        {hostOf(work) && <span class="muted"> · {hostOf(work)}</span>}
        {work?.endpoint?.url ? (
          <a href={String(work.endpoint.url)} target="_blank" rel="noopener">
            {" "}
            {String(work.endpoint.url)}
          </a>
        ) : null}
      </div>
      <nav class="tabs small" aria-label="component views">
        {views.map((v) => (
          <button key={v} class={shown === v ? "on" : ""} onClick={() => setView(v)}>
            {v}
          </button>
        ))}
      </nav>
      {shown === "state" && (
        <div class="state-view" aria-label="state">
          {Object.keys(comp.vars).length ? (
            Object.entries(comp.vars).map(([k, v]) => <ValueTree key={k} name={k} value={v} />)
          ) : (
            <p class="muted">no public attributes</p>
          )}
        </div>
      )}
      {shown === "calls" && <Calls timeline={timeline} work={name} version={version} at={at} />}
      {shown === "paths" && (
        <Paths run={props.run} timeline={timeline} state={state} work={name} version={version} at={at} />
      )}
      {shown === "logs" && <Logs run={props.run} component={name} />}
      {shown === "chart" && <Charts timeline={timeline} state={timeline.head} name={name} version={version} at={at} />}
    </div>
  );
}

function Calls(props: { timeline: Timeline; work: string; version: number; at: number | null }) {
  const calls = useMemo(
    () => callsOf(props.timeline.events, props.work, props.at ?? undefined),
    [props.timeline, props.work, props.version, props.at],
  );
  if (!calls.length) return <p class="muted pad">no calls yet</p>;
  return (
    <table class="calls">
      <thead>
        <tr>
          <th>#</th>
          <th>status</th>
          <th>arguments</th>
          <th>requested</th>
          <th>ran</th>
          <th>workers</th>
        </tr>
      </thead>
      <tbody>
        {calls.map((c) => (
          <tr key={c.call} title={c.call}>
            <td class="num">{c.index}</td>
            <td>
              <Badge status={c.stage} />
              {c.reason && <span class="muted"> {c.reason}</span>}
            </td>
            <td class="mono">
              {short(c.args, 60)} {c.kwargs && Object.keys(c.kwargs as object).length ? short(c.kwargs, 60) : ""}
            </td>
            <td>{time(c.requested)}</td>
            <td>{c.started ? duration((c.ended ?? Date.now() / 1000) - c.started) : ""}</td>
            <td class="num">{c.attempts.join(", ")}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

type ManifestFile = { sha256: string; size: number; mode?: number };
type Manifest = { ref: string; path: string; kind: string; files: Record<string, ManifestFile> };

/** A file's name in its download URL: a file Path's one entry (".") goes by the file's own name. */
function fileName(m: Manifest, entry: string): string {
  return entry === "." ? (m.path.split("/").pop() ?? entry) : entry;
}

/** The files a persisted Path held (GET /manifests/{ref}), each with its size, hash and a download link. */
function Files(props: { run: string; manifest: string }) {
  const [got, setGot] = useState<Manifest | null>(null);
  const [error, setError] = useState("");
  const base = `/api/runs/${encodeURIComponent(props.run)}/manifests/${props.manifest}`;
  useEffect(() => {
    setGot(null);
    setError("");
    get<Manifest>(base).then(setGot, (e) => setError(String(e?.message ?? e)));
  }, [base]);
  if (error) return <p class="muted">{error}</p>;
  if (!got) return <p class="muted">loading the files…</p>;
  const names = Object.keys(got.files).sort();
  return (
    <table class="files">
      <tbody>
        {names.map((n) => (
          <tr key={n}>
            <td class="mono">
              <a href={`${base}/files/${fileName(got, n).split("/").map(encodeURIComponent).join("/")}`} download>
                {n === "." ? got.path : n}
              </a>
            </td>
            <td class="num">{bytes(got.files[n].size)}</td>
            <td class="mono" title={got.files[n].sha256}>
              sha256 {got.files[n].sha256.slice(0, 16)}…
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Paths(props: {
  run: string;
  timeline: Timeline;
  state: State | null;
  work: string;
  version: number;
  at: number | null;
}) {
  const [open, setOpen] = useState<string | null>(null);
  const paths = useMemo(
    () => pathsOf(props.timeline.events, props.state, props.work, props.at ?? undefined),
    [props.timeline, props.state, props.work, props.version, props.at],
  );
  if (!paths.length) return <p class="muted pad">no Paths in its attributes, none persisted</p>;
  return (
    <table class="paths">
      <thead>
        <tr>
          <th>path</th>
          <th>attribute</th>
          <th>persisted</th>
          <th class="num">files</th>
          <th class="num">size</th>
          <th>manifest</th>
        </tr>
      </thead>
      <tbody>
        {paths.map((p) => [
          <tr key={p.path}>
            <td class="mono">{p.path}</td>
            <td class="mono">{p.attribute}</td>
            <td>{p.persisted ? p.persisted.kind ?? "yes" : "not yet"}</td>
            <td class="num">{p.persisted?.files ?? ""}</td>
            <td class="num">{p.persisted ? bytes(p.persisted.bytes) : ""}</td>
            <td class="mono" title={JSON.stringify(p.persisted?.sample ?? "")}>
              {p.persisted ? (
                <button
                  class="link"
                  aria-expanded={open === p.path}
                  onClick={() => setOpen(open === p.path ? null : p.path)}
                >
                  files · {String(p.persisted.manifest).slice(0, 12)}
                </button>
              ) : (
                ""
              )}
            </td>
          </tr>,
          open === p.path && p.persisted ? (
            <tr key={`${p.path}/files`}>
              <td colSpan={6}>
                <Files run={props.run} manifest={p.persisted.manifest} />
              </td>
            </tr>
          ) : null,
        ])}
      </tbody>
    </table>
  );
}

const MAX_LINES = 20000;

/** What the component printed, tailing live (GET /logs/stream); not time-travelled. */
function Logs(props: { run: string; component: string }) {
  const [lines, setLines] = useState<LogLine[]>([]);
  const [all, setAll] = useState(false);
  const [follow, setFollow] = useState(true);
  useEffect(() => {
    setLines([]);
    const add = coalescer<LogLine>((batch) => setLines((old) => [...old, ...batch].slice(-MAX_LINES)));
    const q = all ? "" : `?component=${encodeURIComponent(props.component)}`;
    return listen(`${runUrl(props.run)}/logs/stream${q}`, ["log"], (kind, data) => {
      if (kind === "log") add.push(data);
    });
  }, [props.run, props.component, all]);
  return (
    <div class="logs">
      <div class="row">
        <label>
          <input type="checkbox" checked={all} onChange={(e) => setAll(e.currentTarget.checked)} /> every component
        </label>
        <label>
          <input type="checkbox" checked={follow} onChange={(e) => setFollow(e.currentTarget.checked)} /> follow
        </label>
        <span class="muted">{lines.length} lines</span>
      </div>
      <VirtualList
        label="log lines"
        count={lines.length}
        rowHeight={18}
        height={360}
        stickToEnd={follow}
        row={(i) => (
          <div class={`log-line ${lines[i].stream}`}>
            {all && <span class="muted">{lines[i].component}: </span>}
            {lines[i].line}
          </div>
        )}
      />
    </div>
  );
}

/** Where the scrubber's event falls on a chart over events (its seq) or over time (its time). */
function markAt(timeline: Timeline, at: number | null, x: "seq" | "time"): number | null {
  if (at === null) return null;
  if (x === "seq") return at;
  const e = timeline.events[timeline.countUpTo(at) - 1];
  return e ? e.ts : null;
}

function Charts(props: { timeline: Timeline; state: State | null; name: string; version: number; at: number | null }) {
  const vars = props.state?.components[props.name]?.vars ?? {};
  const attrs = useMemo(() => numericAttributes(vars).map((p) => p.join(".")), [vars]);
  const [attr, setAttr] = useState("");
  const [x, setX] = useState<"seq" | "time">("seq");
  const chosen = attrs.includes(attr) ? attr : (attrs[0] ?? "");
  const series = useMemo(
    () => (chosen ? seriesOf(props.timeline.events, props.name, chosen.split(".")) : null),
    [props.timeline, props.name, chosen, props.version],
  );
  if (!attrs.length) return <p class="muted pad">{props.name} has no numeric attribute to plot</p>;
  return (
    <div class="charts">
      <div class="row">
        <label>
          attribute{" "}
          <select aria-label="attribute to plot" value={chosen} onChange={(e) => setAttr(e.currentTarget.value)}>
            {attrs.map((a) => (
              <option key={a} value={a}>
                {a}
              </option>
            ))}
          </select>
        </label>
        <label>
          over{" "}
          <select value={x} onChange={(e) => setX(e.currentTarget.value as "seq" | "time")}>
            <option value="seq">events</option>
            <option value="time">time</option>
          </select>
        </label>
        <span class="muted" data-points={series?.value.length ?? 0}>
          {series?.value.length ?? 0} values
        </span>
      </div>
      {series && (
        <Chart
          title={`${props.name}.${chosen}`}
          xs={x === "seq" ? series.seq : series.ts}
          ys={series.value}
          time={x === "time"}
          mark={markAt(props.timeline, props.at, x)}
        />
      )}
    </div>
  );
}
