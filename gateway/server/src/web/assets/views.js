// Roost dashboard views: Overview (live charts from /dashboard/history, cluster nodes),
// Clients (one table for every protocol, paged and searched on the server; detail with
// subscriptions, queued and in-flight messages; kick) and Topics (live watch over
// server-sent events, publish with MQTT 5 properties, retained messages).
"use strict";

/// MQTT 5 properties of a message as one line of text ("" when it has none).
function propsText(p) {
  if (!p) return "";
  const parts = [];
  if (p.content_type !== undefined) parts.push("content-type: " + p.content_type);
  if (p.payload_format_indicator !== undefined) parts.push(p.payload_format_indicator === 1 ? "UTF-8" : "bytes");
  if (p.response_topic !== undefined) parts.push("response: " + p.response_topic);
  if (p.correlation_data !== undefined) parts.push("correlation: " + p.correlation_data);
  if (p.message_expiry_interval !== undefined) parts.push("expires in " + p.message_expiry_interval + " s");
  for (const [k, v] of Object.entries(p.user_properties || {})) parts.push(k + "=" + v);
  return parts.join(", ");
}

/// A client's queued and in-flight messages (GET /clients/{id}/messages).
function messagesView(m) {
  const cols = [["Topic", (x) => h("span.mono", { text: x.topic })], ["Payload", (x) => h("span.mono.wrap", { text: x.payload + (x.truncated ? "…" : "") })],
    ["QoS", (x) => x.qos], ["Age", (x) => duration(Math.floor((x.age_ms || 0) / 1000))], ["Properties", (x) => propsText(x.properties), "wide"]];
  const list = (title, l, extra, cls) => [h("h2", { text: `${title} (${l.count})` }),
    l.data.length ? table([...extra, ...cols], l.data, () => ({ class: cls })) : h("p.muted", { text: "None." }),
    l.count > l.data.length ? h("p.muted", { text: `The first ${l.data.length} of ${l.count}.` }) : null];
  return h("div.messages", {}, list("Queued messages", m.queued, [], "queued"),
    list("In flight", m.inflight, [["Packet id", (x) => x.packet_id], ["State", (x) => x.state, "wide"]], "inflight"));
}

VIEWS.overview = {
  async render(main, ctx, stats) {
    const statBox = h("div.stats");
    const charts = [
      ["Connections by protocol", "connections", true],
      ["Messages in per second, by protocol", "messages_in_per_second", false],
      ["Messages out per second, by protocol", "messages_out_per_second", false],
    ].map(([title, field, integer]) => ({ field, integer, canvas: h("canvas.chart"), legend: h("div"), title }));
    const sys = { drops: h("canvas.chart"), mem: h("canvas.chart"), cpu: h("canvas.chart") };
    const dropTable = h("div");
    const clusterBox = h("section.card", { id: "cluster", hidden: true });
    main.append(statBox, clusterBox, h("div.grid", {}, charts.map((c) => card(c.title, c.canvas, c.legend)),
      card("Drops per second", sys.drops, dropTable),
      card("Resident memory", sys.mem), card("CPU (% of one core)", sys.cpu)));
    const draw = async () => {
      const [s, m, hist, cl] = await Promise.all([api("/stats"), api("/metrics"), api("/dashboard/history"), api("/cluster")]);
      // Cluster nodes only when clustered.
      clusterBox.hidden = !cl.enabled;
      if (cl.enabled) clusterBox.replaceChildren(h("h2", { text: "Cluster" }), clusterView(cl));
      const last = (a) => a.length ? a[a.length - 1] : 0;
      statBox.replaceChildren(stat("version", s.version), stat("uptime", duration(s.uptime)),
        stat("connections", s.connections), stat("sessions", s.sessions), stat("subscriptions", s.subscriptions),
        stat("retained", s.retained), stat("messages in", m.messages_received), stat("dropped", m.messages_dropped),
        stat("memory", bytes(last(hist.resident_memory_bytes))), stat("CPU", num(last(hist.cpu_percent)) + " %"));
      for (const c of charts) {
        const series = Object.entries(hist.protocols).map(([p, v]) => ({ name: p, color: COLORS[p] || "#555", values: v[c.field] }));
        lineChart(c.canvas, hist.time, series, (v) => num(v), c.integer);
        c.legend.replaceChildren(legend(series));
      }
      lineChart(sys.drops, hist.time, [{ name: "dropped", color: "#b42318", values: hist.dropped_per_second }]);
      lineChart(sys.mem, hist.time, [{ name: "rss", color: "#2563eb", values: hist.resident_memory_bytes }], bytes);
      lineChart(sys.cpu, hist.time, [{ name: "cpu", color: "#d97706", values: hist.cpu_percent }], (v) => num(v, 0));
      const reasons = Object.entries(m.dropped_by_reason).filter(([, n]) => n > 0);
      dropTable.replaceChildren(reasons.length ? table([["Reason", (r) => r[0]], ["Dropped since start", (r) => r[1]]], reasons)
        : h("p.muted", { text: "No message dropped since start." }));
      ctx.loaded();
    };
    await draw();
    ctx.every(5000, draw);
  },
};

