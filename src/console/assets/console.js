// The vintagelake web console: a page over the HTTP API of the same process (docs/console.md).
// No framework and no charting library: the charts are plain SVG drawn here.
"use strict";

const TOKEN_KEY = "vintagelake.token";
const SVG = "http://www.w3.org/2000/svg";
let info = { auth_required: false };
let ticker = null;

// ---- small helpers -------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null) continue;
    if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) e.append(c);
  return e;
}

function svg(tag, attrs = {}, ...children) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) e.setAttribute(k, v);
  for (const c of children.flat()) if (c !== null && c !== undefined) e.append(c);
  return e;
}

const main = () => document.getElementById("main");
const token = () => sessionStorage.getItem(TOKEN_KEY) || "";
const fmt = (v, digits = 3) => (v === null || v === undefined ? "" : typeof v === "number" ? +v.toFixed(digits) + "" : String(v));
const fmtInt = (v) => (v === null || v === undefined || Number.isNaN(v) ? "–" : Math.round(v).toLocaleString("en-US"));
const fmtBytes = (b) => {
  if (b === null || b === undefined || Number.isNaN(b)) return "–";
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (b >= 1024 && i < u.length - 1) { b /= 1024; i++; }
  return (i ? b.toFixed(1) : b) + " " + u[i];
};

function showError(where, err) {
  where.replaceChildren(el("p", { class: "error", role: "alert", text: String(err.message || err) }));
}

// Calls the API with the session's bearer token; a 401 sends the user to the login form.
async function api(path, { method = "GET", body = null, raw = false } = {}) {
  const headers = {};
  if (token()) headers["Authorization"] = "Bearer " + token();
  if (body !== null) headers["Content-Type"] = "application/json";
  const init = { method, headers };
  if (body !== null) init.body = typeof body === "string" ? body : JSON.stringify(body);
  const r = await fetch(path, init);
  if (!r.ok) {
    let msg = r.status + " " + r.statusText;
    try { const j = await r.json(); if (j.error) msg = j.error; } catch (_) { /* not JSON */ }
    if (r.status === 401 && info.auth_required) {
      sessionStorage.removeItem(TOKEN_KEY);
      if (location.hash !== "#/login") location.hash = "#/login";
    }
    throw new Error(msg);
  }
  return raw ? r : parseJson(await r.text());
}

// JSON with integers beyond 2^53 (snapshot ids) kept exact, as strings.
function parseJson(text) {
  return JSON.parse(text.replace(/([:,\[]\s*)(-?\d{16,})(?=\s*[,\]}])/g, '$1"$2"'));
}

const ticket = (view, series, extra = {}) => ({ version: 1, view, series: [series], ...extra });
const answer = (t) => api("/api/v1/get?format=json", { method: "POST", body: t });

// An answer's rows as objects.
function rows(a) {
  const out = [];
  for (let i = 0; i < a.rows; i++) {
    const r = {};
    for (const c of a.columns) r[c.name] = a.data[c.name][i];
    out.push(r);
  }
  return out;
}

function table(a, { id, numeric = true } = {}) {
  const head = el("tr", {}, a.columns.map((c) => el("th", { text: c.name })));
  const body = rows(a).map((r) =>
    el("tr", {}, a.columns.map((c) => el("td", { class: numeric && typeof r[c.name] === "number" ? "num" : null, text: fmt(r[c.name]) }))),
  );
  return el("div", { class: "scroll" }, el("table", { id }, el("thead", {}, head), el("tbody", {}, body)));
}

