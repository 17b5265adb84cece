// The run's events (filterable, virtualised) and the diff of two events or two runs.

import { useEffect, useMemo, useState } from "preact/hooks";
import { get, runUrl, type Run } from "./api";
import { filterEvents, summary, type Timeline } from "./fold";
import { time } from "./format";
import { ValueTree, VirtualList } from "./widgets";

export function EventsView(props: {
  timeline: Timeline;
  version: number;
  at: number | null;
  components: string[];
  onPick: (seq: number) => void;
  onDiffFrom: (seq: number) => void;
}) {
  const { timeline, version } = props;
  const [component, setComponent] = useState("");
  const [kind, setKind] = useState("");
  const [text, setText] = useState("");
  const events = timeline.events;
  const kinds = useMemo(() => [...new Set(events.map((e) => e.type))].sort(), [timeline, version]);
  const shown = useMemo(() => filterEvents(events, { component, kind, text }), [timeline, version, component, kind, text]);
  const atRow = useMemo(() => {
    if (props.at === null) return null;
    const i = timeline.countUpTo(props.at) - 1;
    let lo = 0;
    let hi = shown.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (shown[mid] <= i) lo = mid + 1;
      else hi = mid;
    }
    return lo - 1;
  }, [shown, props.at]);
  const onKey = (e: KeyboardEvent) => {
    if (atRow === null || !shown.length) return;
    const step = e.key === "ArrowDown" || e.key === "j" ? 1 : e.key === "ArrowUp" || e.key === "k" ? -1 : 0;
    if (!step) return;
    e.preventDefault();
    const row = Math.min(shown.length - 1, Math.max(0, atRow + step));
    props.onPick(events[shown[row]].seq);
  };
  return (
    <div class="events" onKeyDown={onKey}>
      <div class="row">
        <select aria-label="events of component" value={component} onChange={(e) => setComponent(e.currentTarget.value)}>
          <option value="">every component</option>
          {props.components.map((c) => (
            <option key={c} value={c}>
              {c}
            </option>
          ))}
        </select>
        <select aria-label="events of kind" value={kind} onChange={(e) => setKind(e.currentTarget.value)}>
          <option value="">every kind</option>
          <option value="work.">work.*</option>
          <option value="flow.">flow.*</option>
          <option value="run.">run.*</option>
          {kinds.map((k) => (
            <option key={k} value={k}>
              {k}
            </option>
          ))}
        </select>
        <input type="search" placeholder="text" aria-label="events containing" value={text} onInput={(e) => setText(e.currentTarget.value)} />
        <span class="muted" data-shown={shown.length}>
          {shown.length} of {events.length}
        </span>
        <button disabled={props.at === null} onClick={() => props.at !== null && props.onDiffFrom(props.at)}>
          diff from this event
        </button>
      </div>
      <VirtualList
        label="events"
        count={shown.length}
        rowHeight={22}
        height={420}
        scrollTo={atRow}
        row={(r) => {
          const e = events[shown[r]];
          return (
            <button class={`event-row ${r === atRow ? "on" : ""}`} tabIndex={r === atRow ? 0 : -1} data-seq={e.seq} onClick={() => props.onPick(e.seq)}>
              <span class="num">{e.seq}</span>
              <span class="muted">{time(e.ts).slice(11)}</span>
              <span class="etype">{e.type}</span>
              <span class="esum">{summary(e)}</span>
            </button>
          );
        }}
      />
    </div>
  );
}

/** GET /api/runs/{run}/diff: this run at two events, or this run against another. */
export function DiffView(props: { run: string; from: number | null; to: number | null }) {
  const [from, setFrom] = useState(props.from === null ? "" : String(props.from));
  const [to, setTo] = useState(props.to === null ? "" : String(props.to));
  const [other, setOther] = useState("");
  const [runs, setRuns] = useState<Run[]>([]);
  const [result, setResult] = useState<any>(null);
  const [error, setError] = useState("");
  useEffect(() => setFrom(props.from === null ? "" : String(props.from)), [props.from]);
  useEffect(() => setTo(props.to === null ? "" : String(props.to)), [props.to]);
  useEffect(() => {
    get<Run[]>("/api/runs?limit=100").then(setRuns, () => {});
  }, []);
  const compare = async () => {
    setError("");
    const q = new URLSearchParams();
    if (from) q.set("from", from);
    if (to) q.set("to", to);
    if (other) q.set("other", other);
    try {
      setResult(await get(`${runUrl(props.run)}/diff?${q}`));
    } catch (e) {
      setResult(null);
      setError(String((e as Error).message));
    }
  };
  return (
    <div class="diff">
      <div class="row">
        <label>
          from event <input class="seq" inputMode="numeric" aria-label="diff from event" value={from} onInput={(e) => setFrom(e.currentTarget.value)} />
        </label>
        <label>
          to event <input class="seq" inputMode="numeric" aria-label="diff to event" value={to} onInput={(e) => setTo(e.currentTarget.value)} />
        </label>
        <label>
          of run{" "}
          <select aria-label="diff with run" value={other} onChange={(e) => setOther(e.currentTarget.value)}>
            <option value="">this one</option>
            {runs
              .filter((r) => r.id !== props.run)
              .map((r) => (
                <option key={r.id} value={r.id}>
                  {r.name} {r.id}
                </option>
              ))}
          </select>
        </label>
        <button onClick={compare}>Compare</button>
      </div>
      {error && <p class="error">{error}</p>}
      {result && (
        <div class="diff-result" data-same={String(result.same)}>
          <p>
            {result.same ? "no difference" : "what changed"}: {result.from?.run} #{result.from?.seq} → {result.to?.run} #{result.to?.seq}
          </p>
          {!result.same &&
            ["run", "components", "works", "paths"]
              .filter((k) => result[k] && Object.keys(result[k]).length)
              .map((k) => <ValueTree key={k} name={k} value={result[k]} />)}
        </div>
      )}
    </div>
  );
}
