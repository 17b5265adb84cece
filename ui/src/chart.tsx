// A line chart of one attribute (uPlot: small, fast, drawn on a canvas).

import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

/** `mark`: the x of the scrubber's event (a seq, or its time), drawn as a vertical line; null when live. */
export function Chart(props: { title: string; xs: number[]; ys: number[]; time: boolean; mark?: number | null }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const mark = useRef<number | null>(null);
  mark.current = props.mark ?? null;
  useEffect(() => {
    const el = box.current!;
    const dark = matchMedia("(prefers-color-scheme: dark)").matches;
    const ink = dark ? "#c9d1d9" : "#24292f";
    const grid = dark ? "#30363d" : "#e5e7eb";
    const axis = { stroke: ink, grid: { stroke: grid }, ticks: { stroke: grid } };
    plot.current = new uPlot(
      {
        width: Math.max(300, el.clientWidth || 600),
        height: 280,
        scales: { x: { time: props.time } },
        axes: [axis, axis],
        series: [{ label: props.time ? "time" : "event" }, { label: props.title, stroke: "#792ee5", width: 2, points: { show: props.ys.length < 200 } }],
        legend: { show: true },
        hooks: {
          draw: [
            (u: uPlot) => {
              if (mark.current === null) return;
              const x = u.valToPos(mark.current, "x", true);
              const { top, height } = u.bbox;
              u.ctx.save();
              u.ctx.strokeStyle = "#e5792e";
              u.ctx.lineWidth = 2 * devicePixelRatio;
              u.ctx.setLineDash([4 * devicePixelRatio, 3 * devicePixelRatio]);
              u.ctx.beginPath();
              u.ctx.moveTo(x, top);
              u.ctx.lineTo(x, top + height);
              u.ctx.stroke();
              u.ctx.restore();
            },
          ],
        },
      },
      [props.xs, props.ys],
      el,
    );
    return () => {
      plot.current?.destroy();
      plot.current = null;
    };
  }, [props.title, props.time]);
  useEffect(() => {
    plot.current?.setData([props.xs, props.ys]);
  }, [props.xs, props.ys]);
  useEffect(() => {
    plot.current?.redraw(false);
  }, [props.mark]);
  return <div class="chart" ref={box} aria-label={`chart of ${props.title}`} data-mark={props.mark ?? ""} />;
}
