import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export interface ChartSeries {
  label: string;
  /** One value per x; null: no data there (a gap). */
  values: (number | null)[];
  /** Formats a value for the axis, the legend and the table. */
  format?: (value: number) => string;
  color?: string;
}

/**
 * A time chart drawn with uPlot (canvas, hidden from screen readers) and the same numbers in a
 * table visible to screen readers only.
 */
export function Chart({
  title,
  times,
  series,
  height = 220,
  yMax,
}: {
  title: string;
  /** The top of the y scale (100 for a percentage); without it, a little over the data's maximum. The bottom is 0. */
  yMax?: number;
  /** Unix seconds, oldest first. */
  times: number[];
  series: ChartSeries[];
  height?: number;
}) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    // Canvas knows no currentColor: the axes take the text colour of the theme in force.
    const ink = getComputedStyle(el).color || '#888';
    const grid = { stroke: 'rgba(128, 128, 128, 0.25)', width: 1 };
    const fmt = (s: ChartSeries) => (_: uPlot, v: number | null) =>
      v === null || v === undefined ? '—' : s.format ? s.format(v) : String(v);
    const opts: uPlot.Options = {
      width: Math.max(el.clientWidth, 300),
      height,
      series: [
        {},
        ...series.map((s, i) => ({
          label: s.label,
          stroke: s.color ?? (i === 0 ? '#1e88e5' : '#e53935'),
          width: 2,
          spanGaps: false,
          value: fmt(s),
        })),
      ],
      axes: [
        { stroke: ink, grid, ticks: grid },
        {
          stroke: ink,
          grid,
          ticks: grid,
          values: (_u, ticks) => ticks.map((t) => (series[0]?.format ? series[0].format(t) : String(t))),
        },
      ],
      scales: {
        x: { time: true },
        // At least 0 to 5: whole-number ticks however small the values.
        y: { range: (_u, _min, max) => [0, yMax ?? Math.max(max * 1.1, 5)] },
      },
    };
    const data = [times, ...series.map((s) => s.values)] as uPlot.AlignedData;
    const plot = new uPlot(opts, data, el);
    const resize = new ResizeObserver(() => plot.setSize({ width: Math.max(el.clientWidth, 300), height }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      plot.destroy();
    };
  }, [times, series, height, yMax]);
  return (
    <figure class="chart">
      <figcaption>{title}</figcaption>
      <div ref={box} aria-hidden="true" class="chart-canvas" />
      <table class="visually-hidden">
        <caption>{title}</caption>
        <thead>
          <tr>
            <th scope="col">Time</th>
            {series.map((s) => (
              <th scope="col" key={s.label}>
                {s.label}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {times.map((t, i) => (
            <tr key={t}>
              <th scope="row">{new Date(t * 1000).toISOString()}</th>
              {series.map((s) => {
                const v = s.values[i];
                return <td key={s.label}>{v === null || v === undefined ? 'no data' : s.format ? s.format(v) : String(v)}</td>;
              })}
            </tr>
          ))}
        </tbody>
      </table>
    </figure>
  );
}