VIEWS.clients = {
  async render(main, ctx) {
    const state = { page: 1, limit: 50, clientid: "", protocol: "", connected: "" };
    const search = h("input", { type: "search", placeholder: "Search client id", "aria-label": "Search client id" });
    const proto = h("select", { "aria-label": "Protocol" }, h("option", { value: "", text: "All protocols" }),
      Object.keys(COLORS).map((p) => h("option", { value: p, text: p })));
    const conn = h("select", { "aria-label": "Connected" }, h("option", { value: "", text: "Online and offline" }),
      h("option", { value: "true", text: "Online" }), h("option", { value: "false", text: "Offline" }));
    const list = h("div"), pager = h("div.row"), detail = h("div");
    main.append(card("Clients and devices", h("div.toolbar", {}, search, proto, conn), list, pager), detail);
    const load = async () => {
      const t0 = performance.now();
      const r = await api("/clients?" + q({ page: state.page, limit: state.limit, clientid: state.clientid,
        protocol: state.protocol, connected: state.connected }));
      const ms = Math.round(performance.now() - t0);
      list.replaceChildren(table([
        ["Client id", (c) => h("span.mono", { text: c.clientid })],
        ["Protocol", (c) => h("span.pill", { text: c.protocol, style: "border-left:3px solid " + (COLORS[c.protocol] || "#999") })],
        ["Address", (c) => c.peer, "wide"],
        ["Connected since", (c) => when(c.connected_at), "wide"],
        ["State", (c) => h(c.connected ? "span.pill.on" : "span.pill", { text: c.connected ? "online" : "offline" })],
        ["Subs", (c) => c.subscriptions, "wide"],
        ["Queued", (c) => c.queued],
      ], r.data, (c) => ({ class: "pick client", "data-clientid": c.clientid, onclick: () => show(c.clientid) })));
      const pages = Math.max(1, Math.ceil(r.meta.count / state.limit));
      pager.replaceChildren(
        h("button.secondary.small", { disabled: state.page <= 1, onclick: () => { state.page--; load(); } }, "‹ Prev"),
        h("span.muted", { text: `page ${state.page} of ${pages} · ${r.meta.count} clients · ${ms} ms` }),
        h("button.secondary.small", { disabled: !r.meta.hasnext, onclick: () => { state.page++; load(); } }, "Next ›"));
      ctx.loaded();
    };
    const show = async (id) => {
      const [c, subs, msgs] = await Promise.all([api("/clients/" + encodeURIComponent(id)),
        api("/subscriptions?" + q({ clientid: id, limit: 1000 })), api("/clients/" + encodeURIComponent(id) + "/messages?limit=50")]);
      const status = h("span");
      const kick = h("button.danger", { "data-action": "kick", onclick: async () => {
        try { await api("/clients/" + encodeURIComponent(id), { method: "DELETE" }); message(status, "Kicked.", true); load(); }
        catch (e) { message(status, e.message); }
      } }, "Kick");
      detail.replaceChildren(card("Client " + c.clientid,
        h("dl.kv", {}, [["Protocol", c.protocol], ["State", c.connected ? "online" : "offline"], ["User name", c.username],
          ["Address", c.peer], ["Connected since", when(c.connected_at)], ["Keep alive", c.keep_alive + " s"],
          ["Queued messages", c.queued], ["In flight (QoS 1/2)", c.inflight],
          ["Session expiry", c.session_expiry === null ? "never" : c.session_expiry + " s"]]
          .flatMap(([k, v]) => [h("dt", { text: k }), h("dd", { text: v === null || v === undefined ? "" : v })])),
        h("h2", { text: "Subscriptions" }),
        subs.data.length ? table([["Filter", (s) => h("span.mono", { text: s.topic })], ["QoS", (s) => s.qos],
          ["No local", (s) => s.no_local ? "yes" : "", "wide"], ["Retain handling", (s) => s.retain_handling, "wide"]], subs.data)
          : h("p.muted", { text: "No subscription." }),
        messagesView(msgs),
        h("div.row", {}, c.connected ? kick : null, status)));
      detail.scrollIntoView({ block: "nearest" });
    };
    let timer;
    search.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(() => { state.clientid = search.value.trim(); state.page = 1; load(); }, 250); });
    proto.addEventListener("change", () => { state.protocol = proto.value; state.page = 1; load(); });
    conn.addEventListener("change", () => { state.connected = conn.value; state.page = 1; load(); });
    await load();
    ctx.every(5000, load);
  },
};

