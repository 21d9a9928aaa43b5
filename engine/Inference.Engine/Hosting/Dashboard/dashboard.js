// The engine's live dashboard: one metrics sample a second and the alerts as they commit, over
// Server-Sent Events from /dashboard/stream. Plain script, no build step; uPlot is vendored.
"use strict";
(() => {
  const WINDOW_S = 300;         // charts show the last five minutes...
  const KEEP = 300;             // ...at most one point a second
  const ALERT_ROWS = 50;
  const HEIGHT = 180;
  const series = { t: [], events: [], scores: [], p50: [], p99: [], lag: [], loss: [], version: [] };
  const charts = [];
  const shown = new Set();      // alert ids in the table: a reconnect replays the latest alerts

  const $ = id => document.getElementById(id);
  const finite = value => typeof value === "number" && Number.isFinite(value);
  const number = (value, digits) => finite(value)
    ? value.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits })
    : "–";
  const orNull = value => finite(value) ? value : null;

  function chart(id, lines, data) {
    const target = $(id);
    const axis = { stroke: "#8a93a6", grid: { stroke: "#222b3e" }, ticks: { stroke: "#222b3e" } };
    const right = lines.some(l => l.scale === "right");
    const plot = new uPlot({
      width: Math.max(300, target.clientWidth),
      height: HEIGHT,
      scales: {
        // At least the last minute, so that the first few points are not spread over the whole width.
        x: { time: true, range: (u, min, max) => finite(max) ? [Math.min(min, max - 60), max] : [0, 60] },
        ...(right ? { right: { range: (u, min, max) => finite(max) ? [Math.min(0, min), max + 1] : [0, 1] } } : {}),
      },
      axes: right
        ? [axis, { ...axis, scale: "y" }, { ...axis, scale: "right", side: 1, grid: { show: false } }]
        : [axis, { ...axis, size: 64 }],
      series: [{}, ...lines.map(l => ({
        label: l.label, stroke: l.color, width: 2, scale: l.scale || "y", spanGaps: true,
        paths: l.stepped ? uPlot.paths.stepped({ align: 1 }) : undefined,
      }))],
      legend: { live: false },
      cursor: { drag: { x: false, y: false } },
    }, data(), target);
    charts.push({ plot, target, data });
  }

  function push(sample) {
    const values = {
      t: sample.t, events: sample.eventsPerSecond, scores: sample.scoresPerSecond, p50: sample.scoreP50Ms,
      p99: sample.scoreP99Ms, lag: sample.lag, loss: sample.onlineLogLoss, version: sample.modelVersion,
    };
    for (const key of Object.keys(series)) {
      series[key].push(orNull(values[key]));
    }
    let drop = Math.max(0, series.t.length - KEEP);
    while (drop < series.t.length && series.t[drop] < sample.t - WINDOW_S) {
      drop++;
    }
    if (drop > 0) {
      for (const key of Object.keys(series)) {
        series[key].splice(0, drop);
      }
    }
    for (const c of charts) {
      c.plot.setData(c.data());
    }
  }

  function show(sample) {
    $("events-per-second").textContent = number(sample.eventsPerSecond, 0);
    $("lag").textContent = number(sample.lag, 0);
    $("score-p50").textContent = number(sample.scoreP50Ms, 2);
    $("score-p99").textContent = number(sample.scoreP99Ms, 2);
    $("batch-rows").textContent = number(sample.batchRows, 1);
    $("model-version").textContent = number(sample.modelVersion, 0);
    $("online-loss").textContent = number(sample.onlineLogLoss, 4);
    $("validation-auc").textContent = number(sample.validationAuc, 4);
    $("scores-per-second").textContent = number(sample.scoresPerSecond, 0);
    $("alerts-total").textContent = finite(sample.alertsTotal) ? `${number(sample.alertsTotal, 0)} in all` : "";
    $("updated").textContent = new Date(finite(sample.t) ? sample.t * 1000 : Date.now()).toLocaleTimeString();
  }

  function alert(a) {
    const id = String(a.id);
    if (shown.has(id)) {
      return;
    }
    shown.add(id);
    const body = $("alerts");
    body.querySelector("tr.empty")?.remove();
    const row = body.insertRow(0);
    row.dataset.id = id;
    const time = new Date(finite(a.eventTimeMs) ? a.eventTimeMs : Date.now()).toLocaleTimeString();
    const cells = [time, a.rule, a.entity, number(a.score, 3), number(a.modelVersion, 0), a.source];
    cells.forEach((value, i) => {
      const cell = row.insertCell();
      cell.textContent = value === undefined || value === null ? "–" : String(value);
      if (i === 3) {
        cell.className = "score";
      }
    });
    while (body.rows.length > ALERT_ROWS) {
      const last = body.rows[body.rows.length - 1];
      shown.delete(last.dataset.id);
      body.deleteRow(-1);
    }
  }

  function parse(event) {
    try {
      return JSON.parse(event.data);
    } catch {
      return null;      // a malformed event is skipped, not fatal
    }
  }

  chart("chart-throughput", [{ label: "events/s", color: "#5ab0ff" }, { label: "scores/s", color: "#4cd787" }],
    () => [series.t, series.events, series.scores]);
  chart("chart-latency", [{ label: "p50", color: "#5ab0ff" }, { label: "p99", color: "#ffb454" }],
    () => [series.t, series.p50, series.p99]);
  chart("chart-lag", [{ label: "lag", color: "#ff6b6b" }], () => [series.t, series.lag]);
  chart("chart-learning", [
    { label: "online log loss", color: "#c792ea" },
    { label: "model version", color: "#8a93a6", scale: "right", stepped: true },
  ], () => [series.t, series.loss, series.version]);
  window.addEventListener("resize", () => {
    for (const c of charts) {
      c.plot.setSize({ width: Math.max(300, c.target.clientWidth), height: HEIGHT });
    }
  });

  const status = $("status");
  function connect() {
    // A token given to the page (?access_token=…) goes with the stream: the HTTP port guards its data.
    const source = new EventSource("dashboard/stream" + location.search);
    source.onopen = () => { status.textContent = "live"; status.className = "live"; };
    source.onerror = () => {
      status.textContent = "reconnecting…";
      status.className = "down";
      // EventSource retries by itself after a network error, but gives up for good on an HTTP error
      // (a 503 while the engine starts): then start over.
      if (source.readyState === EventSource.CLOSED) {
        setTimeout(connect, 3000);
      }
    };
    source.addEventListener("metrics", event => {
      const sample = parse(event);
      if (sample) {
        show(sample);
        push(sample);
      }
    });
    source.addEventListener("alert", event => {
      const a = parse(event);
      if (a) {
        alert(a);
      }
    });
  }
  connect();

  // For tests and the curious: how many samples the charts hold.
  window.inferenceDashboard = { points: () => series.t.length };
})();
