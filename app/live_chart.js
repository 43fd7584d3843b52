// The browser half of app/live_chart.py: keeps the points it was sent, appends each message's new ones, and draws
// them with uPlot (loaded once per page from the app's static folder). A message it cannot follow on from makes it
// ask the server for everything again ("resend"), and it keeps showing what it has until that arrives.

const charts = new WeakMap();  // the component's element → what it holds and its uPlot
let library;  // one import of uPlot (and its stylesheet) per page

function uPlotFrom(base) {
  if (!library) {
    const sheet = document.createElement("link");
    sheet.rel = "stylesheet";
    sheet.href = new URL(base + "uPlot.min.css", location.origin).href;
    document.head.appendChild(sheet);
    library = import(new URL(base + "uPlot.esm.js", location.origin).href).then((module) => module.default);
    library.catch(() => { library = undefined; });  // the next message tries again
  }
  return library;
}

// Takes in `message` if it follows on from what `chart` holds: a full series (every start 0), or the same
// generation with each series' start at or before the points held. Returns false if it cannot (it missed too many).
function take(chart, message) {
  const full = message.series.every((s) => s.start === 0);
  if (!full) {
    if (chart.generation !== message.generation || chart.series.length !== message.series.length) return false;
    const behind = message.series.some((s, i) => {
      const held = chart.series[i].x.length;
      return held < s.start || held > s.start + s.x.length;
    });
    if (behind) return false;
  }
  const before = JSON.stringify([chart.generation, chart.series.map((s) => s.x.length), chart.marks]);
  if (full) {
    chart.series = message.series.map((s) => ({ ...s, x: [...s.x], y: [...s.y], s: s.s ? [...s.s] : null }));
  } else {
    message.series.forEach((s, i) => {
      const held = chart.series[i];
      const from = held.x.length - s.start;
      held.x.push(...s.x.slice(from));
      held.y.push(...s.y.slice(from));
      if (held.s) held.s.push(...s.s.slice(from));
    });
  }
  chart.marks = message.marks;
  chart.generation = message.generation;
  chart.settings = message;
  chart.changed = before !== JSON.stringify([chart.generation, chart.series.map((s) => s.x.length), chart.marks]);
  return true;
}

// uPlot wants one x array shared by every line: the union of the series' steps, null where a series has no point.
function aligned(chart) {
  const lines = [];
  for (const s of chart.series) {
    lines.push([s.x, s.y]);
    if (s.s) lines.push([s.x, s.s]);
  }
  for (const mark of chart.marks) lines.push([mark.x, mark.y]);
  const steps = new Set();
  for (const [x] of lines) for (const step of x) steps.add(step);
  const xs = Float64Array.from(steps).sort();
  const where = new Map();
  xs.forEach((step, i) => where.set(step, i));
  return [xs, ...lines.map(([x, y]) => {
    const column = new Array(xs.length).fill(null);
    x.forEach((step, i) => { column[where.get(step)] = y[i]; });
    return column;
  })];
}

function faded(colour) { return colour + "55"; }

function options(chart, width) {
  const settings = chart.settings;
  const text = getComputedStyle(chart.root).color || "#31333f";
  const grid = { stroke: "rgba(128, 128, 128, 0.18)", width: 1 };
  const series = [{ label: "step" }];
  for (const s of chart.series) {
    const line = { spanGaps: true, points: { show: false } };
    if (s.s) {
      series.push({ ...line, label: `${s.name} (raw)`, stroke: faded(s.color), width: 1 });
      series.push({ ...line, label: s.name, stroke: s.color, width: 2 });
    } else {
      series.push({ ...line, label: s.name, stroke: s.color, width: 1.5 });
    }
  }
  for (const mark of chart.marks) {
    series.push({ label: mark.label, stroke: "#000000", paths: () => null,
                  points: { show: true, size: 10, width: 1, stroke: "#000000", fill: "#d62728" } });
  }
  return {
    title: settings.title, width, height: settings.height, series,
    scales: { x: { time: false }, y: settings.log_y ? { distr: 3, log: 10 } : {} },
    axes: [{ stroke: text, grid, ticks: grid, label: "step" }, { stroke: text, grid, ticks: grid, size: 60 }],
    cursor: { drag: { x: true, y: false } },
    hooks: {
      setSelect: [(plot) => { if (plot.select.width > 0) chart.zoomed = true; }],
      setCursor: [showLatest],  // the pointer left the plot: the legend goes back to the latest values
      setScale: [(plot, key) => {  // the steps in view (read by the browser tests)
        if (key === "x") chart.root.dataset.steps = `${plot.scales.x.min},${plot.scales.x.max}`;
      }],
    },
  };
}

