import { describe, expect, it } from "vitest";
import { coalescer } from "./coalesce";
import {
  CHECKPOINT_EVERY,
  Timeline,
  apply,
  callsOf,
  filterEvents,
  numericAttributes,
  pathsOf,
  seriesOf,
  treeOf,
  type EventRec,
} from "./fold";

let seq = 0;
const ev = (type: string, body: any, source = "kernel"): EventRec => ({ seq: ++seq, id: `e${seq}`, type, version: 1, ts: 1000 + seq, source, body });

function created(): EventRec {
  seq = 0;
  return ev("run.created", {
    name: "app",
    components: {
      root: { kind: "flow", vars: { phase: "prep" }, spec: {} },
      "root.train": { kind: "work", vars: { step: 0, metrics: { loss: 1 } }, spec: { cloud_compute: { name: "gpu" } } },
      "root.sub": { kind: "flow", vars: {}, spec: {} },
      "root.sub.w": { kind: "work", vars: { out: { type: "__path__", path: "lit://out" } }, spec: {} },
    },
  });
}

describe("apply", () => {
  it("folds vars, a Work's status of its newest call, and fences superseded workers", () => {
    const calls = new Map();
    let s = apply(null, created(), calls)!;
    expect(s.works["root.train"].stage).toBe("not_started");
    s = apply(s, ev("work.run_requested", { work: "root.train", call: "c1", index: 1, args: [3], kwargs: {} }), calls)!;
    expect(s.works["root.train"].stage).toBe("pending");
    s = apply(s, ev("work.worker_started", { work: "root.train", attempt: 1, executor: "local", ref: { pid: 7 } }), calls)!;
    s = apply(s, ev("work.status_changed", { work: "root.train", call: "c1", stage: "running", attempt: 1 }), calls)!;
    s = apply(s, ev("work.state_changed", { work: "root.train", changes: { step: 5 }, attempt: 1 }), calls)!;
    expect(s.components["root.train"].vars).toEqual({ step: 5, metrics: { loss: 1 } });
    // Worker 1 is over; what it still says does not count.
    s = apply(s, ev("work.worker_exited", { work: "root.train", attempt: 1, cause: "preempted" }), calls)!;
    s = apply(s, ev("work.state_changed", { work: "root.train", changes: { step: 99 }, attempt: 1 }), calls)!;
    expect(s.components["root.train"].vars.step).toBe(5);
    // An older call's status does not change the Work's status.
    s = apply(s, ev("work.run_requested", { work: "root.train", call: "c2", index: 2, args: [], kwargs: {} }), calls)!;
    s = apply(s, ev("work.status_changed", { work: "root.train", call: "c1", stage: "succeeded" }), calls)!;
    expect(s.works["root.train"].stage).toBe("pending");
    s = apply(s, ev("flow.state_changed", { changes: { root: { phase: "train" } } }), calls)!;
    s = apply(s, ev("run.ended", { status: "succeeded", message: "done" }), calls)!;
    expect(s.run).toMatchObject({ status: "succeeded", message: "done", seq });
    expect(s.components.root.vars.phase).toBe("train");
  });

  it("never mutates a state it returned, and ignores a body that does not fit", () => {
    const calls = new Map();
    const a = apply(null, created(), calls)!;
    const frozen = JSON.stringify(a);
    const b = apply(a, ev("work.state_changed", { work: "root.train", changes: { step: 1 } }), calls)!;
    apply(b, ev("flow.state_changed", { changes: null }), calls);
    expect(JSON.stringify(a)).toBe(frozen);
    expect(b.components["root.train"].vars.step).toBe(1);
    const c = apply(b, ev("flow.state_changed", { nonsense: 1 }), calls)!;
    expect(c.components).toEqual(b.components);
    expect(c.run.seq).toBe(seq);
  });

  it("adds components at run time", () => {
    const calls = new Map();
    let s = apply(null, created(), calls)!;
    s = apply(s, ev("component.added", { name: "root.extra", kind: "work", vars: { n: 1 }, spec: {} }), calls)!;
    expect(s.works["root.extra"].stage).toBe("not_started");
    expect(treeOf(s)!.children.map((c) => c.key)).toEqual(["train", "sub", "extra"]);
    expect(treeOf(s)!.children[1].children[0].name).toBe("root.sub.w");
  });
});

