// The runs: live from GET /api/runs/stream, filtered by status and name.

import { useEffect, useMemo, useState } from "preact/hooks";
import { listen, pageUrl, type Run } from "./api";
import { duration, time } from "./format";
import { RUN_ENDED } from "./fold";
import { Badge } from "./widgets";

export function RunsPage() {
  const [runs, setRuns] = useState<Run[] | null>(null);
  const [status, setStatus] = useState("");
  const [name, setName] = useState("");
  const [now, setNow] = useState(Date.now() / 1000);
  useEffect(() => listen("/api/runs/stream?limit=200", ["runs"], (_, data) => setRuns(data)), []);
  useEffect(() => {
    // Durations of running runs go on between messages.
    const t = setInterval(() => setNow(Date.now() / 1000), 1000);
    return () => clearInterval(t);
  }, []);
  useEffect(() => {
    document.title = "Runs · lightning-kernel";
  }, []);
  const statuses = useMemo(() => [...new Set((runs ?? []).map((r) => r.status))].sort(), [runs]);
  const shown = (runs ?? []).filter(
    (r) =>
      (!status || r.status === status) &&
      (!name || r.name.toLowerCase().includes(name.toLowerCase()) || r.id.includes(name)),
  );
  return (
    <div class="page">
      <header class="bar">
        <span class="logo" aria-hidden="true">⚡</span>
        <h1>Runs</h1>
        <input type="search" placeholder="name or id" aria-label="filter by name" value={name} onInput={(e) => setName(e.currentTarget.value)} />
        <select aria-label="filter by status" value={status} onChange={(e) => setStatus(e.currentTarget.value)}>
          <option value="">every status</option>
          {statuses.map((s) => (
            <option key={s} value={s}>
              {s}
            </option>
          ))}
        </select>
      </header>
      {runs === null ? (
        <p class="muted pad">loading…</p>
      ) : !runs.length ? (
        <p class="muted pad">
          No runs yet: <code>lightning-kernel run app app.py</code> starts one.
        </p>
      ) : (
        <table class="runs">
          <thead>
            <tr>
              <th>status</th>
              <th>name</th>
              <th>run</th>
              <th>started</th>
              <th>duration</th>
              <th class="num">last event</th>
            </tr>
          </thead>
          <tbody>
            {shown.map((r) => (
              <tr key={r.id} data-run={r.id}>
                <td>
                  <Badge status={r.status} />
                </td>
                <td>
                  <a href={pageUrl(r.id)}>{r.name}</a>
                </td>
                <td class="mono">{r.id}</td>
                <td>{time(r.created_at)}</td>
                <td>{duration((RUN_ENDED.has(r.status) || r.status === "interrupted" ? r.updated_at : now) - r.created_at)}</td>
                <td class="num">{r.events}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}