async function download(t, format, name, layout) {
  const q = "/api/v1/get?format=" + format + (layout ? "&layout=" + layout : "");
  const r = await api(q, { method: "POST", body: t, raw: true });
  const blob = await r.blob();
  const a = el("a", { href: URL.createObjectURL(blob), download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 60000);
}

// ---- pages ---------------------------------------------------------------------------------

function loginPage() {
  const err = el("div");
  const form = el("form", { class: "login card", id: "login" },
    el("h1", { text: "Sign in" }),
    el("p", { class: "muted", text: "This service needs authentication: a Flight user and password, or a token." }),
    el("label", { text: "User" }), el("input", { id: "login-user", autocomplete: "username" }),
    el("label", { text: "Password" }), el("input", { id: "login-password", type: "password", autocomplete: "current-password" }),
    el("p", { class: "muted", text: "or" }),
    el("label", { text: "Token" }), el("input", { id: "login-token", type: "password" }),
    el("button", { type: "submit", id: "login-submit", text: "Sign in" }),
    err,
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const user = form.querySelector("#login-user").value.trim();
    const password = form.querySelector("#login-password").value;
    const tok = form.querySelector("#login-token").value.trim();
    const body = tok ? { token: tok } : { user, password };
    try {
      const r = await fetch("/api/v1/login", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
      const j = await r.json();
      if (!r.ok) throw new Error(j.error || r.statusText);
      sessionStorage.setItem(TOKEN_KEY, j.token);
      location.hash = "#/";
    } catch (x) {
      showError(err, x);
    }
  });
  main().replaceChildren(form);
}

async function browserPage() {
  const input = el("input", { id: "search", type: "search", placeholder: "Search series by id or title", autofocus: "" });
  const count = el("p", { id: "series-count", class: "muted" });
  const list = el("div", { id: "series-results" });
  main().replaceChildren(el("h1", { text: "Series" }), el("div", { class: "controls" }, input), count, list);
  let seq = 0;
  const load = async () => {
    const mine = ++seq;
    // The results are labelled with the query they answer, not with what the box holds when
    // they arrive (typing while an earlier answer is on its way must not relabel it).
    const query = input.value.trim();
    try {
      const a = await api("/api/v1/series?q=" + encodeURIComponent(query));
      if (mine !== seq) return;
      count.textContent = a.total > a.series.length ? `${a.total} series (first ${a.series.length} shown)` : `${a.total} series`;
      const head = el("tr", {}, ["id", "title", "frequency", "units", "seasonal adjustment", "source"].map((h) => el("th", { text: h })));
      const body = a.series.map((s) =>
        el("tr", { "data-series": s.id },
          el("td", {}, el("a", { href: "#/series/" + encodeURIComponent(s.id), text: s.id })),
          el("td", { text: s.title }), el("td", { text: s.frequency }), el("td", { text: s.units }),
          el("td", { text: s.seasonal_adjustment }), el("td", { text: s.source_id })),
      );
      list.replaceChildren(el("div", { class: "scroll" }, el("table", { id: "series-list" }, el("thead", {}, head), el("tbody", {}, body))));
      list.dataset.query = query;
    } catch (x) {
      showError(list, x);
    }
  };
  let timer = null;
  input.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(load, 200); });
  await load();
}

// Values of an answer by date (null: published as missing).
function byDate(a) {
  const m = new Map();
  for (const r of rows(a)) m.set(r.date, r.value);
  return m;
}

