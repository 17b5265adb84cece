// Small pieces the pages share: status badges, a tree of nested values, a confirmation, a
// virtualised list.

import type { ComponentChildren } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { short } from "./format";

export function Badge({ status }: { status: string }) {
  return <span class={`badge s-${status.replace(/[^a-z_]/g, "")}`} data-status={status}>{status.replace("_", " ")}</span>;
}

/** A value as a tree: objects and lists fold open and closed; leaves are JSON. */
export function ValueTree({ value, name, depth = 0 }: { value: unknown; name?: string; depth?: number }) {
  const [open, setOpen] = useState(depth < 2);
  const label = name !== undefined ? <span class="key">{name}</span> : null;
  if (value !== null && typeof value === "object") {
    const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v] as const) : Object.entries(value);
    return (
      <div class="vt">
        <button class="vt-toggle" aria-expanded={open} onClick={() => setOpen(!open)}>
          {open ? "▾" : "▸"} {label} <span class="muted">{Array.isArray(value) ? `[${entries.length}]` : `{${entries.length}}`}</span>
        </button>
        {open && (
          <div class="vt-children">
            {entries.map(([k, v]) => (
              <ValueTree key={k} name={k} value={v} depth={depth + 1} />
            ))}
          </div>
        )}
      </div>
    );
  }
  return (
    <div class="vt vt-leaf" data-attr={name}>
      {label}
      {label && ": "}
      <span class={`val t-${value === null ? "null" : typeof value}`}>{short(value, 400)}</span>
    </div>
  );
}

/** A modal question; `onAnswer(true)` when confirmed. Escape cancels, Enter confirms. */
export function Confirm(props: { title: string; children: ComponentChildren; action: string; onAnswer: (yes: boolean) => void }) {
  const ok = useRef<HTMLButtonElement>(null);
  useEffect(() => ok.current?.focus(), []);
  return (
    <div class="modal-back" onKeyDown={(e) => e.key === "Escape" && props.onAnswer(false)}>
      <div class="modal" role="dialog" aria-modal="true" aria-label={props.title}>
        <h3>{props.title}</h3>
        <div>{props.children}</div>
        <div class="modal-actions">
          <button onClick={() => props.onAnswer(false)}>Cancel</button>
          <button ref={ok} class="danger" onClick={() => props.onAnswer(true)}>
            {props.action}
          </button>
        </div>
      </div>
    </div>
  );
}

/** Rows of a fixed height, only those in view drawn: a list of 100k events scrolls as one of 50. */
export function VirtualList(props: {
  count: number;
  rowHeight: number;
  height: number;
  row: (i: number) => ComponentChildren;
  scrollTo?: number | null; // an index to bring into view
  stickToEnd?: boolean;
  label?: string;
}) {
  const box = useRef<HTMLDivElement>(null);
  const [top, setTop] = useState(0);
  const { count, rowHeight, height } = props;
  useEffect(() => {
    const el = box.current;
    if (!el || props.scrollTo === undefined || props.scrollTo === null) return;
    const y = props.scrollTo * rowHeight;
    if (y < el.scrollTop || y > el.scrollTop + height - rowHeight) el.scrollTop = Math.max(0, y - height / 2);
  }, [props.scrollTo, rowHeight, height]);
  useEffect(() => {
    const el = box.current;
    if (el && props.stickToEnd) el.scrollTop = el.scrollHeight;
  }, [count, props.stickToEnd]);
  const first = Math.max(0, Math.floor(top / rowHeight) - 10);
  const last = Math.min(count, Math.ceil((top + height) / rowHeight) + 10);
  const rows = [];
  for (let i = first; i < last; i++)
    rows.push(
      <div class="vrow" key={i} style={{ top: i * rowHeight, height: rowHeight }}>
        {props.row(i)}
      </div>,
    );
  return (
    <div
      ref={box}
      class="vlist"
      role="list"
      aria-label={props.label}
      style={{ height }}
      onScroll={(e) => setTop((e.currentTarget as HTMLDivElement).scrollTop)}
    >
      <div style={{ height: count * rowHeight, position: "relative" }}>{rows}</div>
    </div>
  );
}
