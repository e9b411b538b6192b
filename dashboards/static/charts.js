"use strict";
// crampwatch charts: Chart.js (vendor/chart.umd.min.js) draws what the server embedded in the
// page as JSON (<script type="application/json">), one builder per chart type. Times arrive as
// milliseconds since 1970 (UTC) and are written as clock times in the dashboard's zone.

(function () {
  const ZONE = document.body.dataset.tz || undefined;
  const COLOURS = {
    cramp: "#c0392b", crampSoft: "#e8a39b", movement: "#e6a23c", problem: "rgba(152,162,179,0.55)",
    marker: "#2e6fd8", calm: "#2e7d32", nodata: "#b0b6c0", rejected: "#8d6e63", line: "#1d2430",
    overlay: "#e67e22", grid: "#e4e7ec", systolic: "#7b3fa0", diastolic: "#b48ad0", uf: "#1f8a8a",
  };
  const format = (options) => {
    try { return new Intl.DateTimeFormat("en-GB", { ...options, timeZone: ZONE }); }
    catch (error) { return new Intl.DateTimeFormat("en-GB", options); }
  };
  const hm = format({ hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
  const hms = format({ hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" });
  const clock = (ms) => hm.format(new Date(ms));
  const clockS = (ms) => hms.format(new Date(ms));
  const instances = new Map();
  const narrow = () => window.matchMedia("(max-width: 639px)").matches;

  function minuteOfHour(ms) {
    const part = hm.formatToParts(new Date(ms)).find((p) => p.type === "minute");
    return part ? Number(part.value) : 0;
  }

  // Whole hours in the dashboard's zone, every `stepHours`.
  function hourTicks(from, to, stepHours) {
    let t = Math.ceil(from / 60000) * 60000;
    const minute = minuteOfHour(t);
    if (minute) t += (60 - minute) * 60000;
    const ticks = [];
    for (; t <= to; t += stepHours * 3600e3) ticks.push({ value: t });
    return ticks;
  }

  function timeline(data) {
    const span = (data.to - data.from) / 3600e3;
    const step = Math.max(1, Math.ceil(span / (narrow() ? 5 : 10)));
    const kinds = [
      ["cramp", "cramp", COLOURS.cramp, 0.8],
      ["rejected", "not a cramp (your word)", COLOURS.rejected, 0.6],
      ["movement", "movement", COLOURS.movement, 0.45],
      ["problem", "signal problem", COLOURS.problem, 0.95],
    ];
    const datasets = kinds.map(([kind, label, colour, thickness]) => ({
      label,
      data: data.bars.filter((b) => b.kind === kind).map((b) => ({ x: [b.from, b.to], y: b.lane, bar: b })),
      backgroundColor: colour,
      barPercentage: thickness,
      categoryPercentage: 1,
      grouped: false,
      minBarLength: kind === "cramp" ? 5 : 2,
      order: kind === "problem" ? 3 : 1,
    }));
    datasets.push({
      type: "scatter",
      label: "button press",
      data: data.markers.map((m) => ({ x: m.at, y: "button", bar: { label: m.label, from: m.at, to: m.at } })),
      backgroundColor: COLOURS.marker,
      pointStyle: "triangle",
      pointRadius: 7,
      order: 0,
    });
    return {
      type: "bar",
      data: { labels: data.lanes, datasets },
      options: {
        indexAxis: "y",
        scales: {
          x: {
            type: "linear", min: data.from, max: data.to, bounds: "data",
            afterBuildTicks: (axis) => { axis.ticks = hourTicks(data.from, data.to, step); },
            ticks: { callback: (value) => clock(value), autoSkip: false, maxRotation: 0, font: { size: 12 } },
            title: { display: true, text: "clock time", font: { size: 12 } },
            grid: { color: COLOURS.grid },
          },
          y: { ticks: { font: { size: 13, weight: "600" } }, grid: { display: false }, afterFit: fixedWidth(data.axis_px) },
        },
        layout: { padding: { right: data.pad_right || 0 } },
        plugins: {
          legend: { display: false },
          tooltip: {
            callbacks: {
              title: (items) => items.length ? `${items[0].raw.y}` : "",
              label: (item) => {
                const bar = item.raw.bar;
                const when = bar.from === bar.to ? clockS(bar.from) : `${clockS(bar.from)}–${clockS(bar.to)}`;
                return `${when}: ${bar.label}`;
              },
            },
          },
        },
        onClick: (event, elements, chart) => {
          if (!elements.length) return;
          const raw = chart.data.datasets[elements[0].datasetIndex].data[elements[0].index];
          if (raw.bar && raw.bar.href) location.href = raw.bar.href;
        },
      },
    };
  }

  // A value axis of a fixed width, so that charts stacked on one time axis line up.
  function fixedWidth(px) {
    return px ? (axis) => { axis.width = px; } : undefined;
  }

  // A named session (dialysis): blood pressure readings and the ultrafiltration removed so far,
  // on the same clock-time axis as the session's timeline above it.
  function session(data) {
    const span = (data.to - data.from) / 3600e3;
    const step = Math.max(1, Math.ceil(span / (narrow() ? 5 : 10)));
    const points = (pairs) => pairs.map(([x, y]) => ({ x, y }));
    const datasets = [
      { type: "line", label: "systolic (mmHg)", data: points(data.systolic), borderColor: COLOURS.systolic, backgroundColor: COLOURS.systolic,
        pointRadius: 4, borderWidth: 2, yAxisID: "y" },
      { type: "line", label: "diastolic (mmHg)", data: points(data.diastolic), borderColor: COLOURS.diastolic, backgroundColor: COLOURS.diastolic,
        pointRadius: 3, borderWidth: 1.5, yAxisID: "y" },
    ];
    if (data.uf.length) {
      datasets.push({ type: "line", label: data.uf_measured ? "ultrafiltration so far (mL)" : "ultrafiltration at a constant rate (mL)",
        data: points(data.uf), borderColor: COLOURS.uf, backgroundColor: COLOURS.uf, borderDash: data.uf_measured ? [] : [6, 4],
        pointRadius: data.uf_measured ? 3 : 0, borderWidth: 2, yAxisID: "y2" });
    }
    if (data.systolic.length) {
      datasets.push({ type: "line", label: `${data.nadir_line} mmHg`, data: [{ x: data.from, y: data.nadir_line }, { x: data.to, y: data.nadir_line }],
        borderColor: COLOURS.cramp, borderWidth: 1, borderDash: [2, 3], pointRadius: 0, yAxisID: "y" });
    }
    return {
      type: "line",
      data: { datasets },
      options: {
        parsing: true,
        scales: {
          x: {
            type: "linear", min: data.from, max: data.to, bounds: "data",
            afterBuildTicks: (axis) => { axis.ticks = hourTicks(data.from, data.to, step); },
            ticks: { callback: (value) => clock(value), autoSkip: false, maxRotation: 0, font: { size: 12 } },
            grid: { color: COLOURS.grid },
          },
          y: { position: "left", suggestedMin: 60, suggestedMax: 160, title: { display: true, text: "mmHg" }, grid: { color: COLOURS.grid },
            afterFit: fixedWidth(data.axis_px) },
          y2: { position: "right", beginAtZero: true, display: data.uf.length > 0, title: { display: true, text: "mL" }, grid: { drawOnChartArea: false },
            afterFit: fixedWidth(data.pad_right) },
        },
        layout: { padding: { right: data.uf.length ? 0 : (data.pad_right || 0) } },
        plugins: {
          legend: { display: true, labels: { boxHeight: 2, font: { size: 12 } } },
          tooltip: { callbacks: { title: (items) => (items.length ? clock(items[0].raw.x) : ""),
            label: (item) => `${item.dataset.label}: ${Math.round(item.raw.y)}` } },
        },
      },
    };
  }

  // Cramps per session in each hour of treatment.
  function hours(data) {
    const h = data.hours;
    return {
      type: "bar",
      data: { labels: h.map((x) => `hour ${x.hour}`), datasets: [{ label: "cramps per session", data: h.map((x) => x.per_session), backgroundColor: COLOURS.cramp }] },
      options: {
        scales: { y: { beginAtZero: true, suggestedMax: 0.5, title: { display: true, text: "cramps per session" }, grid: { color: COLOURS.grid } },
          x: { grid: { display: false } } },
        plugins: {
          legend: { display: false },
          tooltip: { callbacks: { label: (item) => `${h[item.dataIndex].cramps} cramps in ${h[item.dataIndex].sessions} sessions (${item.raw.toFixed(2)} per session)` } },
        },
      },
    };
  }

  function nights(data) {
    const n = data.nights;
    const colour = n.map((x) => (x.state === "complete" ? COLOURS.cramp : COLOURS.crampSoft));
    const datasets = [
      { type: "bar", label: "cramps", data: n.map((x) => (x.cramps > 0 ? x.cramps : null)), backgroundColor: colour, yAxisID: "y", order: 2 },
      { type: "line", label: "recorded, no cramps", data: n.map((x) => (x.state !== "no_data" && x.cramps === 0 ? 0 : null)),
        showLine: false, pointStyle: "circle", pointRadius: 4, backgroundColor: COLOURS.calm, borderColor: COLOURS.calm, yAxisID: "y", order: 1 },
      { type: "line", label: "no data", data: n.map((x) => (x.state === "no_data" ? 0 : null)),
        showLine: false, pointStyle: "crossRot", pointRadius: 5, borderWidth: 2, borderColor: COLOURS.nodata, yAxisID: "y", order: 1 },
    ];
    const scales = {
      x: { ticks: { autoSkip: true, maxRotation: 0, font: { size: 11 } }, grid: { display: false } },
      y: { beginAtZero: true, suggestedMax: 2, ticks: { precision: 0 }, title: { display: true, text: "cramps" }, grid: { color: COLOURS.grid } },
    };
    if (data.overlay) {
      datasets.push({ type: "line", label: `${data.overlay.factor} (${data.overlay.unit})`, data: data.overlay.values,
        borderColor: COLOURS.overlay, backgroundColor: COLOURS.overlay, pointRadius: 2, borderWidth: 2, spanGaps: false, yAxisID: "y2", order: 0 });
      scales.y2 = { position: "right", beginAtZero: true, grid: { drawOnChartArea: false },
        title: { display: true, text: `${data.overlay.factor} that day (${data.overlay.unit})` } };
    }
    return {
      data: { labels: n.map((x) => x.label), datasets },
      options: {
        interaction: { mode: "index", intersect: false },
        scales,
        plugins: {
          legend: { display: false },
          tooltip: {
            filter: (item) => item.raw !== null && item.raw !== undefined,
            callbacks: {
              title: (items) => (items.length ? n[items[0].dataIndex].night : ""),
              label: (item) => {
                const night = n[item.dataIndex];
                if (item.dataset.label === "no data") return "no data: nothing recorded";
                if (item.dataset.label === "recorded, no cramps") return "recorded, no cramps";
                if (item.dataset.yAxisID === "y2") return `${item.dataset.label}: ${item.raw}`;
                const minutes = night.minutes ? `, ${night.minutes} min` : "";
                const note = night.state === "incomplete" ? " (too little signal to count)" : "";
                return `${night.cramps} cramp${night.cramps === 1 ? "" : "s"}${minutes}${note}`;
              },
            },
          },
        },
        onClick: (event, elements) => { if (elements.length) location.href = n[elements[0].index].href; },
      },
    };
  }

  function envelope(data) {
    const xs = data.points.map((p) => p[0]);
    const top = Math.max(data.peak || 0, ...data.points.map((p) => p[1]));
    const yMax = top * 1.05 || 1;
    const lo = xs[0], hi = xs[xs.length - 1];
    const end = data.end || hi;
    const mark = (x, label, colour) => ({ type: "line", label, data: [{ x, y: 0 }, { x, y: yMax }], borderColor: colour, borderWidth: 2, borderDash: [5, 4], pointRadius: 0 });
    const datasets = [
      { type: "line", label: "envelope", data: data.points.map(([x, y]) => ({ x, y })), borderColor: COLOURS.line, borderWidth: 1.4, pointRadius: 0 },
      { type: "line", label: "during the event", data: data.points.filter(([x]) => x >= data.onset && x <= end).map(([x, y]) => ({ x, y })),
        borderWidth: 0, pointRadius: 0, fill: "origin", backgroundColor: "rgba(192,57,43,0.16)" },
      mark(data.onset, `onset ${clockS(data.onset)}`, COLOURS.calm),
    ];
    if (data.end) datasets.push(mark(data.end, `end ${clockS(data.end)}`, COLOURS.marker));
    if (data.peak) datasets.push({ type: "line", label: `peak ${Math.round(data.peak)} µV`, data: [{ x: lo, y: data.peak }, { x: hi, y: data.peak }],
      borderColor: COLOURS.cramp, borderWidth: 1.5, borderDash: [2, 3], pointRadius: 0 });
    const span = (hi - lo) / 1000;
    const step = span > 1200 ? 300e3 : span > 300 ? 60e3 : span > 90 ? 30e3 : 10e3;
    return {
      data: { datasets },
      options: {
        parsing: true,
        scales: {
          x: { type: "linear", min: lo, max: hi, bounds: "data",
            afterBuildTicks: (axis) => { const ticks = []; for (let t = Math.ceil(lo / step) * step; t <= hi; t += step) ticks.push({ value: t }); axis.ticks = ticks; },
            ticks: { callback: (v) => (step >= 60e3 ? clock(v) : clockS(v)), maxRotation: 0, autoSkip: true }, title: { display: true, text: "clock time" }, grid: { color: COLOURS.grid } },
          y: { min: 0, suggestedMax: yMax, title: { display: true, text: "µV" }, grid: { color: COLOURS.grid } },
        },
        plugins: {
          legend: { display: true, labels: { filter: (item) => item.text !== "during the event", boxHeight: 2, font: { size: 12 } } },
          tooltip: { mode: "nearest", intersect: false, filter: (item) => item.dataset.label === "envelope",
            callbacks: { title: (items) => (items.length ? clockS(items[0].raw.x) : ""), label: (item) => `${item.raw.y.toFixed(1)} µV` } },
        },
      },
    };
  }

  function scatter(data) {
    return {
      type: "scatter",
      data: { datasets: [{ label: data.factor, data: data.points.map(([x, y, label]) => ({ x, y, label })), backgroundColor: "rgba(46,95,168,0.55)", pointRadius: 4 }] },
      options: {
        scales: {
          x: { beginAtZero: true, grace: "4%", title: { display: true, text: `${data.factor} that day (${data.unit || "count"})` }, grid: { color: COLOURS.grid } },
          y: { beginAtZero: true, grace: "8%", suggestedMax: 2, ticks: { precision: 0 }, title: { display: true, text: "cramps that night" }, grid: { color: COLOURS.grid } },
        },
        plugins: {
          legend: { display: false },
          tooltip: { callbacks: { label: (item) => `${item.raw.label}: ${item.raw.x} ${data.unit}, ${item.raw.y} cramp${item.raw.y === 1 ? "" : "s"}` } },
        },
      },
    };
  }

  const BUILDERS = { timeline, nights, envelope, scatter, session, hours };

  function draw(canvas) {
    const source = document.getElementById(canvas.dataset.chart);
    if (!source || !window.Chart) return;
    const data = JSON.parse(source.textContent);
    const build = BUILDERS[data.type];
    if (!build) return;
    const config = build(data);
    config.type = config.type || "bar";
    config.options = { responsive: true, maintainAspectRatio: false, animation: false, ...config.options };
    const old = instances.get(canvas.id);
    if (old) old.destroy();
    instances.set(canvas.id, new window.Chart(canvas, config));
    canvas.dataset.drawn = "true";
  }

  function drawAll(root = document) {
    root.querySelectorAll("canvas[data-chart]").forEach((canvas) => {
      try { draw(canvas); } catch (error) { console.error("chart", canvas.id, error); }
    });
  }

  window.crampwatchCharts = { drawAll };
  document.addEventListener("DOMContentLoaded", () => drawAll());
  // Print (and "Save as PDF") lays the page out at paper width: redraw at that size.
  window.addEventListener("beforeprint", () => instances.forEach((chart) => chart.resize()));
  window.addEventListener("afterprint", () => instances.forEach((chart) => chart.resize()));
})();
