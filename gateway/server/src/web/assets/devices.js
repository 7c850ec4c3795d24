// Roost dashboard views for devices: LwM2M (devices and their object tree with read /
// write / execute / observe), LoRaWAN (gateways, devices, live frame log, enqueue a
// downlink), CoAP / MQTT-SN sessions (awake or asleep, and what waits for them).
"use strict";

let objectDefs = null;
async function lwm2mObjects() {
  if (!objectDefs) objectDefs = new Map((await api("/lwm2m/objects")).data.map((o) => [o.id, o]));
  return objectDefs;
}

VIEWS.lwm2m = {
  async render(main, ctx) {
    const list = h("div"), tree = h("div");
    main.append(card("LwM2M devices", list), tree);
    const defs = await lwm2mObjects();
    let selected = null;
    const load = async () => {
      const r = await api("/lwm2m/devices?limit=1000");
      list.replaceChildren(r.data.length ? table([
        ["Endpoint", (d) => h("span.mono", { text: d.ep })], ["Peer", (d) => d.peer, "wide"], ["Binding", (d) => d.b, "wide"],
        ["Lifetime", (d) => d.lt + " s"], ["Last update", (d) => duration(d.secondsSinceUpdate) + " ago"],
        ["Queue mode", (d) => d.queueMode ? "yes" : "", "wide"], ["Observations", (d) => d.observations],
      ], r.data, (d) => ({ class: "pick device" + (d.ep === selected ? " selected" : ""), "data-endpoint": d.ep, onclick: () => open(d) }))
        : h("p.muted", { text: "No LwM2M device is registered." }));
      ctx.loaded();
    };
    let abort = null;
    ctx.onLeave(() => abort && abort.abort());
    let reqId = 1;
    const open = async (d) => {
      selected = d.ep;
      if (abort) abort.abort();
      abort = new AbortController();
      const log = h("tbody");
      const values = new Map();
      // Results and notifications come back as MQTT messages; watch the device's "up" topics.
      const up = d.responseTopic.replace(/\/[^/]*$/, "/#");
      await stream("/dashboard/watch?" + q({ topic: up }), (m) => {
        let v; try { v = JSON.parse(m.payload); } catch (_) { return; }
        const data = v.data || {};
        for (const c of Array.isArray(data.content) ? data.content : []) {
          const cell = values.get(c.path);
          if (cell && c.value !== undefined) { cell.textContent = String(c.value); cell.dataset.value = String(c.value); }
        }
        const cell = values.get(data.reqPath);
        if (cell && !Array.isArray(data.content) && data.code && !data.code.startsWith("2.0")) cell.textContent = data.code + " " + (data.codeMsg || "");
        log.prepend(h("tr.result", { "data-path": data.reqPath || "" }, h("td", { text: new Date(m.time).toLocaleTimeString() }),
          h("td", { text: v.msgType || "" }), h("td.mono", { text: data.reqPath || "" }),
          h("td", { text: (data.code || "") + " " + (data.codeMsg || "") }),
          h("td.mono.wrap", { text: Array.isArray(data.content) ? data.content.map((c) => `${c.path}=${c.value}`).join(", ") : "" })));
        while (log.children.length > 100) log.lastChild.remove();
      }, abort.signal);
      const send = async (msgType, data, status) => {
        try { await api("/lwm2m/devices/" + encodeURIComponent(d.ep) + "/commands", { method: "POST", body: { reqID: reqId++, msgType, data } }); status.textContent = msgType + " sent"; status.className = "muted"; }
        catch (e) { message(status, e.message); }
      };
      const objects = new Map();
      for (const link of d.objectList || []) {
        const [o, i] = link.replace(/^<|>$/g, "").split("/").filter(Boolean).map(Number);
        if (Number.isNaN(o) || o === 0) continue; // the Security object is never read by a server
        if (!objects.has(o)) objects.set(o, new Set());
        if (i !== undefined && !Number.isNaN(i)) objects.get(o).add(i);
      }
      const nodes = [...objects].map(([o, instances]) => {
        const def = defs.get(o);
        const insts = instances.size ? [...instances] : [0];
        return h("details", { open: o === 3 || o === 3303 }, h("summary", {}, h("b", { text: `/${o}` }), " " + (def ? def.name : "unknown object")),
          insts.map((i) => h("details", { open: true }, h("summary", {}, `/${o}/${i} `,
            h("button.small.secondary", { "data-op": "read", "data-path": `/${o}/${i}`, onclick: (e) => { e.preventDefault(); send("read", { path: `/${o}/${i}` }, e.target.nextSibling); } }, "Read all"), h("span.muted")),
            (def ? def.resources : []).map((r) => {
              const path = `/${o}/${i}/${r.id}`;
              const val = h("span.val", { "data-path": path });
              values.set(path, val);
              const status = h("span.muted");
              const input = h("input", { type: "text", "aria-label": "value for " + path, placeholder: r.type });
              const acts = h("span.acts", {},
                r.operations.includes("R") ? h("button.small", { "data-op": "read", "data-path": path, onclick: () => send("read", { path }, status) }, "Read") : null,
                r.operations.includes("W") ? [input, h("button.small", { "data-op": "write", "data-path": path, onclick: () => send("write", { path, type: r.type, value: input.value }, status) }, "Write")] : null,
                r.operations.includes("E") ? h("button.small", { "data-op": "execute", "data-path": path, onclick: () => send("execute", { path, args: "" }, status) }, "Execute") : null,
                r.operations.includes("R") ? h("button.small.secondary", { "data-op": "observe", "data-path": path, onclick: () => send("observe", { path }, status) }, "Observe") : null,
                r.operations.includes("R") ? h("button.small.secondary", { "data-op": "cancel-observe", "data-path": path, onclick: () => send("cancel-observe", { path }, status) }, "Cancel") : null,
                status);
              return h("div.res", {}, h("span", {}, h("span.mono", { text: `${r.id} ` }), r.name, r.units ? h("span.muted", { text: ` (${r.units})` }) : null), val, acts);
            }))));
      });
      tree.replaceChildren(card("Objects of " + d.ep, h("div.tree", {}, nodes)),
        card("Results", h("div.scroll.log", {}, h("table", {}, h("thead", {}, h("tr", {}, ["Time", "Type", "Path", "Code", "Content"].map((t) => h("th", { text: t })))), log))));
      document.body.dataset.device = d.ep;
      load();
    };
    await load();
    ctx.every(5000, load);
  },
};

