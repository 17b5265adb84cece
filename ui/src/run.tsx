// A run's page: its tree, the selected component's state, calls, Paths, logs and charts, the
// timeline of its events, a diff, the actions, and its layout's tabs beside these system views.
//
// The events come once (pages of GET /events), then live (GET /events/stream), gathered per frame
// (coalescer); the state shown is the Timeline's fold at the scrubber's event, or its head when live.

import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { ApiError, get, listen, loadEvents, pageUrl, post, runUrl, type Run, type Tab } from "./api";
import { coalescer } from "./coalesce";
import { computeOf, hostOf, RUN_ENDED, Timeline, treeOf, type EventRec, type Node, type State } from "./fold";
import { duration, time } from "./format";
import { Details } from "./panels";
import { DiffView, EventsView } from "./history";
import { Badge, Confirm } from "./widgets";

type Action = { kind: "stop" | "resume" | "fork"; at?: number };

export function RunPage({ id }: { id: string }) {
  const [runId, setRunId] = useState<string | null>(null);
  const [info, setInfo] = useState<Run | null>(null);
  const [error, setError] = useState("");
  const [notice, setNotice] = useState("");
  const timeline = useRef<Timeline | null>(null);
  const [version, setVersion] = useState(0);
  const [at, setAt] = useState<number | null>(null);
  const [selected, setSelected] = useState("root");
  const [tab, setTab] = useState(-1); // -1: the system views; else a layout tab
  const [tabs, setTabs] = useState<Tab[]>([]);
  const [system, setSystem] = useState<"component" | "events" | "diff">("component");
  const [action, setAction] = useState<Action | null>(null);
  const [streaming, setStreaming] = useState<"loading" | "live" | "ended" | "lost">("loading");
  const [diffFrom, setDiffFrom] = useState<number | null>(null);

  useEffect(() => {
    let closed = false;
    let close = () => {};
    const layout = async (run: string) => {
      try {
        setTabs((await get<{ tabs: Tab[] }>(`${runUrl(run)}/layout`)).tabs);
      } catch {
        // a run that ended: its layout is gone with its objects
      }
    };
    (async () => {
      try {
        const run = await get<Run>(runUrl(id));
        if (closed) return;
        setRunId(run.id);
        setInfo(run);
        const tl = (timeline.current = new Timeline(run.id));
        const last = await loadEvents(run.id, 0, (page) => {
          tl.append(page);
          setVersion((v) => v + 1);
        });
        if (closed) return;
        let endpoints = false;
        const events = coalescer<EventRec>((batch) => {
          if (tl.append(batch)) setVersion((v) => v + 1);
          if (batch.some((e) => e.type === "work.endpoint" || e.type === "component.added")) endpoints = true;
          if (endpoints) {
            endpoints = false;
            void layout(run.id);
          }
        });
        setStreaming("live");
        close = listen(`${runUrl(run.id)}/events/stream?after=${last}`, ["event"], (kind, data) => {
          if (kind === "event") events.push(data);
          else if (kind === "end") {
            setStreaming("ended");
            void get<Run>(runUrl(run.id)).then(setInfo, () => {});
          }
        });
        void layout(run.id);
      } catch (e) {
        setError(String((e as Error).message ?? e));
      }
    })();
    return () => {
      closed = true;
      close();
    };
  }, [id]);

  const tl = timeline.current;
  const head = tl?.head ?? null;
  const state: State | null = useMemo(() => (tl ? (at === null ? tl.head : tl.stateAt(at)) : null), [tl, at, version]);
  const tree = useMemo(() => treeOf(state), [state]);
  const status = head?.run.status ?? info?.status ?? "";
  const name = head?.run.name || info?.name || id;

  useEffect(() => {
    document.title = `${name} · lightning-kernel`;
  }, [name]);

  const doAction = async (a: Action) => {
    setAction(null);
    if (!runId) return;
    setNotice("");
    try {
      if (a.kind === "fork") {
        const got = await post<{ id: string }>(`${runUrl(runId)}/fork`, { at: a.at });
        location.href = pageUrl(got.id);
        return;
      }
      await post(`${runUrl(runId)}/${a.kind}`);
      setNotice(a.kind === "stop" ? "stop requested" : "resumed");
    } catch (e) {
      setNotice(e instanceof ApiError ? e.message : String(e));
    }
  };

  if (error)
    return (
      <div class="page">
        <p class="error pad" role="alert">
          {error}
        </p>
      </div>
    );
  const ended = RUN_ENDED.has(status);
  const events = tl?.events ?? [];
  const index = at === null ? events.length - 1 : Math.max(0, tl!.countUpTo(at) - 1);
  const current = events[index];
  return (
    <div class="page run-page">
      <header class="bar">
        <a class="logo" href="/view?runs=1" title="all runs" aria-label="all runs">
          ⚡
        </a>
        <h1>{name}</h1>
        <span class="mono muted">{runId}</span>
        <Badge status={status} />
        {info && <span class="muted">{time(info.created_at)}</span>}
        {head && (
          <span class="muted run-duration">
            {/* the run's own length: to its last event once it is not running, whatever event is shown */}
            {duration((status === "running" ? Date.now() / 1000 : (events[events.length - 1]?.ts ?? 0)) - head.run.createdAt)}
          </span>
        )}
        <span class={`stream ${streaming}`} data-stream={streaming}>
          {streaming}
        </span>
        <span class="grow" />
        {!ended && status !== "interrupted" && (
          <button class="danger" onClick={() => setAction({ kind: "stop" })}>
            Stop
          </button>
        )}
        {status === "interrupted" && <button onClick={() => setAction({ kind: "resume" })}>Resume</button>}
        <button disabled={!current} onClick={() => setAction({ kind: "fork", at: current?.seq })}>
          Fork at {current ? `#${current.seq}` : "…"}
        </button>
        <a href="/view?runs=1">all runs</a>
      </header>
      {notice && (
        <p class="notice" role="status">
          {notice}
        </p>
      )}
      <nav class="tabs" aria-label="views">
        <button class={tab === -1 ? "on" : ""} onClick={() => setTab(-1)}>
          App
        </button>
        {tabs.map((t, i) => (
          <button key={t.name + i} class={tab === i ? "on" : ""} onClick={() => setTab(i)} data-layout-tab={t.name}>
            {t.name}
          </button>
        ))}
      </nav>
      {tab >= 0 && tabs[tab] ? (
        <LayoutTab tab={tabs[tab]} />
      ) : (
        <>
          <Scrubber
            events={events}
            index={index}
            live={at === null}
            onSeq={(seq) => setAt(seq)}
            onLive={() => setAt(null)}
          />
          <main class="system">
            <aside class="tree" aria-label="components">
              {tree ? <TreeNode node={tree} state={state!} selected={selected} onSelect={setSelected} /> : <p class="muted">loading…</p>}
            </aside>
            <section class="main">
              <nav class="tabs small" aria-label="system views">
                {(["component", "events", "diff"] as const).map((v) => (
                  <button key={v} class={system === v ? "on" : ""} onClick={() => setSystem(v)}>
                    {v === "component" ? selected : v}
                  </button>
                ))}
              </nav>
              {system === "component" && tl && (
                <Details
                  run={runId!}
                  name={selected}
                  state={state}
                  timeline={tl}
                  version={version}
                  at={at}
                />
              )}
              {system === "events" && tl && (
                <EventsView
                  timeline={tl}
                  version={version}
                  at={current?.seq ?? null}
                  components={Object.keys(head?.components ?? {})}
                  onPick={(seq) => setAt(seq)}
                  onDiffFrom={(seq) => {
                    setDiffFrom(seq);
                    setSystem("diff");
                  }}
                />
              )}
              {system === "diff" && runId && <DiffView run={runId} from={diffFrom} to={current?.seq ?? null} />}
            </section>
          </main>
        </>
      )}
      {action && (
        <Confirm
          title={action.kind === "stop" ? "Stop this run?" : action.kind === "resume" ? "Resume this run?" : "Fork this run?"}
          action={action.kind === "stop" ? "Stop" : action.kind === "resume" ? "Resume" : "Fork"}
          onAnswer={(yes) => (yes ? doAction(action) : setAction(null))}
        >
          {action.kind === "stop" && <p>Its Works stop and it ends as stopped.</p>}
          {action.kind === "resume" && <p>It carries on, on this server, where it was.</p>}
          {action.kind === "fork" && <p>A new run starts from this run's events up to #{action.at}, then goes on live.</p>}
        </Confirm>
      )}
    </div>
  );
}

function LayoutTab({ tab }: { tab: Tab }) {
  if (tab.kind === "note") return <p class="note pad">{tab.note}</p>;
  return (
    <div class="layout-tab">
      <iframe src={tab.url} title={tab.name} />
      <a href={tab.url} target="_blank" rel="noopener">
        open {tab.url}
      </a>
    </div>
  );
}

function TreeNode(props: { node: Node; state: State; selected: string; onSelect: (name: string) => void }) {
  const { node, state } = props;
  const comp = state.components[node.name];
  const work = state.works[node.name];
  const compute = node.kind === "work" ? computeOf(comp) : "";
  const host = hostOf(work);
  return (
    <div class="node" data-component={node.name}>
      <button
        class={`node-row ${props.selected === node.name ? "on" : ""}`}
        onClick={() => props.onSelect(node.name)}
        aria-current={props.selected === node.name}
      >
        <span class={`kind k-${node.kind}`} title={node.kind}>
          {node.kind === "work" ? "W" : node.kind === "flow" ? "F" : "S"}
        </span>
        <span class="node-name">{node.key}</span>
        {work ? <Badge status={work.stage} /> : node.name === "root" ? <Badge status={state.run.status} /> : null}
        {(compute || host) && (
          <span class="node-meta muted">
            {compute}
            {compute && host ? " · " : ""}
            {host}
          </span>
        )}
      </button>
      {node.children.length > 0 && (
        <div class="node-children">
          {node.children.map((c) => (
            <TreeNode key={c.name} {...props} node={c} />
          ))}
        </div>
      )}
    </div>
  );
}

/** The run's events as a range: drag it (or use the arrow keys, Page Up/Down, Home/End) to see the
 *  run as it was just after an event; "live" follows the newest again. */
function Scrubber(props: { events: EventRec[]; index: number; live: boolean; onSeq: (seq: number) => void; onLive: () => void }) {
  const { events, index } = props;
  const e = events[index];
  const [t0, t1] = [events[0]?.ts ?? 0, events[events.length - 1]?.ts ?? 0];
  return (
    <div class="scrubber">
      <input
        type="range"
        aria-label="time travel: the event shown"
        min={0}
        max={Math.max(0, events.length - 1)}
        value={index}
        disabled={!events.length}
        onInput={(ev) => {
          const i = Number((ev.currentTarget as HTMLInputElement).value);
          if (events[i]) props.onSeq(events[i].seq);
        }}
      />
      <span class="scrub-at" data-seq={e?.seq ?? ""}>
        {e ? `#${e.seq} ${e.type}` : "no events"} <span class="muted">{e ? `+${duration(e.ts - t0)} of ${duration(t1 - t0)}` : ""}</span>
      </span>
      <button class={props.live ? "on live" : "live"} aria-pressed={props.live} onClick={props.onLive} title="follow the newest event">
        ● live
      </button>
    </div>
  );
}