describe("Timeline", () => {
  function long(n: number): Timeline {
    const tl = new Timeline("r1");
    const batch = [created()];
    for (let i = 1; i < n; i++) batch.push(ev("work.state_changed", { work: "root.train", changes: { step: i } }));
    tl.append(batch);
    return tl;
  }

  it("gives the state just after any event, as a fold from the start does", () => {
    const tl = long(3 * CHECKPOINT_EVERY + 17);
    for (const at of [1, 2, CHECKPOINT_EVERY, CHECKPOINT_EVERY + 1, 2 * CHECKPOINT_EVERY - 1, tl.lastSeq - 1, tl.lastSeq]) {
      let s = null;
      const calls = new Map();
      for (const e of tl.events) if (e.seq <= at) s = apply(s, e, calls);
      expect(tl.stateAt(at)!.components).toEqual(s!.components);
      expect(tl.stateAt(at)!.run.id).toBe("r1");
    }
    expect(tl.stateAt(0)).toBeNull();
    expect(tl.stateAt(tl.lastSeq + 100)).toBe(tl.head);
  });

  it("skips events it holds (a stream that reconnects sends them again)", () => {
    const tl = long(10);
    expect(tl.append(tl.events.slice(-3))).toBe(0);
    expect(tl.events.length).toBe(10);
  });

  it("scrubs a run of 100k events from its checkpoints (the figure is printed, not timed)", () => {
    const tl = long(100_000);
    const t0 = performance.now();
    for (let i = 0; i < 200; i++) tl.stateAt(1 + Math.floor((i * 99_991) % 100_000));
    const perScrub = (performance.now() - t0) / 200;
    expect(tl.stateAt(50_000)!.components["root.train"].vars.step).toBe(49_999);
    const f0 = performance.now();
    expect(filterEvents(tl.events, { component: "root.train" }).length).toBe(100_000);
    const filter = performance.now() - f0;
    console.log(`100k events: ${perScrub.toFixed(2)} ms a scrub, ${filter.toFixed(1)} ms a filter`);
  });
});

describe("what the page derives", () => {
  it("lists calls with arguments, times and attempts, up to an event", () => {
    const events = [
      created(),
      ev("work.run_requested", { work: "root.train", call: "c1", index: 1, args: [1], kwargs: { k: 2 } }),
      ev("work.status_changed", { work: "root.train", call: "c1", stage: "running", attempt: 1 }),
      ev("work.status_changed", { work: "root.train", call: "c1", stage: "running", attempt: 2 }),
      ev("work.status_changed", { work: "root.train", call: "c1", stage: "succeeded", attempt: 2 }),
    ];
    const [c] = callsOf(events, "root.train");
    expect(c).toMatchObject({ call: "c1", args: [1], kwargs: { k: 2 }, stage: "succeeded", attempts: [1, 2], started: 1003, ended: 1005 });
    expect(callsOf(events, "root.train", 3)[0].stage).toBe("running");
  });

  it("plots a numeric attribute, nested ones too, from its first value", () => {
    const events = [
      created(),
      ev("work.state_changed", { work: "root.train", changes: { step: 1, metrics: { loss: 0.5 } } }),
      ev("work.state_changed", { work: "root.train", changes: { step: 2 } }),
      ev("work.state_changed", { work: "root.train", changes: { metrics: { loss: 0.25 } } }),
    ];
    expect(seriesOf(events, "root.train", ["step"]).value).toEqual([0, 1, 2]);
    expect(seriesOf(events, "root.train", ["metrics", "loss"])).toEqual({ seq: [1, 2, 4], ts: [1001, 1002, 1004], value: [1, 0.5, 0.25] });
    expect(numericAttributes({ step: 1, name: "x", ok: true, metrics: { loss: 1, acc: 0.5 } })).toEqual([["step"], ["metrics", "loss"], ["metrics", "acc"]]);
  });

  it("finds Paths in attributes and the ones persisted", () => {
    const events = [
      created(),
      ev("work.record", { work: "root.sub.w", kind: "path.persisted", data: { path: "lit://out", files: 2, bytes: 10 } }),
    ];
    const tl = new Timeline("r");
    tl.append(events);
    expect(pathsOf(events, tl.head, "root.sub.w")).toEqual([{ path: "lit://out", attribute: "out", persisted: { path: "lit://out", files: 2, bytes: 10 } }]);
    expect(pathsOf(events, tl.head, "root.sub.w", 1)[0].persisted).toBeNull();
  });

  it("filters events by component (and those under it), kind and text", () => {
    const events = [
      created(),
      ev("flow.state_changed", { changes: { "root.sub": { x: 1 } } }),
      ev("work.state_changed", { work: "root.sub.w", changes: { y: 2 } }),
      ev("work.state_changed", { work: "root.train", changes: { step: 3 } }),
    ];
    expect(filterEvents(events, { component: "root.sub" })).toEqual([0, 1, 2]);
    expect(filterEvents(events, { kind: "work." })).toEqual([2, 3]);
    expect(filterEvents(events, { kind: "flow.state_changed" })).toEqual([1]);
    expect(filterEvents(events, { text: "step=3" })).toEqual([3]);
  });
});

describe("coalescing", () => {
  it("hands over everything pushed before a frame in one call", () => {
    const ticks: (() => void)[] = [];
    const got: number[][] = [];
    const c = coalescer<number>((items) => got.push(items), (run) => ticks.push(run));
    for (let i = 0; i < 1000; i++) c.push(i);
    expect(ticks.length).toBe(1);
    ticks.shift()!();
    c.push(1000);
    ticks.shift()!();
    expect(got.map((g) => g.length)).toEqual([1000, 1]);
  });
});
