// Roost dashboard, Operations: node, cluster (also on the Overview), bridges, traces (start,
// stop, download), rules, plugins and the effective configuration (secrets redacted by the
// gateway). Fields of /cluster are read defensively: newer gateways add some, older lack some.
"use strict";

/// Fetches an API file with the key and hands it to the browser as a download; its size.
async function download(path, name) {
  const r = await fetch("api/v1" + path, { headers: { "Authorization": "Bearer " + key() } });
  if (!r.ok) throw new ApiError(r.status, await errorText(r));
  const blob = await r.blob();
  const url = URL.createObjectURL(blob);
  const a = h("a", { href: url, download: name, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
  return blob.size;
}

function kv(pairs) {
  return h("dl.kv", {}, pairs.flatMap(([k, v]) => [h("dt", { text: k }), h("dd", {}, v === null || v === undefined ? "" : v)]));
}

/// Scalar fields of `o` not in `known`, as "name value" text (what a newer gateway adds).
function extras(o, known) {
  return Object.entries(o || {}).filter(([k, v]) => !known.includes(k) && v !== null && typeof v !== "object")
    .map(([k, v]) => `${k.replace(/_/g, " ")} ${v}`).join(", ");
}

const NODE_FIELDS = ["name", "state", "last_seen_ms", "addresses", "sessions", "connections", "routes", "started"];
const CLUSTER_FIELDS = ["enabled", "node", "state", "degraded", "nodes", "routes", "buffer", "messages", "takeovers",
  "handoffs", "reconnects", "nats_rtt_us"];

/// The cluster as this node sees it: its state, counters, and every node.
function clusterView(c) {
  const nodes = Array.isArray(c.nodes) ? c.nodes : [];
  const buffer = c.buffer || {}, routes = c.routes || {}, msgs = c.messages || {};
  const state = c.degraded ? h("span.pill.warn", { text: "degraded: NATS unreachable" }) : h("span.pill.on", { text: c.state || "up" });
  const more = extras(c, CLUSTER_FIELDS);
  return h("div.cluster", {},
    h("div.row", {}, h("b", { text: "This node: " + (c.node ?? "") }), state),
    kv([["Routes (local / remote)", `${routes.local ?? ""} / ${routes.remote ?? ""}`],
      ["Buffered for other nodes", `${buffer.depth ?? ""} of ${buffer.capacity ?? ""}`],
      ["Messages out / in / dropped", `${msgs.out ?? ""} / ${msgs.in ?? ""} / ${msgs.dropped ?? ""}`],
      ["Takeovers / handoffs / reconnects", `${c.takeovers ?? ""} / ${c.handoffs ?? ""} / ${c.reconnects ?? ""}`],
      ["NATS round trip", c.nats_rtt_us !== undefined && c.nats_rtt_us !== null ? (c.nats_rtt_us / 1000).toFixed(1) + " ms" : ""],
      ...(more ? [["More", more]] : [])]),
    table([
      ["Node", (n) => h("span.mono", { text: n.name ?? "" })],
      ["State", (n) => h(n.state === "down" ? "span.pill.bad" : "span.pill.on", { text: n.state ?? "" })],
      // One address a line: a node has one per listener.
      ["Addresses", (n) => h("span", {}, (Array.isArray(n.addresses) ? n.addresses : []).map((a) => h("div.mono", { text: a }))), "wide"],
      ["Connections", (n) => n.connections ?? ""], ["Sessions", (n) => n.sessions ?? ""], ["Routes", (n) => n.routes ?? "", "wide"],
      ["Last seen", (n) => n.state === "self" || typeof n.last_seen_ms !== "number" ? "" : duration(Math.round(n.last_seen_ms / 1000)) + " ago", "wide"],
      ["More", (n) => extras(n, NODE_FIELDS), "wide"],
    ], nodes, (n) => ({ class: "node", "data-node": n.name ?? "", "data-state": n.state ?? "" })));
}

/// The Operations page's trace card: the start form, running and recently stopped traces.
function traceCard(load) {
  const status = h("span"), list = h("div");
  const form = h("form.row", { id: "trace" }, h("select", { name: "type", "aria-label": "Trace type" }, h("option", { value: "client", text: "client" }), h("option", { value: "topic", text: "topic" })),
    h("input", { name: "target", placeholder: "client id or topic filter", required: true }),
    h("input", { name: "file", placeholder: "file name", required: true }), h("button", { type: "submit" }, "Start trace"), status);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = form.elements;
    try { await api("/traces", { method: "POST", body: { type: f.type.value, target: f.target.value, file: f.file.value } }); message(status, "Started.", true); load(); }
    catch (err) { message(status, err.message); }
  });
  const get = (x) => h("button.secondary.small", { "data-download": x.name, onclick: async () => {
    try {
      const n = await download("/traces/download?" + q({ type: x.type, target: x.target }), x.name.replace(/[^A-Za-z0-9._-]/g, "_") + ".trace.txt");
      message(status, `Downloaded ${x.name}: ${bytes(n)}.`, true);
    } catch (e) { message(status, e.message); }
  } }, "Download");
  const show = (t) => {
    const running = t.data || [], finished = t.finished || [];
    list.replaceChildren(running.length || finished.length ? table([["Name", (x) => x.name], ["State", (x) => x.running ? "running" : "stopped"],
      ["File", (x) => h("span.mono", { text: x.file }), "wide"], ["Started", (x) => when(x.started), "wide"], ["Lines", (x) => x.lines],
      ["", (x) => h("span.acts", {}, get(x), x.running ? h("button.danger.small", { onclick: async () => {
        try { await api("/traces?" + q({ type: x.type, target: x.target }), { method: "DELETE" }); load(); } catch (e) { message(status, e.message); }
      } }, "Stop") : null)]], [...running.map((x) => ({ ...x, running: true })), ...finished], (x) => ({ class: "trace", "data-name": x.name }))
      : h("p.muted", { text: "No trace running." }));
  };
  return { el: card("Traces", form, list), show };
}