VIEWS.topics = {
  async render(main, ctx) {
    const filter = h("input", { type: "text", value: "#", "aria-label": "Topic filter" });
    const watchBtn = h("button", {}, "Watch");
    const watchStatus = h("span.muted");
    const rows = h("tbody");
    const messages = [];
    let abort = null;
    const stopWatch = () => { if (abort) abort.abort(); abort = null; watchBtn.textContent = "Watch"; };
    const startWatch = async () => {
      stopWatch();
      abort = new AbortController();
      watchBtn.textContent = "Restart";
      try {
        await stream("/dashboard/watch?" + q({ topic: filter.value }), (m) => {
          messages.unshift(m);
          if (messages.length > 200) messages.pop();
          rows.prepend(h("tr.message", { "data-topic": m.topic }, h("td", { text: new Date(m.time).toLocaleTimeString() }),
            h("td.mono", { text: m.topic }), h("td.mono.wrap", { text: m.payload }), h("td", { text: m.qos + (m.retain ? " R" : "") }),
            h("td.wrap.wide.props", { text: propsText(m.properties) })));
          while (rows.children.length > 200) rows.lastChild.remove();
        }, abort.signal);
        message(watchStatus, "Watching " + filter.value, true);
        document.body.dataset.watching = filter.value;
      } catch (e) { message(watchStatus, e.message); }
    };
    watchBtn.addEventListener("click", startWatch);
    ctx.onLeave(stopWatch);

    const pubStatus = h("span");
    const pub = h("form.stack", { id: "publish" },
      h("label", {}, "Topic", h("input", { name: "topic", required: true, placeholder: "devices/lamp/set" })),
      h("label", {}, "Payload", h("textarea", { name: "payload" })),
      h("div.row", {}, h("label", {}, "QoS ", h("select", { name: "qos" }, ["0", "1", "2"].map((v) => h("option", { value: v, text: v })))),
        h("label", {}, h("input", { type: "checkbox", name: "retain" }), " retain")),
      h("details.props", {}, h("summary", { text: "MQTT 5 properties" }),
        h("div.stack", {}, h("label", {}, "Content type", h("input", { name: "content_type", placeholder: "application/json" })),
          h("label", {}, "Payload format", h("select", { name: "payload_format_indicator" }, h("option", { value: "", text: "unspecified" }),
            h("option", { value: "0", text: "0: bytes" }), h("option", { value: "1", text: "1: UTF-8 text" }))),
          h("label", {}, "Response topic", h("input", { name: "response_topic", placeholder: "devices/lamp/reply" })),
          h("label", {}, "Correlation data", h("input", { name: "correlation_data" })),
          h("label", {}, "Message expiry (s)", h("input", { name: "message_expiry_interval", type: "number", min: 0, max: 4294967295 })),
          h("label", {}, "User properties (one key=value a line)", h("textarea", { name: "user_properties", placeholder: "site=north" })))),
      h("div.row", {}, h("button", { type: "submit" }, "Publish"), pubStatus));
    pub.addEventListener("submit", async (e) => {
      e.preventDefault();
      const f = pub.elements;
      const properties = {};
      for (const k of ["content_type", "response_topic", "correlation_data"]) if (f[k].value !== "") properties[k] = f[k].value;
      for (const k of ["payload_format_indicator", "message_expiry_interval"]) if (f[k].value !== "") properties[k] = Number(f[k].value);
      const users = f.user_properties.value.split("\n").map((l) => l.trim()).filter(Boolean);
      if (users.length) properties.user_properties = Object.fromEntries(users.map((l) => { const i = l.indexOf("="); return i < 0 ? [l, ""] : [l.slice(0, i).trim(), l.slice(i + 1).trim()]; }));
      try {
        const r = await api("/publish", { method: "POST", body: { topic: f.topic.value, payload: f.payload.value,
          qos: Number(f.qos.value), retain: f.retain.checked, properties } });
        message(pubStatus, `Published; ${r.matched} subscriber(s) matched.`, true);
        if (f.retain.checked) loadRetained();
      } catch (err) { message(pubStatus, err.message); }
    });

    const retFilter = h("input", { type: "text", value: "#", "aria-label": "Retained filter" });
    const retList = h("div"), retStatus = h("span");
    const loadRetained = async () => {
      const r = await api("/retained?" + q({ topic: retFilter.value, limit: 200 }));
      retList.replaceChildren(r.data.length ? table([["Topic", (m) => h("span.mono", { text: m.topic })],
        ["Payload", (m) => h("span.mono", { text: m.payload })], ["QoS", (m) => m.qos],
        ["", (m) => h("button.danger.small", { "data-delete": m.topic, onclick: async () => {
          try { await api("/retained/" + m.topic.split("/").map(encodeURIComponent).join("/"), { method: "DELETE" }); loadRetained(); }
          catch (e) { message(retStatus, e.message); }
        } }, "Delete")]], r.data, (m) => ({ class: "retained", "data-topic": m.topic }))
        : h("p.muted", { text: "No retained message matches." }));
    };
    main.append(h("div.grid", {},
      card("Watch", h("div.toolbar", {}, filter, watchBtn, h("button.secondary", { onclick: stopWatch }, "Stop")), watchStatus,
        h("div.scroll.log", {}, h("table", {}, h("thead", {}, h("tr", {}, ["Time", "Topic", "Payload", "QoS"].map((t) => h("th", { text: t })), h("th.wide", { text: "Properties" }))), rows))),
      card("Publish", pub)),
    card("Retained messages", h("div.toolbar", {}, retFilter, h("button.secondary", { onclick: () => loadRetained() }, "Refresh"), retStatus), retList));
    await loadRetained();
    await startWatch();
    ctx.loaded();
  },
};
