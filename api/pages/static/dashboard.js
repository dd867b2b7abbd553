/* The dashboard: one page of /v1/summary at a time, searchable; every number from the API. */
"use strict";
(function () {
  const { el, getJSON, money, fixed, pct, pvalue, tickerUrl, badge, showError } = window.stockcast;
  const PAGE = 25;
  const params = new URLSearchParams(location.search);
  let q = params.get("q") || "";
  let offset = Math.max(0, parseInt(params.get("offset") || "0", 10) || 0);
  let seq = 0;

  const tbody = document.querySelector("#tickers tbody");
  const table = document.getElementById("tickers");
  const status = document.getElementById("status");
  const input = document.getElementById("q");
  const prev = document.getElementById("prev");
  const next = document.getElementById("next");
  const pageInfo = document.getElementById("page-info");
  input.value = q;

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
    const url = `/v1/summary?limit=${PAGE}&offset=${offset}` + (q ? `&q=${encodeURIComponent(q)}` : "");
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
    if (!body.tickers.length) {
      tbody.append(el("tr", {}, [el("td", { colspan: 11, text: q ? `No ticker matches “${q}”.` : "No tickers yet: run `stockcast backfill`." })]));
    }
    const first = body.total ? body.offset + 1 : 0;
    const last = body.offset + body.tickers.length;
    status.textContent = `${body.total} ticker${body.total === 1 ? "" : "s"}${q ? ` matching “${q}”` : ""}`;
    pageInfo.textContent = `${first}–${last} of ${body.total}`;
    table.dataset.total = String(body.total);
    table.dataset.rows = String(body.tickers.length);
    prev.disabled = body.offset === 0;
    next.disabled = body.next_offset === null;
    const state = new URLSearchParams();
    if (q) state.set("q", q);
    if (offset) state.set("offset", String(offset));
    history.replaceState(null, "", state.toString() ? `?${state}` : location.pathname);
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
  prev.addEventListener("click", () => { offset = Math.max(0, offset - PAGE); load(); });
  next.addEventListener("click", () => { offset += PAGE; load(); });
  load();
})();
