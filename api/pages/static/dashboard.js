/* The dashboard: the universe at a glance, then one page of /v1/summary at a time, searchable,
   filterable by method and status, sortable by column; every number from the API. */
"use strict";
(function () {
  const { el, getJSON, money, fixed, pct, pvalue, tickerUrl, badge, showError } = window.stockcast;
  const PAGE = 25;
  const params = new URLSearchParams(location.search);
  let q = params.get("q") || "";
  let offset = Math.max(0, parseInt(params.get("offset") || "0", 10) || 0);
  let method = params.get("method") || "";
  let state = params.get("status") || "";
  let sort = params.get("sort") || "ticker";
  let seq = 0;

  const tbody = document.querySelector("#tickers tbody");
  const table = document.getElementById("tickers");
  const status = document.getElementById("status");
  const input = document.getElementById("q");
  const prev = document.getElementById("prev");
  const next = document.getElementById("next");
  const pageInfo = document.getElementById("page-info");
  const methodSelect = document.getElementById("method");
  const stateSelect = document.getElementById("state");
  const headers = [...document.querySelectorAll("#tickers th[data-sort]")];
  input.value = q;
  methodSelect.value = method;
  stateSelect.value = state;

  function showSort() {
    const column = sort.replace(/^-/, "");
    for (const th of headers) {
      th.setAttribute("aria-sort", th.dataset.sort !== column ? "none" : sort.startsWith("-") ? "descending" : "ascending");
    }
  }

  function when(iso) { return iso ? iso.replace("T", " ").slice(0, 16) + " UTC" : "–"; }

  function showUniverse(u) {
    const text = (id, value) => { document.getElementById(id).textContent = value; };
    text("u-tickers", u.tickers.toLocaleString("en-US"));
    text("u-tracked", `${u.tracked.toLocaleString("en-US")} tracked`);
    text("u-network", u.served_by_network.toLocaleString("en-US"));
    text("u-methods", Object.entries(u.methods).filter(([m]) => m !== "lstm")
      .map(([m, n]) => `${m} ${n.toLocaleString("en-US")}`).join(" · ") || "no baseline serves");
    text("u-stale", u.stale.toLocaleString("en-US"));
    text("u-failed", u.failed.toLocaleString("en-US"));
    text("u-suspect", u.suspect.toLocaleString("en-US"));
    const night = u.last_night;
    const tile = document.getElementById("u-night");
    if (!night) { tile.textContent = "none yet"; text("u-night-detail", "no pipeline run recorded"); return; }
    tile.replaceChildren(badge(night.status, night.status, `run ${night.run_id} (${night.trigger})`));
    const seconds = night.duration_seconds;
    const took = seconds === null ? "still running"
      : seconds < 120 ? `took ${fixed(seconds, 0)} s` : `took ${fixed(seconds / 60, 1)} min`;
    text("u-night-detail", `started ${when(night.started_at)}, ${took}; ${night.tickers.toLocaleString("en-US")} tickers, ${night.failed} failed`);
  }

  function sparkline(closes, symbol) {
    const width = 110, height = 28;
    const canvas = el("canvas", {
      class: "spark", width: width * 2, height: height * 2, role: "img",
      "aria-label": closes.length
        ? `${symbol}: last ${closes.length} closes, from ${money(closes[0])} to ${money(closes[closes.length - 1])}`
        : `${symbol}: no closes`,
    });
    canvas.style.width = `${width}px`;
    canvas.style.height = `${height}px`;
    const values = closes.filter((v) => v !== null);
    if (values.length < 2) return canvas;
    const ctx = canvas.getContext("2d");
    ctx.scale(2, 2);
    const lo = Math.min(...values), hi = Math.max(...values), span = hi - lo || 1;
    ctx.strokeStyle = values[values.length - 1] >= values[0] ? "#1b7a3a" : "#b3261e";
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    values.forEach((v, i) => {
      const x = 2 + (i / (values.length - 1)) * (width - 4);
      const y = height - 2 - ((v - lo) / span) * (height - 4);
      if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    });
    ctx.stroke();
    return canvas;
  }

  function freshnessCell(f) {
    if (!f.forecast_as_of) return [badge("stale", "stale", "no forecast yet"), el("div", { class: "sub", text: "no forecast" })];
    const why = [`forecast as of ${f.forecast_as_of}`, `last session ${f.last_session}`];
    if (f.sessions_behind) why.push(`${f.sessions_behind.toLocaleString("en-US")} session(s) behind`);
    if (f.behind_data) why.push("newer closes are stored than the forecast used");
    const mark = f.stale ? badge("stale", "stale", why.join("; ")) : badge("fresh", "fresh", why.join("; "));
    return [mark, el("div", { class: "sub", text: `as of ${f.forecast_as_of}` })];
  }

  function runCell(run) {
    if (!run) return badge("none", "none", "no pipeline run yet");
    const title = [run.started_at, run.detail, run.error].filter(Boolean).join(" · ");
    return badge(run.status, run.status, title);
  }

  function row(t) {
    const f = t.forecast, s = t.skill;
    const change = f ? f.predicted_change_pct : null;
    const cells = [
      el("th", { scope: "row" }, [el("a", { href: tickerUrl(t.ticker), text: t.ticker }),
        t.suspect ? badge("suspect", "suspect", `${t.suspect.note || "suspect move"}; resolve with: stockcast tickers resolve ${t.ticker}`) : null,
        t.name ? el("div", { class: "sub", text: t.name }) : null]),
      el("td", { class: "num" }, [money(t.last_close), el("div", { class: "sub", text: t.last_date || "no data" })]),
      el("td", { class: "num" }, f ? [money(f.predicted_close), el("div", { class: "sub", text: `for ${f.target_date}` })] : ["–"]),
      el("td", { class: `num ${change > 0 ? "up" : change < 0 ? "down" : ""}`, text: pct(change) }),
      el("td", { class: "num" }, f ? [`${money(f.interval.low)} – ${money(f.interval.high)}`,
        el("div", { class: "sub", text: `${Math.round(f.interval.coverage * 100)}% interval` })] : ["–"]),
      el("td", {}, [f ? badge(f.method, "method", s && s.method === f.method ? "the serving method chosen from the backtest" : null) : "–"]),
      el("td", { class: "num", title: s && s.best_baseline ? `best baseline: ${s.best_baseline}` : null, text: s ? fixed(s.mae_ratio, 3) : "–" }),
      el("td", { class: "num", text: s ? pvalue(s.dm_pvalue) : "–" }),
      el("td", {}, freshnessCell(t.freshness)),
      el("td", {}, [runCell(t.last_run)]),
      el("td", {}, [sparkline(t.recent_closes, t.ticker)]),
    ];
    return el("tr", { "data-ticker": t.ticker }, cells);
  }

  async function load() {
    const mine = ++seq;
    const query = new URLSearchParams({ limit: String(PAGE), offset: String(offset), sort });
    if (q) query.set("q", q);
    if (method) query.set("method", method);
    if (state) query.set("status", state);
    const url = `/v1/summary?${query}`;
    status.textContent = "Loading…";
    let body;
    try {
      body = await getJSON(url);
    } catch (error) {
      if (mine === seq) { status.textContent = ""; showError(`Could not load the tickers: ${error.message}`); }
      return;
    }
    if (mine !== seq) return; // a newer search answered first
    document.getElementById("error").hidden = true;
    tbody.replaceChildren(...body.tickers.map(row));
    const filtered = q || method || state;
    if (!body.tickers.length) {
      tbody.append(el("tr", {}, [el("td", { colspan: 11, text: filtered ? "No ticker matches these filters." : "No tickers yet: run `stockcast backfill`." })]));
    }
    showUniverse(body.universe);
    showSort();
    const first = body.total ? body.offset + 1 : 0;
    const last = body.offset + body.tickers.length;
    const what = [q ? `matching “${q}”` : "", method ? `served by ${method}` : "", state || ""].filter(Boolean).join(", ");
    status.textContent = `${body.total} ticker${body.total === 1 ? "" : "s"}${what ? ` ${what}` : ""}`;
    pageInfo.textContent = `${first}–${last} of ${body.total}`;
    table.dataset.total = String(body.total);
    table.dataset.rows = String(body.tickers.length);
    prev.disabled = body.offset === 0;
    next.disabled = body.next_offset === null;
    const shown = new URLSearchParams();
    if (q) shown.set("q", q);
    if (method) shown.set("method", method);
    if (state) shown.set("status", state);
    if (sort !== "ticker") shown.set("sort", sort);
    if (offset) shown.set("offset", String(offset));
    history.replaceState(null, "", shown.toString() ? `?${shown}` : location.pathname);
    table.dataset.sort = sort;
    table.dataset.loaded = "true";
  }

  let timer = null;
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => { q = input.value.trim(); offset = 0; load(); }, 200);
  });
  document.getElementById("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    clearTimeout(timer);
    q = input.value.trim(); offset = 0; load();
  });
  methodSelect.addEventListener("change", () => { method = methodSelect.value; offset = 0; load(); });
  stateSelect.addEventListener("change", () => { state = stateSelect.value; offset = 0; load(); });
  for (const th of headers) {
    th.querySelector("button").addEventListener("click", () => {
      const column = th.dataset.sort;
      // a new column sorts ascending (MAE ratio: best first); the same column flips
      sort = sort === column ? `-${column}` : column;
      offset = 0;
      load();
    });
  }
  prev.addEventListener("click", () => { offset = Math.max(0, offset - PAGE); load(); });
  next.addEventListener("click", () => { offset += PAGE; load(); });
  load();
})();