VIEWS.lorawan = {
  async render(main, ctx) {
    const gws = h("div"), devs = h("div"), frames = h("tbody"), last = new Map();
    const eui = h("select", { name: "dev_eui", "aria-label": "Device" });
    const status = h("span");
    const form = h("form.stack", { id: "downlink" },
      h("label", {}, "Device", eui),
      h("div.row", {}, h("label", {}, "fPort ", h("input", { name: "f_port", type: "number", min: 1, max: 223, value: 10, style: "width:5em" })),
        h("label", {}, h("input", { type: "checkbox", name: "confirmed" }), " confirmed")),
      h("label", {}, "Payload (hex)", h("input", { name: "data_hex", placeholder: "01ff", pattern: "([0-9a-fA-F]{2})*" })),
      h("div.row", {}, h("button", { type: "submit" }, "Enqueue downlink"), status));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const f = form.elements;
      try {
        const r = await api("/lorawan/devices/" + f.dev_eui.value + "/queue", { method: "POST",
          body: { f_port: Number(f.f_port.value), confirmed: f.confirmed.checked, data_hex: f.data_hex.value } });
        message(status, "Queued (id " + r.id + "): sent after the next uplink.", true);
        load();
      } catch (err) { message(status, err.message); }
    });
    main.append(card("Gateways", gws), card("Devices", devs),
      h("div.grid", {}, card("Frame log (live)", h("div.scroll.log", {}, h("table", {}, h("thead", {}, h("tr", {},
        ["Time", "Device", "Event", "fCnt", "fPort", "RSSI / SNR", "DR", "Data"].map((t) => h("th", { text: t })))), frames))),
      card("Enqueue a downlink", form)));
    const load = async () => {
      let g, d;
      try { [g, d] = await Promise.all([api("/lorawan/gateways?limit=1000"), api("/lorawan/devices?limit=1000")]); }
      catch (e) { if (e.status === 404) { gws.replaceChildren(h("p.muted", { text: e.message })); ctx.loaded(); return; } throw e; }
      gws.replaceChildren(g.data.length ? table([["Gateway", (x) => h("span.mono", { text: x.gateway_id })], ["Address", (x) => x.address, "wide"],
        ["Last seen", (x) => when(x.last_seen)], ["Rx / Tx frames", (x) => `${x.rx_frames} / ${x.tx_frames}`], ["Tx errors", (x) => x.tx_errors, "wide"],
        ["Location", (x) => x.stat && x.stat.lati !== undefined ? `${x.stat.lati}, ${x.stat.long}` : "", "wide"]], g.data, (x) => ({ class: "gateway" }))
        : h("p.muted", { text: "No gateway heard yet." }));
      devs.replaceChildren(d.data.length ? table([["DevEUI", (x) => h("span.mono", { text: x.dev_eui })], ["Name", (x) => x.name, "wide"],
        ["Activation", (x) => x.activation, "wide"], ["DevAddr", (x) => x.dev_addr, "wide"], ["fCnt up / down", (x) => `${x.f_cnt_up ?? ""} / ${x.f_cnt_down ?? ""}`],
        ["Last uplink", (x) => when(x.last_seen), "wide"], ["RSSI / SNR", (x) => (last.get(x.dev_eui) || {}).radio || ""],
        ["DR", (x) => (last.get(x.dev_eui) || {}).dr ?? "", "wide"], ["Queued", (x) => x.queued]], d.data, (x) => ({ class: "lora-device", "data-deveui": x.dev_eui }))
        : h("p.muted", { text: "No device." }));
      const chosen = eui.value;
      eui.replaceChildren(...d.data.map((x) => h("option", { value: x.dev_eui, text: `${x.dev_eui} ${x.name || ""}` })));
      if (chosen) eui.value = chosen;
      ctx.loaded();
    };
    const abort = new AbortController();
    ctx.onLeave(() => abort.abort());
    await stream("/dashboard/watch?" + q({ topic: "application/+/device/+/event/#" }), (m) => {
      let v; try { v = JSON.parse(m.payload); } catch (_) { v = {}; }
      const dev = (v.deviceInfo || {}).devEui || m.topic.split("/")[3] || "";
      const rx = (v.rxInfo || [])[0] || {};
      const radio = rx.rssi !== undefined ? `${rx.rssi} / ${rx.snr}` : "";
      if (m.topic.endsWith("/up")) last.set(dev, { radio, dr: v.dr });
      frames.prepend(h("tr.frame", { "data-deveui": dev }, h("td", { text: new Date(m.time).toLocaleTimeString() }), h("td.mono", { text: dev }),
        h("td", { text: m.topic.split("/").pop() }), h("td", { text: v.fCnt ?? "" }), h("td", { text: v.fPort ?? "" }), h("td", { text: radio }),
        h("td", { text: v.dr ?? "" }), h("td.mono.wrap", { text: v.object ? JSON.stringify(v.object) : (v.data || "") })));
      while (frames.children.length > 200) frames.lastChild.remove();
    }, abort.signal).catch(() => {});
    await load();
    ctx.every(5000, load);
  },
};

