// Roost dashboard, core: the API key, API calls (relative URLs, so a path prefix works),
// the view router (#/name), element helpers and a small canvas line chart. Views are
// registered by views.js and devices.js into VIEWS.
"use strict";

const KEY = "roost.api_key";
const VIEWS = {};
const COLORS = { "mqtt": "#2563eb", "mqtt-sn": "#16a34a", "coap": "#d97706", "lwm2m": "#9333ea",
  "lorawan": "#dc2626", "codec": "#0891b2", "dashboard": "#64748b" };

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

function key() { return localStorage.getItem(KEY) || ""; }

/// Calls /api/v1 (relative to the page); JSON in and out; null for 204.
async function api(path, opts = {}) {
  const init = { method: opts.method || "GET", headers: { "Authorization": "Bearer " + key() }, signal: opts.signal };
  if (opts.body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(opts.body);
  }
  const r = await fetch("api/v1" + path, init);
  if (!r.ok) throw new ApiError(r.status, await errorText(r));
  if (r.status === 204) return null;
  return r.json();
}

async function errorText(r) {
  try { return (await r.json()).message || String(r.status); } catch (_) { return String(r.status); }
}

/// A server-sent event stream read with fetch (EventSource cannot send the key header).
async function stream(path, onMessage, signal) {
  const r = await fetch("api/v1" + path, { headers: { "Authorization": "Bearer " + key() }, signal });
  if (!r.ok) throw new ApiError(r.status, await errorText(r));
  const reader = r.body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += decoder.decode(value, { stream: true });
        let end;
        while ((end = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, end);
          buf = buf.slice(end + 2);
          const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
          if (data) { try { onMessage(JSON.parse(data)); } catch (_) { /* not JSON: ignore */ } }
        }
      }
    } catch (_) { /* aborted when the view is left */ }
  })();
}

/// h("tag.class", {attrs}, ...children): attributes starting with "on" are listeners.
function h(spec, attrs, ...children) {
  const [tag, ...classes] = spec.split(".");
  const el = document.createElement(tag || "div");
  if (classes.length) el.className = classes.join(" ");
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) el.append(c instanceof Node ? c : String(c));
  return el;
}

/// A table inside a horizontally scrolling box; `cols` are [title, row => text or Node,
/// "wide"?]: a "wide" column is left out on a phone's narrow screen.
function table(cols, rows, rowAttrs) {
  const head = h("thead", {}, h("tr", {}, cols.map(([t, , w]) => h(w ? "th.wide" : "th", { text: t }))));
  const body = h("tbody", {}, rows.map((r) => h("tr", rowAttrs ? rowAttrs(r) : {},
    cols.map(([, f, w]) => { const v = f(r); return h(w ? "td.wide" : "td", {}, v === null || v === undefined ? "" : v); }))));
  return h("div.scroll", {}, h("table", {}, head, body));
}

function card(title, ...children) { return h("section.card", {}, h("h2", { text: title }), ...children); }
function stat(label, value) { return h("div.stat", {}, h("b", { text: value }), h("span", { text: label })); }
function bytes(n) {
  if (n >= 1 << 30) return (n / (1 << 30)).toFixed(1) + " GiB";
  if (n >= 1 << 20) return (n / (1 << 20)).toFixed(1) + " MiB";
  if (n >= 1 << 10) return (n / (1 << 10)).toFixed(1) + " KiB";
  return n + " B";
}
function duration(s) {
  const d = Math.floor(s / 86400), hr = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
  return d ? `${d}d ${hr}h` : hr ? `${hr}h ${m}m` : m ? `${m}m ${s % 60}s` : `${s}s`;
}
function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return d.toDateString() === new Date().toDateString() ? d.toLocaleTimeString() : d.toLocaleString();
}
function num(v, digits = 1) { return Number.isInteger(v) ? String(v) : v.toFixed(digits); }
function q(params) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== "" && v !== undefined && v !== null) p.set(k, v);
  return p.toString();
}
function message(el, text, ok) { el.textContent = text; el.className = ok ? "ok" : "bad"; }