// A line chart of several views of one series over observation dates; every non-missing value
// is a point (circle.pt-<name>), a missing one breaks its line.
function lineChart(lines) {
  const W = 960, H = 380, L = 64, R = 16, T = 14, B = 34;
  const all = lines.flatMap((l) => [...l.values].filter(([, v]) => v !== null));
  const chart = svg("svg", { id: "chart", viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img" });
  if (!all.length) {
    chart.append(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, "no values"));
    return chart;
  }
  const t = (d) => Date.parse(d + "T00:00:00Z");
  const xs = all.map(([d]) => t(d)), ys = all.map(([, v]) => v);
  let [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  if (x0 === x1) { x0 -= 86400e3; x1 += 86400e3; }
  if (y0 === y1) { y0 -= 1; y1 += 1; }
  const pad = (y1 - y0) * 0.05; y0 -= pad; y1 += pad;
  const X = (d) => L + ((t(d) - x0) / (x1 - x0)) * (W - L - R);
  const Y = (v) => T + (1 - (v - y0) / (y1 - y0)) * (H - T - B);
  for (let i = 0; i <= 5; i++) {
    const v = y0 + ((y1 - y0) * i) / 5;
    chart.append(svg("line", { class: "gridline", x1: L, x2: W - R, y1: Y(v), y2: Y(v) }));
    chart.append(svg("text", { x: L - 6, y: Y(v) + 4, "text-anchor": "end" }, fmt(v, 2)));
  }
  const years = new Date(x1).getUTCFullYear() - new Date(x0).getUTCFullYear();
  const step = Math.max(1, Math.ceil(years / 10));
  for (let y = new Date(x0).getUTCFullYear() + 1; y <= new Date(x1).getUTCFullYear(); y += step) {
    const d = `${y}-01-01`;
    chart.append(svg("line", { class: "gridline", x1: X(d), x2: X(d), y1: T, y2: H - B }));
    chart.append(svg("text", { x: X(d), y: H - B + 16, "text-anchor": "middle" }, String(y)));
  }
  chart.append(svg("line", { class: "axis", x1: L, x2: W - R, y1: H - B, y2: H - B }));
  chart.append(svg("line", { class: "axis", x1: L, x2: L, y1: T, y2: H - B }));
  for (const l of lines) {
    const g = svg("g", { class: "view view-" + l.name, "data-points": 0 });
    const dates = [...l.values.keys()].sort();
    let path = "", pen = false, n = 0;
    for (const d of dates) {
      const v = l.values.get(d);
      if (v === null) { pen = false; continue; }
      path += (pen ? "L" : "M") + X(d).toFixed(1) + "," + Y(v).toFixed(1);
      pen = true;
    }
    g.append(svg("path", { class: "line line-" + l.name, d: path }));
    for (const d of dates) {
      const v = l.values.get(d);
      if (v === null) continue;
      n++;
      g.append(svg("circle", { class: "pt pt-" + l.name, cx: X(d).toFixed(1), cy: Y(v).toFixed(1), r: 2.6, "data-date": d, "data-value": v },
        svg("title", {}, `${l.label} ${d}: ${v}`)));
    }
    g.setAttribute("data-points", n);
    chart.append(g);
  }
  return chart;
}

// The vintage matrix as a heat map: one row per observation date, one column per vintage; a
// cell's colour is how far that vintage's value was from the latest one (blue below, red above),
// white where the date was not yet published, grey where it was published as missing.
function heatMap(a, latest) {
  const cells = rows(a);
  const vintages = [...new Set(cells.map((c) => c.vintage_date))].sort();
  // Rows that tell something: dates published or revised within these vintages (the revision
  // triangle); dates that stayed the same throughout are left out.
  const seen = new Map();
  for (const c of cells) (seen.get(c.date) || seen.set(c.date, []).get(c.date)).push(c.value);
  const dates = [...seen.entries()]
    .filter(([, vs]) => vs.length < vintages.length || vs.some((v) => v !== vs[0]))
    .map(([d]) => d)
    .sort();
  if (!dates.length) {
    return el("p", { class: "muted", id: "heatmap", "data-cells": cells.length, text: "no observation changed within these vintages" });
  }
  const cw = Math.max(6, Math.min(26, 860 / Math.max(1, vintages.length)));
  const ch = Math.max(3, Math.min(14, 520 / Math.max(1, dates.length)));
  const L = 86, T = 70, W = L + cw * vintages.length + 10, H = T + ch * dates.length + 10;
  const map = svg("svg", { id: "heatmap", viewBox: `0 0 ${W} ${H}`, width: Math.min(Math.max(W, 600), 1100), "data-cells": cells.length, "data-rows": dates.length });
  let max = 0;
  for (const c of cells) {
    const l = latest.get(c.date);
    if (c.value !== null && l !== null && l !== undefined) max = Math.max(max, Math.abs(c.value - l));
  }
  const colour = (d) => {
    if (max === 0 || d === 0) return "#eef1f6";
    const s = Math.min(1, Math.abs(d) / max), k = Math.round(235 - 170 * s);
    return d < 0 ? `rgb(${k},${k + 10},255)` : `rgb(255,${k},${k - 10})`;
  };
  vintages.forEach((v, i) => {
    map.append(svg("text", { transform: `translate(${L + i * cw + cw / 2 + 3},${T - 4}) rotate(-60)` }, v));
  });
  const labelEvery = Math.ceil(12 / ch);
  dates.forEach((d, j) => {
    if (j % labelEvery === 0) map.append(svg("text", { x: L - 6, y: T + j * ch + ch - 1, "text-anchor": "end" }, d));
  });
  const col = new Map(vintages.map((v, i) => [v, i])), row = new Map(dates.map((d, j) => [d, j]));
  for (const c of cells) {
    if (!row.has(c.date)) continue;
    const l = latest.get(c.date);
    const fill = c.value === null ? "#c9ced8" : l === null || l === undefined ? "#eef1f6" : colour(c.value - l);
    map.append(svg("rect", { class: "cell", x: L + col.get(c.vintage_date) * cw, y: T + row.get(c.date) * ch, width: cw - 1, height: ch - 0.5, fill },
      svg("title", {}, `${c.date} as of ${c.vintage_date}: ${c.value === null ? "missing" : c.value}`)));
  }
  return map;
}

async function seriesPage(id) {
  const page = el("div", { id: "series-page", "data-series": id });
  main().replaceChildren(page);
  try {
    const [found, vd, latestA, firstA, statsA] = await Promise.all([
      api("/api/v1/series?q=" + encodeURIComponent(id)),
      answer(ticket("vintage_dates", id)),
      answer(ticket("latest", id)),
      answer(ticket("first_release", id)),
      answer(ticket("revision_stats", id)),
    ]);
    const meta = found.series.find((s) => s.id === id) || { id, title: "" };
    const vintages = rows(vd).map((r) => r.vintage_date).sort();
    const latest = byDate(latestA), first = byDate(firstA);
    page.append(
      el("h1", { id: "series-title", text: `${meta.id}` }),
      el("p", { class: "muted", text: [meta.title, meta.frequency, meta.units, meta.seasonal_adjustment].filter(Boolean).join(" · ") }),
      el("p", { class: "muted", id: "series-summary", text: `${latestA.rows} observations, ${vintages.length} vintages` + (vintages.length ? ` (${vintages[0]} to ${vintages[vintages.length - 1]})` : "") }),
    );
    if (meta.release || meta.last_updated) {
      page.append(el("p", { class: "muted", id: "series-release", text: [meta.release && "release: " + meta.release, meta.last_updated && "last updated " + meta.last_updated].filter(Boolean).join(" · ") }));
    }
    if (meta.notes) page.append(el("p", { id: "series-notes", text: meta.notes }));

    // The chart: latest, first release and an as-of vintage.
    const select = el("select", { id: "asof" }, el("option", { value: "", text: "no as-of overlay" }), [...vintages].reverse().map((v) => el("option", { value: v, text: v })));
    const dateInput = el("input", { id: "asof-date", type: "date" });
    const legend = el("div", { class: "legend" },
      el("span", {}, el("i", { style: "background:var(--latest)" }), "latest"),
      el("span", {}, el("i", { style: "background:var(--first)" }), "first release"),
      el("span", { id: "asof-legend" }, el("i", { style: "background:var(--asof)" }), "as of —"));
    const chartBox = el("div", { class: "card", id: "chart-box" });
    const status = el("span", { class: "muted", id: "asof-status" });
    page.append(el("h2", { text: "Values" }),
      el("div", { class: "controls" }, el("label", { for: "asof", text: "As of vintage" }), select, el("span", { class: "muted", text: "or any date" }), dateInput, status),
      legend, chartBox);
    let asOf = "", asOfValues = new Map(), seq = 0;
    const draw = () => {
      const lines = [
        { name: "latest", label: "latest", values: latest },
        { name: "first", label: "first release", values: first },
      ];
      if (asOf) lines.push({ name: "asof", label: "as of " + asOf, values: asOfValues });
      const chart = lineChart(lines);
      chart.setAttribute("data-asof", asOf);
      chartBox.replaceChildren(chart);
      legend.querySelector("#asof-legend").lastChild.textContent = "as of " + (asOf || "—");
    };
    const setAsOf = async (d) => {
      const mine = ++seq;
      status.textContent = d ? "loading…" : "";
      try {
        const values = d ? byDate(await answer(ticket("as_of", id, { as_of: d }))) : new Map();
        if (mine !== seq) return;
        asOf = d; asOfValues = values;
        select.value = vintages.includes(d) ? d : "";
        dateInput.value = d;
        status.textContent = "";
        draw();
      } catch (x) {
        status.textContent = String(x.message || x);
      }
    };
    select.addEventListener("change", () => setAsOf(select.value));
    dateInput.addEventListener("change", () => setAsOf(dateInput.value));
    draw();
    if (vintages.length > 1) await setAsOf(vintages[Math.floor(vintages.length / 2)]);

    // The vintage matrix of the last vintages as a heat map.
    const shown = vintages.slice(-40);
    const heat = el("div", { class: "card", id: "heatmap-box" });
    page.append(el("h2", { text: `Vintage matrix (last ${shown.length} vintages)` }),
      el("p", { class: "muted", text: "Each cell: the value of an observation date (row) as known on a vintage (column), coloured by its distance from the latest value; white = not yet published, grey = published as missing." }),
      heat);
    if (shown.length) {
      answer(ticket("matrix", id, { vintages: shown })).then((m) => heat.replaceChildren(heatMap(m, latest)), (x) => showError(heat, x));
    } else {
      heat.textContent = "no vintages";
    }

    // Revision statistics.
    page.append(el("h2", { text: "Revision statistics" }), table(statsA, { id: "revision-stats" }));

    // Downloads: each view, as CSV or Parquet (the bytes `vintagelake get` writes).
    const views = [
      ["latest", () => ticket("latest", id)],
      ["first_release", () => ticket("first_release", id)],
      ["as_of", () => (asOf ? ticket("as_of", id, { as_of: asOf }) : null)],
      ["all_revisions", () => ticket("all_revisions", id)],
      ["vintage_dates", () => ticket("vintage_dates", id)],
      ["matrix", () => ticket("matrix", id), "wide"],
      ["new_and_revised", () => ticket("new_and_revised", id)],
      ["revision_stats", () => ticket("revision_stats", id)],
    ];
    const dlError = el("div");
    const dl = el("div", { class: "downloads card" }, views.map(([name, make, layout]) =>
      el("div", {}, el("strong", { text: name + ": " }), ["csv", "parquet"].map((f) =>
        el("button", { "data-view": name, "data-format": f, text: f.toUpperCase(), onclick: async () => {
          const t = make();
          if (!t) { showError(dlError, new Error("choose an as-of vintage first")); return; }
          try {
            await download(t, f, `${id}.${name}${name === "as_of" ? "." + asOf : ""}.${f}`, layout);
            dlError.replaceChildren();
          } catch (x) { showError(dlError, x); }
        } })))), dlError);
    page.append(el("h2", { text: "Download" }), dl);
    page.dataset.ready = "true";
  } catch (x) {
    showError(page, x);
  }
}

// Prometheus text format → { name: [{ labels, value }] }.
function parseMetrics(text) {
  const out = {};
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/);
    if (!m) continue;
    const labels = {};
    if (m[3]) for (const p of m[3].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[p[1]] = p[2];
    (out[m[1]] ||= []).push({ labels, value: parseFloat(m[4]) });
  }
  return out;
}

const sum = (m, name, filter = () => true) => {
  const s = (m[name] || []).filter((x) => filter(x.labels));
  return s.length ? s.reduce((a, x) => a + x.value, 0) : NaN;
};

async function opsPage() {
  const page = el("div", { id: "ops-page" });
  const ready = el("div"), stats = el("div", { class: "grid", id: "ops-stats" }), tiers = el("div"), runs = el("div", { class: "grid" }), audit = el("div");
  const actionSel = el("select", { id: "audit-action" }, el("option", { value: "", text: "every action" }));
  const textFilter = el("input", { id: "audit-filter", type: "search", placeholder: "filter (any field)" });
  const lastSel = el("select", { id: "audit-last" }, [100, 1000, 10000].map((n) => el("option", { value: n, text: `last ${n}` })));
  page.append(el("h1", { text: "Operations" }),
    el("h2", { text: "Readiness" }), ready,
    el("h2", { text: "Ingest, commits and queries" }), stats,
    el("h2", { text: "Files and bytes per tier" }), tiers,
    el("h2", { text: "Last lifecycle runs" }), runs,
    el("h2", { text: "Audit trail" }), el("div", { class: "controls" }, actionSel, textFilter, lastSel), audit);
  main().replaceChildren(page);
  let previous = null, entries = [];

  const renderAudit = () => {
    const a = actionSel.value, f = textFilter.value.trim().toLowerCase();
    const shown = entries.filter((e) => (!a || e.action === a) && (!f || JSON.stringify(e).toLowerCase().includes(f))).reverse();
    const cols = ["time", "actor", "action", "outcome", "table", "rule", "rows", "bytes", "snapshot_id", "files"];
    const head = el("tr", {}, cols.map((c) => el("th", { text: c })));
    const body = shown.map((e) => el("tr", { "data-action": e.action, "data-snapshot": e.snapshot_id ?? "" },
      cols.map((c) => el("td", { class: ["rows", "bytes", "snapshot_id"].includes(c) ? "num" : null,
        text: c === "files" ? String((e.files || []).length) : c === "bytes" ? fmtBytes(e.bytes) : e[c] ?? "" }))));
    audit.replaceChildren(el("p", { class: "muted", id: "audit-count", text: `${shown.length} of ${entries.length} entries` }),
      el("div", { class: "scroll" }, el("table", { id: "audit-table" }, el("thead", {}, head), el("tbody", {}, body))));
  };
  actionSel.addEventListener("change", renderAudit);
  textFilter.addEventListener("input", renderAudit);
  lastSel.addEventListener("change", () => refresh());

  const refresh = async () => {
    // Readiness (/ready answers 503 with the same body when something is not ready).
    try {
      const r = await fetch("/ready");
      const j = await r.json();
      const head = el("tr", {}, ["dependency", "state", "detail", "checked"].map((h) => el("th", { text: h })));
      const body = Object.entries(j.checks).map(([name, c]) => el("tr", { "data-check": name },
        el("td", { text: name }), el("td", { class: c.ok ? "ok" : "notok", text: c.ok ? "ready" : "not ready" }),
        el("td", { text: c.detail }), el("td", { text: new Date(c.at_ms).toISOString().replace("T", " ").slice(0, 19) })));
      ready.replaceChildren(el("p", { id: "ready-overall", class: j.ready ? "ok" : "notok", text: j.ready ? "ready" : "not ready" }),
        el("table", { id: "ready-table" }, el("thead", {}, head), el("tbody", {}, body)));
    } catch (x) { showError(ready, x); }

    // Metrics: totals now, rates since the previous refresh.
    try {
      const r = await fetch("/metrics");
      if (!r.ok) throw new Error("/metrics: " + (await r.text()));
      const m = parseMetrics(await r.text());
      const now = Date.now();
      const rate = (name) => (previous ? (sum(m, name) - sum(previous.m, name)) / ((now - previous.at) / 1000) : NaN);
      const card = (id, label, value) => el("div", { class: "stat", id: "stat-" + id }, el("div", { class: "label", text: label }), el("div", { class: "value", text: value }));
      stats.replaceChildren(
        card("consumed", "records consumed", fmtInt(sum(m, "vintagelake_ingest_records_consumed_total"))),
        card("committed", "records committed", fmtInt(sum(m, "vintagelake_ingest_records_committed_total"))),
        card("committed-rate", "committed / s (since last refresh)", fmtInt(rate("vintagelake_ingest_records_committed_total"))),
        card("lag", "consumer lag (records)", fmtInt(sum(m, "vintagelake_ingest_consumer_lag"))),
        card("dead-lettered", "dead-lettered", fmtInt(sum(m, "vintagelake_ingest_records_dead_lettered_total"))),
        card("buffered", "buffered in ingest", fmtBytes(sum(m, "vintagelake_ingest_buffered_bytes"))),
        card("commits", "table commits", fmtInt(sum(m, "vintagelake_commits_total"))),
        card("queries", "Flight requests", fmtInt(sum(m, "vintagelake_query_requests_total"))),
        card("compactions", "compaction runs", fmtInt(sum(m, "vintagelake_compaction_runs_total"))),
        card("tierings", "tiering runs", fmtInt(sum(m, "vintagelake_tiering_runs_total"))),
      );
      previous = { m, at: now };
      const names = [...new Set((m.vintagelake_tier_files || []).map((x) => x.labels.tier))];
      if (!names.length) {
        tiers.replaceChildren(el("p", { class: "muted", id: "tier-table", text: "no tiering run has reported yet in this process" }));
      } else {
        const head = el("tr", {}, ["tier", "files", "bytes", "oldest data (days)"].map((h) => el("th", { text: h })));
        const body = names.map((t) => el("tr", { "data-tier": t }, el("td", { text: t }),
          el("td", { class: "num", text: fmtInt(sum(m, "vintagelake_tier_files", (l) => l.tier === t)) }),
          el("td", { class: "num", text: fmtBytes(sum(m, "vintagelake_tier_bytes", (l) => l.tier === t)) }),
          el("td", { class: "num", text: fmtInt(sum(m, "vintagelake_tier_oldest_data_age_days", (l) => l.tier === t)) })));
        tiers.replaceChildren(el("table", { id: "tier-table" }, el("thead", {}, head), el("tbody", {}, body)));
      }
    } catch (x) { showError(stats, x); }

    // The audit trail (the Flight `audit` action; needs an admin grant when grants are configured).
    try {
      const a = await api("/api/v1/actions/audit", { method: "POST", body: { last: +lastSel.value } });
      entries = a.entries;
      const actions = [...new Set(entries.map((e) => e.action))].sort();
      const chosen = actionSel.value;
      actionSel.replaceChildren(el("option", { value: "", text: "every action" }), ...actions.map((x) => el("option", { value: x, text: x })));
      actionSel.value = actions.includes(chosen) ? chosen : "";
      const last = (pred) => [...entries].reverse().find(pred);
      const runCard = (id, label, e) => el("div", { class: "stat", id }, el("div", { class: "label", text: label }),
        el("div", { class: "value", text: e ? e.time.replace("T", " ").slice(0, 19) : "none yet" }),
        el("div", { class: "muted", text: e ? `${e.outcome}${e.snapshot_id ? " · snapshot " + e.snapshot_id : ""}${e.files?.length ? " · " + e.files.length + " files" : ""}` : "" }));
      runs.replaceChildren(
        runCard("last-compaction", "last compaction", last((e) => e.actor === "compactor" && e.action === "compact")),
        runCard("last-tiering", "last tiering", last((e) => e.actor === "tierer")),
      );
      renderAudit();
    } catch (x) { showError(audit, x); runs.replaceChildren(); }
    page.dataset.refreshed = String(Date.now());
  };
  await refresh();
  ticker = setInterval(refresh, 5000);
}

// ---- routing -------------------------------------------------------------------------------

async function route() {
  if (ticker) { clearInterval(ticker); ticker = null; }
  const h = location.hash || "#/";
  document.getElementById("nav-series").classList.toggle("active", h === "#/" || h.startsWith("#/series/"));
  document.getElementById("nav-ops").classList.toggle("active", h === "#/ops");
  const who = document.getElementById("who");
  who.replaceChildren();
  if (info.auth_required && token()) {
    who.append("signed in", el("button", { id: "logout", text: "Sign out", onclick: () => { sessionStorage.removeItem(TOKEN_KEY); location.hash = "#/login"; } }));
  }
  if (info.refused) { showError(main(), new Error(info.refused)); return; }
  if (info.auth_required && !token() && h !== "#/login") { location.hash = "#/login"; return; }
  if (h === "#/login") return loginPage();
  if (h.startsWith("#/series/")) return seriesPage(decodeURIComponent(h.slice("#/series/".length)));
  if (h === "#/ops") return opsPage();
  return browserPage();
}

(async () => {
  try {
    info = await (await fetch("/api/v1/info")).json();
  } catch (x) {
    showError(main(), x);
    return;
  }
  window.addEventListener("hashchange", route);
  await route();
})();