function rulesTable(r) {
  const rules = r.data || [];
  return rules.length ? table([["Rule", (x) => h("span.mono", { text: x.id })], ["Enabled", (x) => x.enabled === false ? "no" : "yes"],
    ["SQL", (x) => h("span.mono.wrap", { text: x.sql || "" })],
    ["Actions", (x) => ((x.metrics || {}).actions || []).map((a) => `${a.type}: ${a.success} ok, ${a.failed} failed`).join("; "), "wide"],
    ["Matched / passed / failed", (x) => { const m = x.metrics || {}; return `${m.matched ?? ""} / ${m.passed ?? ""} / ${m.failed ?? ""}`; }],
    ["From", (x) => x.origin || "", "wide"]], rules, (x) => ({ class: "rule", "data-rule": x.id }))
    : h("p.muted", { text: "No rule ([[rule]] in the config, or POST /api/v1/rules)." });
}

function pluginsTable(list) {
  const plugins = Array.isArray(list) ? list : list.data || [];
  return plugins.length ? table([["Plugin", (p) => h("span.mono.wrap", { text: p.path })], ["Kind", (p) => p.kind],
    ["Generation", (p) => p.generation, "wide"], ["SHA-256", (p) => h("span.mono", { text: (p.sha256 || "").slice(0, 12) }), "wide"],
    ["Calls / errors", (p) => { const s = p.stats || {}; return `${s.calls ?? ""} / ${s.errors ?? ""}`; }],
    ["Traps / timeouts", (p) => { const s = p.stats || {}; return `${s.traps ?? ""} / ${s.timeouts ?? ""}`; }, "wide"]],
  plugins, (p) => ({ class: "plugin" }))
    : h("p.muted", { text: "No plugin loaded ([[codec]] plugin = ... in the config)." });
}

VIEWS.operations = {
  async render(main, ctx, stats) {
    const bridges = h("div"), cluster = h("div"), rules = h("div"), plugins = h("div");
    const config = h("pre.config", { id: "config" });
    const load = async () => {
      const [sys, t, c, r, p] = await Promise.all([api("/retained?" + q({ topic: "$SYS/brokers/+/bridges/#", limit: 1000 })),
        api("/traces"), api("/cluster"), api("/rules"), api("/plugins")]);
      const by = new Map();
      for (const m of sys.data) {
        const [, name, ...rest] = m.topic.split("/bridges/")[1] ? ["", ...m.topic.split("/bridges/")[1].split("/")] : [];
        if (!name) continue;
        if (!by.has(name)) by.set(name, { name });
        by.get(name)[rest.join("/")] = m.payload;
      }
      bridges.replaceChildren(by.size ? table([["Bridge", (b) => b.name], ["Connected", (b) => b.connected], ["Queue", (b) => b.queue],
        ["Forwarded out / in", (b) => `${b["forwarded/out"] ?? ""} / ${b["forwarded/in"] ?? ""}`], ["Last error", (b) => b.last_error]], [...by.values()])
        : h("p.muted", { text: "No bridge reported in $SYS (none configured, or [node] sys_interval is off)." }));
      traces.show(t);
      cluster.replaceChildren(c.enabled ? clusterView(c) : h("p.muted", { text: "A single node (no [cluster] section)." }));
      rules.replaceChildren(rulesTable(r));
      plugins.replaceChildren(pluginsTable(p));
      ctx.loaded();
    };
    const traces = traceCard(load);
    main.append(h("div.grid", {}, card("Node", kv([["Name", stats.node], ["Version", stats.version], ["Uptime", duration(stats.uptime)],
      ["Connections", stats.connections], ["Sessions", stats.sessions]])), card("Cluster", cluster)),
    card("Bridges", bridges), traces.el, card("Rules", rules), card("Plugins", plugins),
    card("Effective configuration (secrets redacted)", h("div.scroll.log", {}, config)));
    const cfg = await api("/config");
    config.textContent = cfg.toml;
    await load();
    ctx.every(5000, load);
  },
};