/// Draws series over time on a canvas: times (unix s), series [{name, color, values}].
/// `integer`: the values are counts, so the axis steps are whole numbers.
function lineChart(canvas, times, series, fmt = (v) => num(v), integer = false) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || 300, hgt = canvas.clientHeight || 180;
  canvas.width = w * dpr; canvas.height = hgt * dpr;
  const c = canvas.getContext("2d");
  c.scale(dpr, dpr);
  c.clearRect(0, 0, w, hgt);
  const left = 52, right = 8, top = 8, bottom = 22;
  const pw = w - left - right, ph = hgt - top - bottom;
  let max = 0;
  for (const s of series) for (const v of s.values) if (v > max) max = v;
  const step = niceStep(max / 4, integer);
  max = step * 4;
  c.font = "11px system-ui, sans-serif"; c.fillStyle = "#637381"; c.strokeStyle = "#e5e7eb"; c.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = top + ph - (ph * i) / 4;
    c.beginPath(); c.moveTo(left, y); c.lineTo(w - right, y); c.stroke();
    c.textAlign = "right"; c.textBaseline = "middle"; c.fillText(fmt((max * i) / 4), left - 6, y);
  }
  const t0 = times[0], t1 = times[times.length - 1];
  const span = Math.max(t1 - t0, 1);
  const x = (t) => left + (times.length < 2 ? pw : ((t - t0) / span) * pw);
  c.textBaseline = "top";
  if (times.length) {
    // Seconds matter while the history is young; minutes once it spans a while.
    const style = span < 600 ? { hour: "2-digit", minute: "2-digit", second: "2-digit" } : { hour: "2-digit", minute: "2-digit" };
    // Four time labels where they fit, the two ends on a narrow screen.
    const ticks = pw < 420 ? 1 : 3;
    for (let i = 0; i <= ticks; i++) {
      const t = t0 + (span * i) / ticks;
      c.textAlign = i === 0 ? "left" : i === ticks ? "right" : "center";
      c.fillText(new Date(t * 1000).toLocaleTimeString([], style), left + (pw * i) / ticks, top + ph + 5);
    }
  } else {
    c.fillText("collecting samples…", left + pw / 2, top + ph / 2);
  }
  for (const s of series) {
    c.strokeStyle = s.color; c.lineWidth = 1.6; c.beginPath();
    s.values.forEach((v, i) => { const px = x(times[i]), py = top + ph - (ph * (v || 0)) / max; if (i) c.lineTo(px, py); else c.moveTo(px, py); });
    if (s.values.length === 1) c.arc(x(times[0]), top + ph - (ph * (s.values[0] || 0)) / max, 2, 0, 7);
    c.stroke();
  }
}
/// The smallest round step (1, 2, 2.5 or 5 times a power of ten) at least `raw`.
function niceStep(raw, integer) {
  if (!(raw > 0)) return integer ? 1 : 0.25;
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  let step = 10 * p;
  for (const m of [1, 2, 2.5, 5]) if (m * p >= raw) { step = m * p; break; }
  return integer ? Math.max(1, Math.ceil(step)) : step;
}
function legend(series) {
  return h("div.legend", {}, series.map((s) => h("span", {}, h("i", { style: "background:" + s.color }), s.name)));
}

// --- the router and the login ---------------------------------------------------------

let leave = [];
let generation = 0;
function route() {
  const name = (location.hash.match(/^#\/([a-z0-9-]+)/) || [])[1] || "overview";
  return VIEWS[name] ? name : "overview";
}

function showLogin(text) {
  for (const f of leave) f();
  leave = [];
  document.getElementById("main").replaceChildren();
  document.getElementById("login").hidden = false;
  document.getElementById("nav").hidden = true;
  document.getElementById("logout").hidden = true;
  document.getElementById("status").textContent = text || "";
  document.body.dataset.page = "login";
}

async function render() {
  for (const f of leave) f();
  leave = [];
  // A slower earlier render (say, a refused key's) must not undo this one.
  const gen = ++generation;
  const name = route();
  const main = document.getElementById("main");
  main.replaceChildren();
  delete document.body.dataset.loaded;
  document.body.dataset.page = name;
  for (const a of document.querySelectorAll("[data-nav]")) a.classList.toggle("active", a.dataset.nav === name);
  const ctx = {
    // A periodic refresh; a 401 (the key revoked meanwhile) brings the login back.
    every(ms, f) {
      const id = setInterval(() => f().catch((e) => { if (e.status === 401 && gen === generation) showLogin("API: " + e.message); }), ms);
      leave.push(() => clearInterval(id));
    },
    onLeave(f) { leave.push(f); },
    loaded() { document.body.dataset.loaded = "true"; },
  };
  try {
    const stats = await api("/stats");
    if (gen !== generation) return;
    document.getElementById("login").hidden = true;
    document.getElementById("nav").hidden = false;
    document.getElementById("logout").hidden = false;
    document.getElementById("node").textContent = stats.node + " · " + stats.version;
    await VIEWS[name].render(main, ctx, stats);
  } catch (e) {
    if (gen !== generation) return;
    if (e.status === 401) showLogin("API: " + e.message);
    else main.replaceChildren(card("Error", h("p.bad", { text: "API: " + e.message })));
  }
}

function start() {
  // `#/view?key=KEY` (or `#key=KEY`) logs in from a link; the key leaves the address bar.
  const m = location.hash.match(/[#?&]key=([^&]+)/);
  if (m) {
    localStorage.setItem(KEY, decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname + location.search + "#/" + route());
  }
  document.getElementById("keyform").addEventListener("submit", (e) => {
    e.preventDefault();
    localStorage.setItem(KEY, document.getElementById("key").value.trim());
    document.getElementById("key").value = "";
    document.getElementById("status").textContent = "Checking the key…";
    render();
  });
  document.getElementById("logout").addEventListener("click", () => { generation++; localStorage.removeItem(KEY); showLogin("Logged out."); });
  window.addEventListener("hashchange", render);
  render();
}
document.addEventListener("DOMContentLoaded", start);
