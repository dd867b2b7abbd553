/* One ticker: closes with the stored forecasts and their interval band (uPlot), the newest full
   backtest's out-of-sample forecasts of the served method with theirs, a panel of rolling
   realized errors (backtest and live forecasts vs persistence), the model card and recent runs.
   Exposed for tests and bench/pages.py: window.stockcastChart (the uPlot instance),
   window.stockcastChartMs (ms to build and draw it) and data-* counts on #price-chart. */
"use strict";
(function () {
  const { el, getJSON, money, fixed, pvalue, badge, showError } = window.stockcast;
  const symbol = document.body.dataset.ticker;
  const enc = encodeURIComponent(symbol);
  const ROLL = 20;
  const TABLE_MAX = 1300;
  const DAY = 86400;
  const RANGES = { "3M": 91, "1Y": 365, "5Y": 5 * 365 + 1, all: null };
  const priceFig = document.getElementById("price-chart");
  const errorFig = document.getElementById("error-chart");
  let data = null, charts = [], visible = [-Infinity, Infinity];

  const toSeconds = (iso) => Date.UTC(+iso.slice(0, 4), +iso.slice(5, 7) - 1, +iso.slice(8, 10)) / 1000;
  const isoOf = (seconds) => new Date(seconds * 1000).toISOString().slice(0, 10);

  /* Align closes (by date), live forecasts and the backtest's (by target date) on one x axis,
     as uPlot wants: null where a column has no value on that day. */
  function align(series) {
    const c = series.closes, f = series.forecasts;
    const b = series.backtest || { target_date: [], predicted_close: [], low: [], high: [], abs_error: [], persistence_abs_error: [] };
    const cx = c.date.map(toSeconds), fx = f.target_date.map(toSeconds), bx = b.target_date.map(toSeconds);
    const x = [...new Set([...cx, ...fx, ...bx])].sort((p, q) => p - q);
    const at = new Map(x.map((t, k) => [t, k]));
    const column = () => new Array(x.length).fill(null);
    const a = {
      x, close: column(), pred: column(), low: column(), high: column(), method: column(), err: column(), perr: column(),
      bt: column(), btLow: column(), btHigh: column(), btErr: column(), btPerr: column(),
      btMethod: b.method || null,
    };
    cx.forEach((t, i) => { a.close[at.get(t)] = c.close[i]; });
    fx.forEach((t, j) => {
      const k = at.get(t);
      a.pred[k] = f.predicted_close[j]; a.low[k] = f.low[j]; a.high[k] = f.high[j];
      a.method[k] = f.method[j]; a.err[k] = f.abs_error[j]; a.perr[k] = f.persistence_abs_error[j];
    });
    bx.forEach((t, j) => {
      const k = at.get(t);
      a.bt[k] = b.predicted_close[j]; a.btLow[k] = b.low[j]; a.btHigh[k] = b.high[j];
      a.btErr[k] = b.abs_error[j]; a.btPerr[k] = b.persistence_abs_error[j];
    });
    return a;
  }

  /* Rolling means of the last ROLL realized errors at each day with one: the backtest's
     forecasts, the live ones, and persistence over both (the same error on a day both have). */
  function rolling(a) {
    const x = [], backtest = [], live = [], persistence = [];
    const roll = () => ({ q: [], sum: 0, push(v) { this.q.push(v); this.sum += v; if (this.q.length > ROLL) this.sum -= this.q.shift(); },
      get mean() { return this.q.length === ROLL ? this.sum / ROLL : null; } });
    const rb = roll(), rl = roll(), rp = roll();
    for (let k = 0; k < a.x.length; k++) {
      const hasB = a.btErr[k] !== null, hasL = a.err[k] !== null && a.perr[k] !== null;
      if (!hasB && !hasL) continue;
      if (hasB) rb.push(a.btErr[k]);
      if (hasL) rl.push(a.err[k]);
      rp.push(hasL ? a.perr[k] : a.btPerr[k]);
      if (rb.mean === null && rl.mean === null && rp.mean === null) continue;
      x.push(a.x[k]);
      backtest.push(hasB ? rb.mean : null);
      live.push(hasL ? rl.mean : null);
      persistence.push(rp.mean);
    }
    return { x, backtest, live, persistence };
  }

  function width(fig) { return Math.max(320, Math.floor(fig.getBoundingClientRect().width)); }
  const utc = (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC");

  function drawCharts(a, r) {
    const priceOpts = {
      width: width(priceFig), height: 360, tzDate: utc,
      cursor: { sync: { key: "stockcast" } },
      scales: { x: { time: true } },
      series: [
        { label: "Date", value: (u, v) => (v === null ? "–" : isoOf(v)) },
        { label: "Close (realized)", stroke: "#1d232b", width: 1.25, value: (u, v) => money(v) },
        { label: "Forecast", stroke: "#1f4e79", width: 1.5, dash: [4, 3], value: (u, v) => money(v),
          points: { show: false } },
        { label: "Interval low", stroke: "rgba(31,78,121,.45)", width: 1, value: (u, v) => money(v) },
        { label: "Interval high", stroke: "rgba(31,78,121,.45)", width: 1, value: (u, v) => money(v) },
        { label: `Backtest (out of sample${a.btMethod ? `, ${a.btMethod}` : ""})`, stroke: "#b35c00", width: 1.25,
          value: (u, v) => money(v), points: { show: false } },
        { label: "Backtest low", stroke: "rgba(179,92,0,.35)", width: 1, value: (u, v) => money(v) },
        { label: "Backtest high", stroke: "rgba(179,92,0,.35)", width: 1, value: (u, v) => money(v) },
      ],
      bands: [{ series: [4, 3], fill: "rgba(31,78,121,.16)" }, { series: [7, 6], fill: "rgba(179,92,0,.12)" }],
      axes: [{}, { size: 70, values: (u, vals) => vals.map((v) => money(v)) }],
    };
    const errorOpts = {
      width: width(errorFig), height: 200, tzDate: utc,
      cursor: { sync: { key: "stockcast" } },
      scales: { x: { time: true } },
      series: [
        { label: "Date", value: (u, v) => (v === null ? "–" : isoOf(v)) },
        { label: `Backtest, served method (mean abs. error, ${ROLL})`, stroke: "#b35c00", width: 1.5, value: (u, v) => fixed(v, 2) },
        { label: `Live forecast (mean abs. error, ${ROLL})`, stroke: "#1f4e79", width: 1.5, value: (u, v) => fixed(v, 2) },
        { label: `Persistence (mean abs. error, ${ROLL})`, stroke: "#b3261e", width: 1.5, value: (u, v) => fixed(v, 2) },
      ],
      axes: [{}, { size: 70 }],
    };
    // uPlot draws in a microtask after construction: time up to the end of the first draw.
    let t0 = 0;
    priceOpts.hooks = { draw: [(u) => {
      if (window.stockcastChartMs === undefined) {
        window.stockcastChartMs = performance.now() - t0;
        priceFig.dataset.drawMs = window.stockcastChartMs.toFixed(1);
      }
      u.root.dataset.draws = String(+(u.root.dataset.draws || 0) + 1);
    }] };
    t0 = performance.now();
    const price = new uPlot(priceOpts, [a.x, a.close, a.pred, a.low, a.high, a.bt, a.btLow, a.btHigh], priceFig);
    const errors = new uPlot(errorOpts, [r.x, r.backtest, r.live, r.persistence], errorFig);
    return [price, errors];
  }

  function setRange(name) {
    if (!data || !data.a.x.length) return;
    const x = data.a.x, last = x[x.length - 1];
    const days = RANGES[name];
    const min = days === null ? x[0] : Math.max(x[0], last - days * DAY);
    const t0 = performance.now();
    for (const chart of charts) chart.setScale("x", { min, max: last });
    window.stockcastRangeMs = performance.now() - t0;
    priceFig.dataset.range = name;
    for (const b of document.querySelectorAll("[data-range]")) {
      b.setAttribute("aria-pressed", String(b.dataset.range === name));
    }
    visible = [min, last];
    const details = document.getElementById("table-details");
    if (details.open) fillTable();
  }

  /* The data table of the visible range, newest first, built on demand. At most TABLE_MAX rows
     (5Y fits): thousands of rows take the browser seconds to lay out; the note says so and
     links the JSON, which holds everything. */
  function fillTable() {
    const t0 = performance.now();
    const a = data.a;
    const [min, max] = visible; // the chart's own scale updates only once it redraws
    const rows = document.createDocumentFragment();
    let n = 0, total = 0;
    for (let k = a.x.length - 1; k >= 0; k--) {
      if (a.x[k] < min || a.x[k] > max) continue;
      total++;
      if (n >= TABLE_MAX) continue;
      const tr = document.createElement("tr");
      const cells = [isoOf(a.x[k]), money(a.close[k]), money(a.pred[k]), money(a.low[k]),
        money(a.high[k]), a.method[k] || "", fixed(a.err[k], 2), fixed(a.perr[k] ?? a.btPerr[k], 2),
        money(a.bt[k]), fixed(a.btErr[k], 2)];
      for (let c = 0; c < cells.length; c++) {
        const td = tr.insertCell();
        td.textContent = cells[c];
        if (c !== 0 && c !== 5) td.className = "num";
      }
      rows.append(tr);
      n++;
    }
    document.querySelector("#data-table tbody").replaceChildren(rows);
    const table = document.getElementById("data-table");
    table.dataset.rows = String(n);
    table.dataset.total = String(total);
    const note = document.getElementById("table-note");
    note.replaceChildren(n < total
      ? `The newest ${n.toLocaleString("en-US")} of ${total.toLocaleString("en-US")} days in this range. All of them: `
      : `${n.toLocaleString("en-US")} days. As JSON: `,
      el("a", { href: `/v1/series/${enc}`, text: `/v1/series/${symbol}` }), ".");
    window.stockcastTableMs = performance.now() - t0;
  }

  function headline(series) {
    const f = series.forecasts, n = f.target_date.length;
    const node = document.getElementById("headline");
    if (!n) { node.textContent = "No forecast yet."; return; }
    const k = n - 1;
    node.replaceChildren(
      `Forecast for ${f.target_date[k]}: `, el("strong", { text: money(f.predicted_close[k]) }),
      ` (interval ${money(f.low[k])} – ${money(f.high[k])}, ${Math.round(f.coverage[k] * 100)}%) by `,
      badge(f.method[k], "method"), `, made on ${f.as_of[k]}.`);
  }

  function liveText(live) {
    if (!live) return "–";
    if (!live.n_forecasts) return `no scored night after ${live.since} yet`;
    const text = `${live.n_forecasts} nights after ${live.since}: network ${fixed(live.mae_ratio.lstm, 4)}x persistence, ` +
      `vs ${live.best_baseline} DM p ${pvalue(live.dm_best_pvalue)}`;
    return live.demoted ? `${text}; demoted: significantly worse (p ${pvalue(live.worse_pvalue)})` : text;
  }

  function modelCard(body) {
    const dl = document.getElementById("model-card");
    const mv = body.models.find((m) => m.champion) || body.models[0];
    if (!mv) { dl.replaceChildren(el("dt", { text: "No model yet" }), el("dd")); return; }
    const bt = mv.backtest || {};
    const items = [
      ["Serving method", badge(mv.method, "method")],
      ["Why", mv.method_reason || "–"],
      ["Version", `v${mv.version} (${mv.status})`],
      ["Model scope", mv.universe
        ? `universe: one network for ${mv.universe.tickers} tickers (${mv.universe.windows} windows, ${mv.universe.members} seeds), trained through ${mv.universe.trained_through}${mv.universe.warm_start ? ", fine-tuned on a quiet night" : ""}`
        : "ticker: its own network"],
      ["Trained through", mv.trained_through || "–"],
      ["Trained at", mv.trained_at ? mv.trained_at.replace("T", " ").slice(0, 19) + " UTC" : "–"],
      ["Training took", mv.train_seconds === null ? "–" : `${fixed(mv.train_seconds, 1)} s`],
      ["Backtest", bt.start ? `${bt.start} – ${bt.end}, ${bt.n_forecasts} forecasts, ${bt.folds} folds` : "none (legacy version)"],
      ["MAE ratio vs persistence", fixed(bt.mae_ratio ?? mv.mae_ratio_vs_persistence, 4)],
      ["DM p vs persistence", pvalue(bt.dm_pvalue)],
      ["Best baseline", bt.best_baseline ? `${bt.best_baseline} (ratio ${fixed(bt.best_baseline_mae_ratio, 4)}, DM p ${pvalue(bt.dm_best_pvalue)})` : "–"],
      ["Live record", liveText(body.live)],
      ["Interval coverage", bt.coverage_by_method && bt.coverage_by_method[mv.method] !== undefined
        ? `${fixed(bt.coverage_by_method[mv.method] * 100, 1)}% (nominal ${fixed((bt.nominal_coverage || 0) * 100, 0)}%)` : "–"],
    ];
    dl.replaceChildren(...items.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", {}, [v])]));
    dl.dataset.version = String(mv.version);
  }

  function dataCard(series) {
    const node = document.getElementById("data-card");
    const parts = [];
    if (series.suspect) {
      parts.push(el("p", { class: "error", id: "suspect" }, [badge("suspect", "suspect"),
        ` ${series.suspect.note || `unexplained move on ${series.suspect.day}`}. Persistence serves until an operator runs `,
        el("code", { text: `stockcast tickers resolve ${symbol}` }), " or a backfill adjusts the history."]));
    }
    const shown = (a) => a.kind === "split" ? `split ${a.value}:1` : `dividend ${fixed(a.value, 4)}`;
    parts.push(series.actions.length
      ? el("ul", { id: "actions" }, series.actions.map((a) => el("li", { text: `${a.date}: ${shown(a)}` })))
      : el("p", { class: "muted", text: "No splits or dividends recorded." }));
    node.replaceChildren(...parts);
  }

  function runsTable(body) {
    const tbody = document.querySelector("#runs tbody");
    const rows = body.runs.map((run) => {
      const step = run.steps.find((s) => s.ticker === symbol) || {};
      return el("tr", {}, [
        el("td", { text: (step.started_at || run.started_at).replace("T", " ").slice(0, 16) }),
        el("td", {}, [badge(step.status || run.status, step.status || run.status)]),
        el("td", { class: "num", text: fixed(step.duration_seconds, 1) }),
        el("td", { text: step.error || step.detail || "" }),
      ]);
    });
    if (!rows.length) rows.push(el("tr", {}, [el("td", { colspan: 4, text: "No pipeline run yet." })]));
    tbody.replaceChildren(...rows);
  }

  async function main() {
    const [series, models, runs] = await Promise.allSettled([
      getJSON(`/v1/series/${enc}`),
      getJSON(`/v1/models/${enc}`),
      getJSON(`/v1/runs?ticker=${enc}&limit=10`),
    ]);
    if (models.status === "fulfilled") modelCard(models.value); else showError(`Model card: ${models.reason.message}`);
    if (runs.status === "fulfilled") runsTable(runs.value); else showError(`Runs: ${runs.reason.message}`);
    if (series.status !== "fulfilled") { showError(`Chart: ${series.reason.message}`); return; }
    const s = series.value;
    headline(s);
    dataCard(s);
    const a = align(s), r = rolling(a);
    data = { a, r };
    charts = drawCharts(a, r);
    window.stockcastChart = charts[0];
    window.stockcastErrorChart = charts[1];
    priceFig.dataset.points = String(s.closes.close.length);
    priceFig.dataset.forecasts = String(s.forecasts.target_date.length);
    priceFig.dataset.band = String(a.x.filter((_, k) => a.low[k] !== null && a.high[k] !== null).length);
    priceFig.dataset.x = String(a.x.length);
    priceFig.dataset.backtest = String(a.bt.filter((v) => v !== null).length);
    errorFig.dataset.points = String(r.x.length);
    for (const b of document.querySelectorAll("[data-range]")) {
      b.addEventListener("click", () => setRange(b.dataset.range));
    }
    // Let the first draw (every point: what stockcastChartMs times) happen before zooming in.
    await new Promise((resolve) => setTimeout(resolve, 0));
    const wanted = new URLSearchParams(location.search).get("range");
    setRange(Object.hasOwn(RANGES, wanted || "") ? wanted : "1Y");
    document.getElementById("table-details").addEventListener("toggle", (event) => {
      if (event.target.open) fillTable();
    });
    let pending = null;
    window.addEventListener("resize", () => {
      clearTimeout(pending);
      pending = setTimeout(() => {
        charts[0].setSize({ width: width(priceFig), height: 360 });
        charts[1].setSize({ width: width(errorFig), height: 200 });
      }, 100);
    });
    priceFig.dataset.ready = "true";
  }

  main().catch((error) => showError(`Could not draw the page: ${error.message}`));
})();
