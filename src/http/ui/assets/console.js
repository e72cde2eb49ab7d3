// The console's script: reads the documented JSON API and draws each page. No framework, no
// build step. Writes send the key typed into the header (kept in sessionStorage) as a bearer
// token and show the API's error code and message when they fail.
(function () {
  "use strict";

  const $ = (id) => document.getElementById(id);
  const KEY = "irgan.apiKey";
  const SVG = "http://www.w3.org/2000/svg";
  // Chart colours (the style sheet's palette).
  const C = { c1: "#2f6fde", c2: "#e07b39", c3: "#1f9d55", c4: "#9f54d6", bad: "#d64545", ok: "#1f9d55", muted: "#6b7280" };

  /** An element with attributes (class, text, on* handlers, the rest as attributes). */
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat()) {
      if (c !== undefined && c !== null) e.append(c instanceof Node ? c : String(c));
    }
    return e;
  }

  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function toast(message, bad) {
    const t = $("toast");
    t.textContent = message;
    t.className = bad ? "bad" : "";
    t.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { t.hidden = true; }, bad ? 8000 : 4000);
  }

  /** Calls the API; rejects with "code: message" from the JSON error body on failure. */
  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const key = sessionStorage.getItem(KEY);
    if (key && method !== "GET") headers.Authorization = "Bearer " + key;
    const r = await fetch(path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    let data = text;
    try { data = JSON.parse(text); } catch (_) { /* not JSON: keep the text */ }
    if (!r.ok) {
      const what = data && data.code ? data.code + ": " + data.message : r.status + " " + text;
      const e = new Error(what);
      e.status = r.status;
      throw e;
    }
    return data;
  }

  /** A write from a button: disables it meanwhile, reports the outcome. */
  async function write(button, method, path, done) {
    button.disabled = true;
    try {
      const r = await api(method, path);
      toast(done(r));
      return r;
    } catch (e) {
      toast(method + " " + path + " failed: " + e.message, true);
      return null;
    } finally {
      button.disabled = false;
    }
  }

  const num = (x, d = 3) => (x === null || x === undefined || !isFinite(x) ? "–" : Number(x).toFixed(d));
  const clock = (ms) => new Date(ms).toLocaleTimeString([], { hour12: false });

  function ago(ms) {
    if (!ms) return "–";
    const s = Math.max(0, (Date.now() - ms) / 1000);
    if (s < 90) return Math.round(s) + " s ago";
    if (s < 5400) return Math.round(s / 60) + " min ago";
    if (s < 172800) return (s / 3600).toFixed(1) + " h ago";
    return Math.round(s / 86400) + " days ago";
  }

  function facts(dl, pairs) {
    dl.replaceChildren(...pairs.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]));
  }

  /**
   * A line chart as inline SVG. series: [{name, color, points: [[x, y]], dots}], x in unix ms.
   * opts: {min, max} fix the y range.
   */
  function chart(container, series, opts = {}) {
    const W = 600, H = 170, L = 46, R = 8, T = 8, B = 20;
    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img" });
    const all = series.flatMap((s) => s.points).filter((p) => p[1] !== null && isFinite(p[1]));
    container.replaceChildren(root);
    if (all.length === 0) {
      root.append(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "empty" }, "no data yet"));
      return;
    }
    let x0 = Math.min(...all.map((p) => p[0])), x1 = Math.max(...all.map((p) => p[0]));
    let y0 = opts.min ?? Math.min(...all.map((p) => p[1]));
    let y1 = opts.max ?? Math.max(...all.map((p) => p[1]));
    if (x1 === x0) { x0 -= 1000; x1 += 1000; }
    if (y1 === y0) { const pad = Math.abs(y0) * 0.1 || 1; y0 -= pad; y1 += pad; }
    const sx = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
    const sy = (y) => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
    root.append(svg("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, class: "axis" }));
    root.append(svg("line", { x1: L, y1: T, x2: L, y2: H - B, class: "axis" }));
    const label = (v) => (Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 1 ? v.toFixed(2) : v.toFixed(3));
    root.append(svg("text", { x: L - 4, y: T + 8, "text-anchor": "end" }, label(y1)));
    root.append(svg("text", { x: L - 4, y: H - B, "text-anchor": "end" }, label(y0)));
    root.append(svg("text", { x: L, y: H - 5 }, clock(x0)));
    root.append(svg("text", { x: W - R, y: H - 5, "text-anchor": "end" }, clock(x1)));
    for (const s of series) {
      const pts = s.points.filter((p) => p[1] !== null && isFinite(p[1]));
      if (s.dots) {
        for (const p of pts) {
          root.append(svg("circle", { cx: sx(p[0]), cy: sy(p[1]), r: 3.5, fill: p[2] || s.color }));
        }
      } else if (pts.length) {
        const d = pts.map((p) => sx(p[0]).toFixed(1) + "," + sy(p[1]).toFixed(1)).join(" ");
        root.append(svg("polyline", {
          points: d, fill: "none", stroke: s.color, "stroke-width": 1.6,
          "vector-effect": "non-scaling-stroke",
        }));
      }
    }
    const legend = el("div", { class: "legend" });
    for (const s of series) {
      const swatch = el("i");
      swatch.style.background = s.color;
      legend.append(el("span", {}, swatch, s.name));
    }
    container.append(legend);
  }

  // ----- overview -----

  async function overview() {
    const [model, history, traffic] = await Promise.all([
      api("GET", "/v1/model"), api("GET", "/v1/training/history"), api("GET", "/v1/traffic"),
    ]);
    $("updated").textContent = "updated " + clock(Date.now());
    liveBadge(model.version);
    $("live-version").textContent = model.version ? "v" + model.version : "no snapshot yet";
    const val = model.validation || {};
    facts($("live-facts"), [
      ["published", ago(model.published_unix_ms)],
      ["created", model.created_unix_ms ? new Date(model.created_unix_ms).toLocaleString() : "–"],
      ["users · items", model.users + " · " + model.items],
      ["dims G · D", model.dims.generator + " · " + model.dims.discriminator],
      ["top-k index", model.index],
      [history.gate_metric, num(val[history.gate_metric])],
      ["trained through", model.trained_through_seq ?? "–"],
    ]);
    const g = model.game;
    const state = $("trainer-state");
    state.textContent = g.up ? g.state : "down";
    state.className = "state " + (g.up ? g.state : "down");
    $("trainer-reason").textContent = g.paused ? "(paused)" : "(" + g.reason + ")";
    facts($("trainer-facts"), [
      ["steps", g.steps],
      ["paused", g.paused ? "yes" : "no"],
      ["up · restarts", (g.up ? "up" : "down") + " · " + g.restarts],
      ["feedback applied", "seq " + g.applied_seq + " (" + g.positives + " positives, " + g.holdout + " held out)"],
      ["D acc real · gen", num(g.d.accuracy_real) + " · " + num(g.d.accuracy_generated)],
      ["G entropy · reward", num(g.g.entropy) + " · " + num(g.g.mean_reward)],
      ["step scale", num(g.step_scale)],
      ["stale evaluations", g.stale_evaluations],
      ["last refusal", g.last_refusal || "–"],
      ["last failure", g.last_failure || "–"],
    ]);
    const last = traffic.points[traffic.points.length - 1];
    facts($("traffic-facts"), last ? [
      ["requests/s", num(last.requests_per_second, 2)],
      ["5xx/s", num(last.server_errors_per_second, 2)],
      ["gRPC calls/s", num(last.grpc_per_second, 2)],
      ["feedback/s", num(last.feedback_per_second, 2)],
      ["latency mean", num(last.latency_mean_ms, 2) + " ms"],
      ["latency p95 ≤", num(last.latency_p95_ms, 1) + " ms"],
    ] : [["sampled every", traffic.every_seconds + " s (first rates after two samples)"]]);

    const steps = history.steps;
    const at = (f) => steps.map((s) => [s.unix_ms, f(s)]);
    $("history-note").textContent = steps.length
      ? `last ${steps.length} steps (#${steps[0].step}–#${steps[steps.length - 1].step}), ${history.gates.length} gate evaluations`
      : "no steps yet";
    chart($("chart-d"), [
      { name: "on real", color: C.c1, points: at((s) => s.d_accuracy_real) },
      { name: "on generated", color: C.c2, points: at((s) => s.d_accuracy_generated) },
    ], { min: 0, max: 1 });
    chart($("chart-entropy"), [{ name: "entropy", color: C.c3, points: at((s) => s.g_entropy) }]);
    chart($("chart-reward"), [{ name: "mean reward", color: C.c4, points: at((s) => s.mean_reward) }]);
    const gates = history.gates;
    $("gate-caption").textContent = "Gate metric (" + history.gate_metric + "): candidates and the live pair";
    chart($("chart-gate"), [
      { name: "live", color: C.muted, points: gates.map((e) => [e.unix_ms, e.live_score]) },
      {
        name: "candidate (green published, red refused)", color: C.c1, dots: true,
        points: gates.map((e) => [e.unix_ms, e.score, e.outcome === "published" ? C.ok : C.bad]),
      },
    ]);
    const body = $("gates").tBodies[0];
    const rows = gates.slice(-15).reverse().map((e) => el("tr", {},
      el("td", { text: clock(e.unix_ms) }),
      el("td", { class: "num", text: e.step }),
      el("td", {}, el("span", {
        class: "pill " + (e.outcome === "published" ? "ok" : "bad"),
        text: e.outcome === "published" ? "published v" + e.version : "refused: " + e.reason,
      })),
      el("td", { class: "num", text: num(e.score, 4) }),
      el("td", { class: "num", text: num(e.live_score, 4) }),
      el("td", { text: e.detail || "" })));
    body.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 6, class: "muted", text: "none yet" }))]));

    const pts = traffic.points;
    const tr = (f) => pts.map((p) => [p.unix_ms, f(p)]);
    chart($("chart-requests"), [
      { name: "REST", color: C.c1, points: tr((p) => p.requests_per_second) },
      { name: "gRPC", color: C.c4, points: tr((p) => p.grpc_per_second) },
      { name: "5xx", color: C.bad, points: tr((p) => p.server_errors_per_second) },
    ], { min: 0 });
    chart($("chart-feedback"), [{ name: "accepted", color: C.c3, points: tr((p) => p.feedback_per_second) }], { min: 0 });
    chart($("chart-latency"), [
      { name: "mean", color: C.c1, points: tr((p) => p.latency_mean_ms) },
      { name: "p95 bucket", color: C.c2, points: tr((p) => p.latency_p95_ms) },
    ], { min: 0 });
  }

  function initOverview() {
    const refresh = () => overview().catch((e) => toast("cannot read the service: " + e.message, true));
    const loop = () => refresh().finally(() => setTimeout(loop, 5000));
    loop();
    $("pause").addEventListener("click", (e) =>
      write(e.target, "POST", "/v1/training/pause", () => "training paused").then(refresh));
    $("resume").addEventListener("click", (e) =>
      write(e.target, "POST", "/v1/training/resume", () => "training resumed").then(refresh));
    $("publish").addEventListener("click", (e) =>
      write(e.target, "POST", "/v1/snapshots", (r) => "published v" + r.version).then(refresh));
  }

  // ----- snapshots -----

  function metrics(v) {
    if (!v || typeof v !== "object") return el("span", { class: "muted", text: "–" });
    return el("div", { class: "metrics" },
      Object.entries(v).map(([k, x]) => el("span", {}, el("b", { text: k }), " ", typeof x === "number" ? (Number.isInteger(x) ? String(x) : num(x, 4)) : String(x))));
  }

  async function snapshots() {
    const list = await api("GET", "/v1/snapshots");
    liveBadge(list.live);
    const rows = list.snapshots.map((s) => {
      const action = s.live
        ? el("span", { class: "pill live", text: "live" })
        : el("button", {
          type: "button", class: "activate", "data-version": s.version, text: "Activate",
          onclick: () => confirmActivate(s.version, list.live),
        });
      return el("tr", { class: s.live ? "live" : "", id: "snapshot-" + s.version },
        el("td", { class: "num", text: "v" + s.version }),
        el("td", { text: s.created_unix_ms ? new Date(s.created_unix_ms).toLocaleString() + " (" + ago(s.created_unix_ms) + ")" : "–" }),
        el("td", { class: "num", text: s.users ?? "–" }),
        el("td", { class: "num", text: s.items ?? "–" }),
        el("td", {}, s.complete === false ? el("span", { class: "pill bad", text: "unreadable manifest" }) : metrics(s.validation)),
        el("td", {}, action));
    });
    $("snapshots").tBodies[0].replaceChildren(...(rows.length ? rows
      : [el("tr", {}, el("td", { colspan: 6, class: "muted", text: "no snapshots on disk yet" }))]));
  }

  function confirmActivate(version, live) {
    const dialog = $("confirm");
    $("confirm-text").textContent = `Make v${version} live instead of v${live}? Queries switch to it at once and training continues from it.`;
    $("confirm-ok").dataset.version = version;
    dialog.returnValue = "";
    dialog.showModal();
  }

  function initSnapshots() {
    const refresh = () => snapshots().catch((e) => toast("cannot list snapshots: " + e.message, true));
    refresh();
    $("refresh").addEventListener("click", refresh);
    $("publish").addEventListener("click", (e) =>
      write(e.target, "POST", "/v1/snapshots", (r) => "published v" + r.version).then(refresh));
    $("confirm").addEventListener("close", () => {
      const dialog = $("confirm");
      if (dialog.returnValue !== "ok") return;
      const v = $("confirm-ok").dataset.version;
      const button = document.querySelector(`button[data-version="${v}"]`) || $("refresh");
      write(button, "POST", `/v1/snapshots/${v}/activate`, (r) => "v" + r.version + " is live").then(refresh);
    });
  }

  // ----- try it -----

  // An exploration list shows the propensity instead of the score (its score is ln propensity).
  function rankedTable(title, note, items, withPropensity) {
    const head = el("tr", {}, el("th", { class: "num", text: "#" }), el("th", { text: "item" }),
      el("th", { class: "num", text: withPropensity ? "propensity" : "score" }),
      el("th", { class: "num", text: "G log p" }), el("th", { class: "num", text: "D prob" }));
    const rows = items.map((it, i) => el("tr", {},
      el("td", { class: "num", text: i + 1 }), el("td", { class: "mono", text: it.item }),
      el("td", { class: "num", text: num(withPropensity ? it.propensity : it.score, 4) }),
      el("td", { class: "num", text: num(it.generator, 4) }),
      el("td", { class: "num", text: num(it.discriminator, 4) })));
    return el("div", { class: "list" }, el("h3", {}, title, " ", el("small", { class: "muted", text: note })),
      el("table", { class: "grid" }, el("thead", {}, head), el("tbody", {}, rows)));
  }

  async function recommendations() {
    const user = $("user").value.trim();
    const k = $("k").value || "10";
    const seen = $("exclude-seen").checked;
    const explore = Number($("explore").value || 0);
    const base = `/v1/users/${encodeURIComponent(user)}/recommendations?k=${encodeURIComponent(k)}&exclude_seen=${seen}`;
    const asks = [["G (generator)", "generator"], ["D (discriminator)", "discriminator"], ["Blend", "blend"]]
      .map(([title, m]) => [title, base + "&model=" + m, false]);
    if (explore > 0) asks.push([`Explore (G sampled, T=${explore})`, base + "&explore=" + explore + "&seed=1", true]);
    const out = $("recs");
    try {
      const lists = await Promise.all(asks.map(([, url]) => api("GET", url)));
      const first = lists[0];
      $("recs-note").textContent = `user ${first.user} · snapshot v${first.version}` +
        (first.cold_start ? " · unknown to the model: a cold start (popularity)" : "");
      out.replaceChildren(...lists.map((l, i) => rankedTable(asks[i][0], l.model, l.items, asks[i][2])));
    } catch (e) {
      $("recs-note").textContent = "";
      out.replaceChildren(el("p", { class: "warn", text: e.message }));
    }
  }

  async function similar() {
    const item = $("item").value.trim();
    const model = $("similar-model").value;
    const out = $("similar");
    try {
      const r = await api("GET", `/v1/items/${encodeURIComponent(item)}/similar?model=${model}&k=10`);
      out.replaceChildren(rankedTable("Similar to " + r.item, model + " space, cosine · v" + r.version, r.items, false));
    } catch (e) {
      out.replaceChildren(el("p", { class: "warn", text: e.message }));
    }
  }

  /** Documents from the text area: JSON, LETOR lines, or "id f1 f2 …" lines. */
  function parseDocuments(text, n) {
    const t = text.trim();
    if (t.startsWith("[") || t.startsWith("{")) {
      const v = JSON.parse(t);
      return Array.isArray(v) ? v : v.documents;
    }
    return t.split("\n").map((line, i) => line.trim()).filter((l) => l).map((line, i) => {
      if (/\bqid:/.test(line)) {
        const [data, comment = ""] = line.split("#");
        const features = new Array(n).fill(0);
        for (const tok of data.trim().split(/\s+/).slice(2)) {
          const [f, v] = tok.split(":");
          if (Number(f) >= 1 && Number(f) <= n) features[Number(f) - 1] = Number(v);
        }
        const m = comment.match(/docid\s*=\s*(\S+)/);
        return { id: m ? m[1] : "d" + (i + 1), features };
      }
      const [id, ...rest] = line.split(/[\s,]+/);
      return { id, features: rest.map(Number) };
    });
  }

  function exampleDocuments(n) {
    let seed = 7;
    const rand = () => { seed = (seed * 16807) % 2147483647; return seed / 2147483647; };
    return Array.from({ length: 6 }, (_, d) =>
      "d" + (d + 1) + " " + Array.from({ length: n }, () => rand().toFixed(3)).join(" ")).join("\n");
  }

  async function searchRank() {
    const box = $("search");
    const n = Number(box.dataset.features);
    const out = $("search-results");
    try {
      const documents = parseDocuments($("search-docs").value, n);
      const body = { query: $("search-query").value || "q", documents };
      if ($("search-model").value) body.model = $("search-model").value;
      const r = await api("POST", "/v1/search/rank", body);
      const head = el("tr", {}, ["#", "document", "score", "G score", "D score", "G probability"]
        .map((h, i) => el("th", { class: i === 1 ? "" : "num", text: h })));
      const rows = r.results.map((d, i) => el("tr", {}, el("td", { class: "num", text: i + 1 }),
        el("td", { class: "mono", text: d.id }), el("td", { class: "num", text: num(d.score, 4) }),
        el("td", { class: "num", text: num(d.generator_score, 4) }),
        el("td", { class: "num", text: num(d.discriminator_score, 4) }),
        el("td", { class: "num", text: num(d.generator_probability, 4) })));
      out.replaceChildren(el("div", { class: "list" },
        el("h3", {}, "Query " + r.query, " ", el("small", { class: "muted", text: r.model + " · search v" + r.version })),
        el("table", { class: "grid" }, el("thead", {}, head), el("tbody", {}, rows))));
    } catch (e) {
      out.replaceChildren(el("p", { class: "warn", text: e.message }));
    }
  }

  function initTry() {
    $("recs-form").addEventListener("submit", (e) => { e.preventDefault(); recommendations(); });
    $("similar-form").addEventListener("submit", (e) => { e.preventDefault(); similar(); });
    const box = $("search");
    const on = box.dataset.search === "on";
    $("search-off").hidden = on;
    $("search-form").hidden = !on;
    $("search-docs").value = exampleDocuments(Number(box.dataset.features));
    $("search-example").addEventListener("click", () => {
      $("search-docs").value = exampleDocuments(Number(box.dataset.features));
    });
    $("search-form").addEventListener("submit", (e) => { e.preventDefault(); searchRank(); });
    if ($("user").value) recommendations();
    if ($("item").value) similar();
  }

  // ----- every page -----

  function liveBadge(version) {
    $("live-badge").textContent = version ? "live v" + version : "no model";
  }

  function init() {
    const key = $("api-key");
    key.value = sessionStorage.getItem(KEY) || "";
    key.addEventListener("input", () => sessionStorage.setItem(KEY, key.value));
    const page = document.body.dataset.page;
    if (page === "overview") initOverview();
    else if (page === "snapshots") initSnapshots();
    else api("GET", "/v1/model").then((m) => liveBadge(m.version), () => liveBadge(0));
    if (page === "try") initTry();
  }

  init();
})();
