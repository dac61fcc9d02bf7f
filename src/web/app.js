// pricegrid's page: glue between the daemon's public API and the DOM.
//
// The status bar follows /v1/events (server-sent events; /v1/status once a
// second where EventSource is missing). The map, its gaps, the chart and the
// failures are read from /v1/prices, /v1/coverage, /v1/aggregate and
// /v1/failures for the chosen symbol, again whenever a round ends; a gap
// clicked marks its cells on the map and shows the first in the hover line. The map is built as one string and
// inserted once, so thousands of cells cost one parse and one layout.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  // Rows per page asked of the API; the daemon allows up to 100,000.
  const PAGE = 10000;
  // Pages read at most for one answer: a bound, far above 10 exchanges x 3 years.
  const MAX_PAGES = 500;
  // Status silence after which the bar says the daemon is unreachable.
  const OFFLINE_AFTER_MS = 3500;
  // While a round runs, the map is read again this often (and at its end).
  const RELOAD_RUNNING_MS = 30000;
  // A cell's states in the order the page lists them, each with the one
  // word the legend, the status bar, the map's header and the hover text
  // all use, and what it means (the legend's tooltip). `missing` is a cell
  // the daemon does not hold yet.
  const STATES = [
    ["final", "final", "a price asked for after the day closed (and the grace period): settled"],
    ["provisional", "provisional", "a price, or none, asked for while the day was open: it may still change"],
    ["none", "none", "the source says it has no price for this day"],
    ["failed", "failed", "no answer (the hover says why): asked again next round"],
    ["rejected", "rejected", "refused by a rule (the hover says which)"],
    ["missing", "not fetched yet", "not asked yet, or asked and not answered yet"],
  ];
  const WORD = Object.fromEntries(STATES.map(([state, word]) => [state, word]));
  const PALETTE = ["#2563eb", "#d9480f", "#2b8a3e", "#ae3ec9", "#e8590c", "#0c8599",
    "#c2255c", "#5f3dc4", "#66a80f", "#495057", "#1098ad", "#f08c00"];

  let latest = null;          // the last status
  let lastSeen = 0;           // when it came
  let symbol = null;          // the symbol shown
  let loadedAfterRound = -1;  // the finished round the shown data follows
  let loadToken = 0;          // drops the answer of a load overtaken by another
  let loads = 0;
  let loadStarted = 0;        // when the shown data was asked for
  let charts = [];

  const esc = (v) => String(v).replace(/[&<>"']/g, (c) =>
    ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  const num = (v) => (v === null || v === undefined ? "–" : String(v));
  const pct = (part, whole) => (whole > 0 ? (100 * part) / whole : 0);
  // "12 final" for the count of a state, marked with the state for scripts.
  const counted = (state, n) => `<span data-state="${state}">${n} ${esc(WORD[state])}</span>`;

  const ISO_UTC = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(?:\.\d+)?Z$/;
  // A time from the API (RFC 3339) as `2026-12-06 09:52:03 UTC`: UTC like
  // the days, whatever the browser's zone; the text as sent if it is none.
  function utc(text) {
    // The daemon's own form ("…T09:52:03.123Z") is cut, not parsed: the
    // map asks this of every cell, and 10,000 Dates cost ~40 ms there.
    const z = ISO_UTC.exec(text);
    if (z) return `${z[1]} ${z[2]} UTC`;
    // Date parses at most milliseconds; a time may have nanoseconds.
    const t = new Date(String(text).replace(/(\.\d{3})\d+/, "$1"));
    if (Number.isNaN(t.getTime())) return String(text);
    return t.toISOString().slice(0, 19).replace("T", " ") + " UTC";
  }

  // ---- status bar ---------------------------------------------------------

  function onStatus(s) {
    latest = s;
    lastSeen = Date.now();
    const c = s.counts || { tasks: 0, final: 0, provisional: 0, none: 0, failed: 0, rejected: 0 };
    const done = s.done || 0;
    $("round").textContent = String(s.round);
    const state = $("state");
    state.dataset.state = s.state;
    state.textContent = s.state;
    const bar = $("progress");
    bar.dataset.done = String(done);
    bar.dataset.tasks = String(c.tasks);
    bar.dataset.running = String(s.round_running);
    bar.setAttribute("aria-valuenow", String(done));
    bar.setAttribute("aria-valuemax", String(c.tasks));
    // The round's tasks by state; those not done yet are its cells not
    // fetched yet (the bar's empty part), and rejected ones are rare: both
    // are counted only when there are some.
    const parts = [`${done} / ${c.tasks} tasks`];
    for (const [state] of STATES) {
      const n = state === "missing" ? Math.max(0, c.tasks - done) : c[state] || 0;
      if (state !== "missing") $("seg-" + state).style.width = pct(n, c.tasks) + "%";
      if (n || (state !== "missing" && state !== "rejected")) parts.push(counted(state, n));
    }
    $("progress-text").innerHTML = parts.join(" · ");
    // Beside the round's counts, the record's totals: once everything is
    // settled rounds are rare (a tick with nothing due runs none), and
    // these are what the daemon holds.
    const stored = (s.stored && s.stored.cells) || {};
    const held = Object.values(stored).reduce((a, b) => a + b, 0);
    const totals = [`${held} cells`];
    for (const [state] of STATES) {
      const n = stored[state] || 0;
      if (state !== "missing" && (n || (state !== "rejected"))) totals.push(counted(state, n));
    }
    $("stored-text").innerHTML = totals.join(" · ");
    $("stored").dataset.cells = String(held);
    $("workers").textContent = num(s.workers);
    $("in-flight").textContent = num(s.in_flight);
    $("config-version").textContent = num(s.config_version);
    showReload(s.last_reload);
    showFleet(s.fleet);
    offerSymbols(s.symbols || []);
    const finished = s.last_round ? s.last_round.round : 0;
    if (symbol && !s.round_running && finished !== loadedAfterRound) {
      load();
    } else if (symbol && s.round_running && Date.now() - loadStarted > RELOAD_RUNNING_MS) {
      load();
    }
  }

  // In a fleet (a PostgreSQL record shared by several daemons): each
  // daemon with the lanes it holds, since when, and its last round.
  function showFleet(f) {
    const el = $("fleet");
    if (!f) {
      el.hidden = true;
      return;
    }
    el.hidden = false;
    const held = new Map();
    for (const l of f.leases || []) {
      if (!l.live || !l.holder) continue;
      if (!held.has(l.holder)) held.set(l.holder, []);
      held.get(l.holder).push(`${esc(l.lane)} (epoch ${l.epoch}, since ${l.since ? utc(l.since) : "?"})`);
    }
    const parts = (f.daemons || []).map((d) => {
      const lanes = held.get(d.name) || [];
      const state = d.live ? "" : " (not seen)";
      const round = d.last_round == null ? "no round yet" : `last round ${d.last_round}`;
      return `<span class="fleet-member" data-name="${esc(d.name)}" data-lanes="${lanes.length}" data-last-round="${d.last_round == null ? "" : d.last_round}">` +
        `<b>${esc(d.name)}</b>${state}: ${lanes.length ? lanes.join(", ") : "no lane"}; ${round}</span>`;
    });
    $("fleet-text").innerHTML = parts.join(" · ");
  }

  function showReload(r) {
    const el = $("reload");
    if (!r) {
      el.dataset.result = "none";
      el.textContent = "no reload yet";
      el.title = "";
      return;
    }
    const at = utc(r.at);
    el.dataset.result = r.result;
    if (r.result === "applied") {
      const changed = r.changed.length ? ": " + r.changed.join(", ") : " (no change)";
      el.textContent = `reload applied at ${at}, version ${r.version}${changed}`;
    } else {
      el.textContent = `reload rejected at ${at}, still version ${r.version}: ${r.error}`;
    }
    el.title = el.textContent;
  }

  function offerSymbols(symbols) {
    const select = $("symbol");
    const have = new Set(Array.from(select.options, (o) => o.value));
    for (const s of symbols) {
      if (!have.has(s)) select.add(new Option(s, s));
    }
    if (!symbol && select.options.length) {
      symbol = symbols.includes("btc") ? "btc" : select.options[0].value;
      select.value = symbol;
      load();
    }
  }

  function watchdog() {
    if (Date.now() - lastSeen > OFFLINE_AFTER_MS) {
      const state = $("state");
      state.dataset.state = "offline";
      state.textContent = "unreachable";
    }
  }

  // ---- requests -----------------------------------------------------------
  // With api.token_file set, every route but the page's own files needs
  // `Authorization: Bearer <token>`. On a 401 the page asks for the token
  // once, keeps it in sessionStorage (this tab only, gone when it closes;
  // never in a URL, where logs and history would keep it) and sends it as
  // that header. EventSource cannot send a header, so with a token the
  // status bar polls /v1/status each second instead of /v1/events.
  const TOKEN_KEY = "pricegrid.token";
  let declined = false;       // the token prompt was cancelled: not asked again

  const token = () => sessionStorage.getItem(TOKEN_KEY);

  function withToken() {
    const t = token();
    return t ? { headers: { Authorization: `Bearer ${t}` } } : {};
  }

  async function request(url) {
    let r = await fetch(url, withToken());
    if (r.status === 401 && !declined) {
      sessionStorage.removeItem(TOKEN_KEY);
      const t = window.prompt("This pricegrid API needs its token (the text of api.token_file):");
      if (t && t.trim()) {
        sessionStorage.setItem(TOKEN_KEY, t.trim());
        r = await fetch(url, withToken());
      } else {
        declined = true;
      }
    }
    return r;
  }

  function poll() {
    request("/v1/status")
      .then((r) => (r.ok ? r.json() : Promise.reject(r.status)))
      .then(onStatus)
      .catch(() => {})
      .finally(() => setTimeout(poll, 1000));
  }

  async function connect() {
    // One status first: it says whether a token is needed (and asks it).
    const first = await request("/v1/status").catch(() => null);
    if (first && first.ok) onStatus(await first.json());
    if (!window.EventSource || token() || (first && first.status === 401)) {
      setTimeout(poll, 1000);
      return;
    }
    // EventSource reconnects by itself (the daemon sends `retry:`).
    const events = new EventSource("/v1/events");
    events.addEventListener("status", (e) => onStatus(JSON.parse(e.data)));
  }

  // ---- data ---------------------------------------------------------------

  // Every page of a paged route, following `next`; a 503 (too many queries
  // at once) is tried again a few times.
  async function fetchAll(base) {
    const rows = [];
    let after = null;
    for (let page = 0; page < MAX_PAGES; page++) {
      const url = base + (after ? "&after=" + encodeURIComponent(after) : "");
      const body = await fetchJson(url);
      for (const r of body.rows) rows.push(r);
      if (!body.next) return rows;
      after = body.next;
    }
    throw new Error(`${base}: more than ${MAX_PAGES} pages`);
  }

  async function fetchJson(url) {
    for (let attempt = 0; attempt < 5; attempt++) {
      const r = await request(url);
      if (r.ok) return r.json();
      if (r.status !== 503) throw new Error(`${url}: HTTP ${r.status} ${await r.text()}`);
      await new Promise((done) => setTimeout(done, 500 * (attempt + 1)));
    }
    throw new Error(`${url}: still busy`);
  }

  function daysOf(window, rows) {
    let from = window && window.from;
    let to = window && window.to;
    if (!from || !to) {
      for (const r of rows) {
        if (!from || r.day < from) from = r.day;
        if (!to || r.day > to) to = r.day;
      }
    }
    const days = [];
    if (!from) return days;
    const end = Date.parse(to + "T00:00:00Z");
    // A bound on the loop: 40 years of days.
    for (let t = Date.parse(from + "T00:00:00Z"); t <= end && days.length < 15000; t += 86400000) {
      days.push(new Date(t).toISOString().slice(0, 10));
    }
    return days;
  }

  async function load() {
    if (!symbol) return;
    const token = ++loadToken;
    loadStarted = Date.now();
    const s = latest;
    const finished = s && s.last_round ? s.last_round.round : 0;
    loadedAfterRound = finished;
    const window = s && s.window;
    const range = window ? `&from=${window.from}&to=${window.to}` : "";
    const sym = encodeURIComponent(symbol);
    const t0 = performance.now();
    let rows, across, references, failures, coverage;
    try {
      rows = await fetchAll(`/v1/prices?symbol=${sym}&field=close&limit=${PAGE}${range}`);
      coverage = await fetchAll(`/v1/coverage?symbol=${sym}&limit=${PAGE}${range}`);
      across = await fetchAll(`/v1/aggregate?symbol=${sym}&limit=${PAGE}${range}`);
      references = await fetchAll(`/v1/reference?symbol=${sym}&limit=${PAGE}${range}`);
      failures = await fetchJson(`/v1/failures?${range.slice(1)}`);
    } catch (e) {
      $("load-info").textContent = "could not load: " + e.message;
      loadedAfterRound = -1;
      return;
    }
    if (token !== loadToken) return;
    const fetched = performance.now() - t0;
    const exchanges = ((s && s.exchanges) || []).slice();
    for (const r of rows) if (!exchanges.includes(r.exchange)) exchanges.push(r.exchange);
    exchanges.sort();
    const days = daysOf(window, rows);
    const byKey = new Map();
    for (const r of rows) byKey.set(r.exchange + "|" + r.day, r);
    const renderMs = renderMap(exchanges, days, byKey);
    renderChart(exchanges, days, byKey, across, references);
    renderGaps(coverage);
    renderFailures(failures);
    loads += 1;
    const map = $("map");
    map.dataset.symbol = symbol;
    map.dataset.loads = String(loads);
    map.dataset.round = String(finished);
    map.dataset.renderMs = renderMs.toFixed(1);
    map.dataset.fetchMs = fetched.toFixed(1);
    $("window").textContent = days.length ? `${days[0]} … ${days[days.length - 1]} (${days.length} days)` : "";
    $("load-info").textContent =
      `${exchanges.length * days.length} cells: data in ${fetched.toFixed(0)} ms, map drawn in ${renderMs.toFixed(0)} ms`;
  }

  // ---- coverage map -------------------------------------------------------

  function cellTitle(exchange, day, r) {
    if (!r) return `${exchange} ${day}: ${WORD.missing}`;
    let t = `${exchange} ${day}: ${WORD[r.state] || r.state}`;
    if (r.close !== null && r.close !== undefined) t += `, close ${r.close}`;
    const flags = flagText(r.flags);
    if (flags) t += ` (flagged: ${flags})`;
    if (r.fetched_at) t += `, fetched ${utc(r.fetched_at)}`;
    if (r.reason) t += `, reason: ${r.reason}`;
    return t;
  }

  function flagText(flags) {
    if (!flags) return "";
    return Array.isArray(flags) ? flags.join(" ") : String(flags);
  }

  // Builds the whole grid as one string and inserts it once; returns the
  // milliseconds taken, layout included.
  function renderMap(exchanges, days, byKey) {
    const t0 = performance.now();
    const map = $("map");
    const parts = [];
    const counts = {};
    for (const ex of exchanges) {
      const e = esc(ex);
      parts.push(`<div class="label">${e}</div>`);
      for (const day of days) {
        const r = byKey.get(ex + "|" + day);
        const state = r ? r.state : "missing";
        counts[state] = (counts[state] || 0) + 1;
        const flags = r ? flagText(r.flags) : "";
        parts.push(`<i class="c s-${state}${flags ? " flagged" : ""}" data-exchange="${e}" data-day="${day}" data-state="${state}"` +
          (flags ? ` data-flags="${esc(flags)}"` : "") +
          ` title="${esc(cellTitle(ex, day, r))}"></i>`);
      }
    }
    parts.push(`<div class="label"></div><div class="axis"></div>`);
    // The days share the width left of the exchanges' names equally, so the
    // window shown fits the page (down to a pixel a day, ~1,300 days at
    // 1400 px; a longer window scrolls).
    map.style.gridTemplateColumns = `max-content repeat(${days.length}, minmax(1px, 1fr))`;
    // A line between days where they are wide enough to spare it.
    map.style.columnGap = days.length <= 200 ? "1px" : "0";
    map.innerHTML = parts.join("");
    map.dataset.cells = String(exchanges.length * days.length);
    // Reading the axis's width forces the layout, so the figure includes it.
    const axis = map.querySelector(".axis");
    axis.innerHTML = axisLabels(days, axis.clientWidth);
    const ms = performance.now() - t0;
    const known = STATES.filter(([state]) => counts[state]).map(([state]) => counted(state, counts[state]));
    const other = Object.keys(counts).filter((k) => !(k in WORD)).sort()
      .map((k) => `<span>${counts[k]} ${esc(k)}</span>`);
    $("map-summary").innerHTML = known.concat(other).join(" · ");
    return ms;
  }

  const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

  // Ticks under the map: weeks for a short window, months (years at each
  // January) for a long one, placed by the day's share of the axis's
  // `width` px; a tick too near the right end for its text is left out
  // rather than widening the map.
  function axisLabels(days, width) {
    const out = [];
    days.forEach((day, i) => {
      let text = null;
      if (days.length <= 120) {
        if (i % 7 === 0) text = day.slice(5);
      } else if (day.endsWith("-01")) {
        const month = Number(day.slice(5, 7)) - 1;
        if (month === 0) text = day.slice(0, 4);
        else if (days.length <= 800) text = MONTHS[month];
      }
      // About 7 px a character at the axis's 11 px, and its 2 px padding.
      const room = width - (width * i) / days.length;
      if (text !== null && room >= text.length * 7 + 4) {
        out.push(`<span style="left:${((100 * i) / days.length).toFixed(3)}%">${text}</span>`);
      }
    });
    return out.join("");
  }

  // The legend: a swatch and the word of each state, then a flagged price.
  function renderLegend() {
    $("legend").innerHTML = STATES.map(([state, word, meaning]) =>
      `<li data-state="${state}" title="${esc(meaning)}"><i class="c s-${state}"></i>${esc(word)}</li>`).join("") +
      `<li data-flag="flagged" title="a price kept as sent, with a flag (the hover says which)">` +
      `<i class="c flagged"></i>flagged price</li>`;
  }

  function onHover(e) {
    const cell = e.target.closest(".c[data-day]");
    if (cell) $("hover").textContent = cell.title;
  }

  // ---- gaps ---------------------------------------------------------------

  // A button per gap of the symbol's coverage, by exchange then day.
  function renderGaps(coverage) {
    const parts = [];
    for (const c of coverage) {
      for (const g of c.gaps) {
        const when = g.days === 1 ? g.from : `${g.from} … ${g.to}`;
        parts.push(`<button type="button" data-exchange="${esc(c.exchange)}" data-kind="${esc(g.kind)}"` +
          ` data-from="${esc(g.from)}" data-to="${esc(g.to)}" aria-pressed="false"` +
          ` title="${g.days} day(s) ${esc(WORD[g.kind] || g.kind)}: click to mark them on the map">` +
          `${esc(c.exchange)}: ${esc(WORD[g.kind] || g.kind)} ${esc(when)}</button>`);
      }
    }
    $("gaps").innerHTML = parts.length ? parts.join("") : `<span class="muted">no gaps</span>`;
    $("gaps-summary").textContent = `${parts.length} runs of missing, failed or no-price days`;
  }

  // Marks a gap's cells on the map and shows the first cell's details.
  function pickGap(button) {
    for (const b of $("gaps").querySelectorAll("button[aria-pressed='true']")) b.setAttribute("aria-pressed", "false");
    for (const c of $("map").querySelectorAll(".c.picked")) c.classList.remove("picked");
    button.setAttribute("aria-pressed", "true");
    const { exchange, from, to } = button.dataset;
    const cells = Array.from($("map").querySelectorAll(".c[data-day]"))
      .filter((c) => c.dataset.exchange === exchange && c.dataset.day >= from && c.dataset.day <= to);
    for (const c of cells) c.classList.add("picked");
    $("map").dataset.picked = `${exchange} ${from} ${to}`;
    if (cells.length) {
      $("hover").textContent = cells[0].title;
      cells[0].scrollIntoView({ block: "nearest", inline: "nearest" });
    }
  }

  // ---- chart --------------------------------------------------------------

  // The reference close (README: "Reference close") is drawn over the
  // exchanges' closes; a day without one (insufficient) is a gap in it.
  function renderChart(exchanges, days, byKey, across, references) {
    for (const c of charts) c.destroy();
    charts = [];
    const host = $("chart");
    host.dataset.series = exchanges.join(",");
    const closes = exchanges.map((ex) => days.map((d) => {
      const r = byKey.get(ex + "|" + d);
      return r && (r.state === "final" || r.state === "provisional") && r.close !== undefined ? r.close : null;
    }));
    const empty = $("chart-empty");
    const why = emptyChart(closes, days);
    empty.hidden = why === null;
    empty.textContent = why || "";
    if (!window.uPlot || why !== null) return;
    const xs = days.map((d) => Date.parse(d + "T00:00:00Z") / 1000);
    const byDay = new Map(across.map((a) => [a.day, a]));
    const pick = (f) => days.map((d) => { const a = byDay.get(d); return a && a[f] !== undefined ? a[f] : null; });
    const max = pick("max_close");
    const min = pick("min_close");
    const median = pick("median_close");
    const spread = pick("spread_pct");
    const refByDay = new Map(references.filter((r) => r.close !== null && r.close !== undefined).map((r) => [r.day, r.close]));
    const reference = days.map((d) => (refByDay.has(d) ? refByDay.get(d) : null));
    host.dataset.references = String(reference.filter((v) => v !== null).length);
    const width = Math.max(400, host.clientWidth || 900);
    const series = [{}];
    exchanges.forEach((ex, i) => series.push({ label: ex, stroke: PALETTE[i % PALETTE.length], width: 1 }));
    series.push({ label: "max", stroke: "rgba(20,32,46,0.35)", width: 1, dash: [4, 4] });
    series.push({ label: "min", stroke: "rgba(20,32,46,0.35)", width: 1, dash: [4, 4] });
    series.push({ label: "median", stroke: "#14202e", width: 2.5 });
    series.push({ label: "reference", stroke: "#2f9e44", width: 2.5, dash: [8, 3] });
    const maxIdx = exchanges.length + 1;
    // Days are UTC days: draw them so in any time zone.
    const tzDate = (ts) => window.uPlot.tzDate(new Date(ts * 1000), "Etc/UTC");
    charts.push(new window.uPlot({
      width, height: 320, series, tzDate,
      bands: [{ series: [maxIdx, maxIdx + 1], fill: "rgba(37,99,235,0.12)" }],
      scales: { x: { time: true } },
      axes: [{}, { label: "close", size: 70 }],
    }, [xs, ...closes, max, min, median, reference], host));
    charts.push(new window.uPlot({
      width, height: 150, tzDate,
      series: [{}, { label: "spread %", stroke: "#d9480f", fill: "rgba(217,72,15,0.15)", width: 1 }],
      scales: { x: { time: true } },
      axes: [{}, { label: "spread %", size: 70 }],
    }, [xs, spread], $("spread")));
  }

  // Why the chart has nothing to draw, or null when it has a close: before
  // the first round ends nothing may be stored yet; after it, the window
  // may hold no final or provisional price of the symbol.
  function emptyChart(closes, days) {
    if (closes.some((series) => series.some((v) => v !== null))) return null;
    const s = latest;
    if (!s || !s.last_round) return `No prices yet for ${symbol}: the first round has not finished.`;
    const where = days.length ? `${days[0]} … ${days[days.length - 1]}` : "this window";
    const running = s.round_running ? ` (round ${s.round} is running)` : "";
    return `No prices for ${symbol}: no final or provisional price in ${where}${running}.`;
  }

  // ---- failures -----------------------------------------------------------

  function renderFailures(body) {
    const rows = body.rows || [];
    $("failures-summary").textContent = `${body.failed || 0} failed cells, every symbol, by exchange and reason`;
    $("failures").tBodies[0].innerHTML = rows.length
      ? rows.map((g) => `<tr data-exchange="${esc(g.exchange)}" data-cells="${g.cells}"><td>${esc(g.exchange)}</td>` +
        `<td class="reason">${esc(g.reason)}</td><td class="n">${g.cells}</td>` +
        `<td>${esc(g.symbols.join(", "))}</td><td>${esc(g.first_day)} … ${esc(g.last_day)}</td></tr>`).join("")
      : `<tr><td colspan="5" class="muted">no failed cells</td></tr>`;
  }

  // ---- start ----------------------------------------------------------------

  renderLegend();
  $("symbol").addEventListener("change", (e) => {
    symbol = e.target.value;
    load();
  });
  $("refresh").addEventListener("click", () => load());
  $("map").addEventListener("mouseover", onHover);
  $("gaps").addEventListener("click", (e) => {
    const button = e.target.closest("button[data-exchange]");
    if (button) pickGap(button);
  });
  setInterval(watchdog, 1000);
  connect();
})();
