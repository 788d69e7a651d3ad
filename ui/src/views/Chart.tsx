// A small time-series chart (uPlot): one series per path, the x axis in seconds since the epoch.
import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";

const PALETTE = ["#1565c0", "#c62828", "#2e7d32", "#6a1b9a", "#ef6c00", "#00838f", "#4e342e", "#ad1457"];

export interface Series {
  label: string;
  points: [number, number | null][]; // [unix seconds, value]
}

export function Chart({ title, unit, series, width = 560 }: { title: string; unit: string; series: Series[]; width?: number }) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!box.current) return;
    // One x axis for every series: the union of their times.
    const xs = [...new Set(series.flatMap((s) => s.points.map((p) => p[0])))].sort((a, b) => a - b);
    const index = new Map(xs.map((x, i) => [x, i]));
    const data: (number | null)[][] = [xs];
    for (const s of series) {
      const ys: (number | null)[] = new Array(xs.length).fill(null);
      for (const [x, y] of s.points) ys[index.get(x) as number] = y;
      data.push(ys);
    }
    const plot = new uPlot(
      {
        title,
        width,
        height: 200,
        scales: { x: { time: true } },
        legend: { show: false },
        axes: [{}, { label: unit, size: 60 }],
        series: [{}, ...series.map((s, i) => ({ label: s.label, stroke: PALETTE[i % PALETTE.length], width: 1.5, spanGaps: true }))],
      },
      data as uPlot.AlignedData,
      box.current,
    );
    return () => plot.destroy();
  }, [title, unit, series, width]);
  const summary = series
    .map((s) => {
      const last = [...s.points].reverse().find((p) => p[1] !== null);
      return `${s.label}: ${last ? `${(last[1] as number).toFixed(2)} ${unit}` : "no data"}`;
    })
    .join("; ");
  return (
    <figure class="chart-fig">
      <div class="chart" ref={box} role="img" aria-label={`${title}, latest: ${summary || "no data"}`} />
      <figcaption>
        {series.map((s, i) => (
          <span key={s.label} class="key">
            <span class="swatch" style={{ background: PALETTE[i % PALETTE.length] }} /> {s.label}
          </span>
        ))}
      </figcaption>
    </figure>
  );
}
