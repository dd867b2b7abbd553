/* Shared helpers for the stockcast pages. Every piece of data reaches the DOM through
   textContent or attributes, never innerHTML: a symbol or message can hold any text. */
"use strict";
(function () {
  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined) continue;
      if (key === "text") node.textContent = String(value);
      else if (key === "class") node.className = value;
      else node.setAttribute(key, String(value));
    }
    for (const child of children || []) {
      if (child !== null && child !== undefined) {
        node.append(child instanceof Node ? child : document.createTextNode(String(child)));
      }
    }
    return node;
  }

  async function getJSON(url) {
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    let body = null;
    try { body = await response.json(); } catch (e) { body = null; }
    if (!response.ok) {
      const message = body && body.error ? body.error.message : `HTTP ${response.status}`;
      const error = new Error(message);
      error.status = response.status;
      throw error;
    }
    return body;
  }

  const grouped = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  function money(value) { return value === null || value === undefined ? "–" : grouped.format(value); }
  function fixed(value, digits) {
    return value === null || value === undefined ? "–" : Number(value).toFixed(digits);
  }
  function pct(value) {
    if (value === null || value === undefined) return "–";
    return `${value > 0 ? "+" : ""}${Number(value).toFixed(2)}%`;
  }
  function pvalue(value) {
    if (value === null || value === undefined) return "–";
    return value < 0.001 ? "<0.001" : Number(value).toFixed(3);
  }
  function tickerUrl(symbol) { return `/tickers/${encodeURIComponent(symbol)}`; }
  function badge(text, kind, title) { return el("span", { class: `badge ${kind}`, text, title }); }

  function showError(message) {
    const node = document.getElementById("error");
    if (node) { node.textContent = message; node.hidden = false; }
  }

  window.stockcast = { el, getJSON, money, fixed, pct, pvalue, tickerUrl, badge, showError };
})();