// Without the pointer on the plot the legend shows the last step's values (uPlot's own shows "--").
function showLatest(plot) {
  if (plot.cursor.idx == null && plot.data[0].length) plot.setLegend({ idx: plot.data[0].length - 1 });
}

function shapeOf(chart) {
  const s = chart.settings;
  return JSON.stringify([s.title, s.height, s.log_y, chart.series.map((x) => [x.name, !!x.s]),
                         chart.marks.map((m) => m.label)]);
}

function draw(chart, uPlot) {
  const width = Math.max(chart.root.clientWidth, 200);
  const shape = shapeOf(chart);
  const data = aligned(chart);
  if (!chart.plot || chart.shape !== shape) {
    chart.plot?.destroy();
    chart.plot = new uPlot(options(chart, width), data, chart.root);
    chart.shape = shape;
    chart.zoomed = false;
    chart.plot.over.addEventListener("dblclick", () => { chart.zoomed = false; });
    // the faint raw lines stay out of the legend: their smoothed lines stand for them
    const rows = chart.plot.root.querySelectorAll(".u-legend .u-series");
    chart.plot.series.forEach((s, i) => { if (s.label.endsWith(" (raw)") && rows[i]) rows[i].style.display = "none"; });
  } else {
    chart.plot.setData(data, !chart.zoomed);  // a person's zoom is kept while points arrive
  }
  showLatest(chart.plot);
  // read by the browser tests and bench/viewers.py: what is on screen now
  chart.root.dataset.lastStep = String(data[0].length ? data[0][data[0].length - 1] : 0);
  chart.root.dataset.points = String(Math.max(0, ...chart.series.map((s) => s.x.length)));
}

export default function ({ parentElement, data, setTriggerValue }) {
  let chart = charts.get(parentElement);
  if (!chart) {
    parentElement.querySelectorAll(":scope > .live-chart").forEach((stale) => stale.remove());
    const root = document.createElement("div");
    root.className = "live-chart";
    parentElement.appendChild(root);
    chart = { root, generation: null, series: [], marks: [], plot: null, asked: null };
    chart.resized = new ResizeObserver(() => {
      const width = Math.max(root.clientWidth, 200);
      if (chart.plot && Math.abs(chart.plot.width - width) > 1) chart.plot.setSize({ width, height: chart.settings.height });
    });
    chart.resized.observe(root);
    // Streamlit also calls this when a newer message overtook one still being loaded, with the element kept:
    // the chart goes only once the element has left the page.
    chart.cleanup = () => setTimeout(() => {
      if (parentElement.isConnected) return;
      chart.resized.disconnect();
      chart.plot?.destroy();
      charts.delete(parentElement);
    }, 0);
    charts.set(parentElement, chart);
  }
  if (!take(chart, data)) {
    const message = `${data.generation}:${data.series.map((s) => s.start + s.x.length).join(",")}`;
    if (chart.asked !== message) {  // once per message: the answer is a full series in a new generation
      chart.asked = message;
      setTriggerValue("resend", message);
    }
  } else if (chart.changed || !chart.plot) {
    uPlotFrom(data.asset_base).then((uPlot) => draw(chart, uPlot), (error) => {
      chart.root.textContent = `${data.title}: the chart library could not be loaded from ${data.asset_base} ` +
        `(${error}). Start the app with \`python -m app\`, which serves app/static/.`;
    });
  }
  return chart.cleanup;
}