VIEWS.sessions = {
  async render(main, ctx) {
    const boxes = { "coap": h("div"), "mqtt-sn": h("div") };
    const detail = h("div");
    let selected = null;
    // What waits for a session (a sleeping MQTT-SN client's buffer, say), refreshed with the list.
    const show = async (id) => {
      selected = id;
      const m = await api("/clients/" + encodeURIComponent(id) + "/messages?limit=50");
      if (selected === id) detail.replaceChildren(card("Waiting for " + id, messagesView(m)));
    };
    main.append(card("CoAP sessions", boxes.coap), card("MQTT-SN sessions", boxes["mqtt-sn"]), detail);
    const load = async () => {
      for (const [p, box] of Object.entries(boxes)) {
        const r = await api("/clients?" + q({ protocol: p, limit: 200 }));
        box.replaceChildren(r.data.length ? table([["Client id", (c) => h("span.mono", { text: c.clientid })], ["Address", (c) => c.peer, "wide"],
          ["State", (c) => h(c.connected ? "span.pill.on" : "span.pill", { text: c.connected ? "awake" : "asleep / offline" })],
          ["Since", (c) => when(c.connected_at), "wide"], ["Subscriptions", (c) => c.subscriptions, "wide"],
          ["Buffered", (c) => c.queued], ["In flight", (c) => c.inflight, "wide"]], r.data, (c) => ({ class: "pick session" + (c.clientid === selected ? " selected" : ""), "data-clientid": c.clientid, onclick: () => show(c.clientid) }))
          : h("p.muted", { text: `No ${p} session.` }), ...(r.meta.count > r.data.length ? [h("p.muted", { text: `${r.meta.count} in all: see Clients for the rest.` })] : []));
      }
      if (selected) await show(selected).catch(() => { selected = null; detail.replaceChildren(); });
      ctx.loaded();
    };
    await load();
    ctx.every(5000, load);
  },
};
