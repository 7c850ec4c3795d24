// LoRaWAN test peer: builds and reads frames with lora-packet (npm), an implementation
// independent of Roost's, for the LoRaWAN end-to-end tests (tests/tests/lorawan.rs).
// `npm install --prefix tests/tests/peers lora-packet@0.9.3` (scripts/test does it).
//
//   node lorawan_peer.js uplink DEVADDR NWKSKEY APPSKEY FCNT FPORT HEXDATA [confirmed] [ack]
//   node lorawan_peer.js join APPEUI DEVEUI DEVNONCE APPKEY
//   node lorawan_peer.js accept HEXPHY APPKEY DEVNONCE      (JoinAccept -> session JSON)
//   node lorawan_peer.js down HEXPHY NWKSKEY APPSKEY         (downlink -> JSON)
// Each prints one line: hex for built frames, JSON for read ones.
"use strict";
const path = require("path");
const lp = require(path.join(__dirname, "node_modules", "lora-packet"));
const hex = (s) => Buffer.from(s, "hex");
const [cmd, ...a] = process.argv.slice(2);

if (cmd === "uplink") {
  const [addr, nwk, app, fcnt, fport, data, confirmed, ack] = a;
  const p = lp.fromFields(
    {
      MType: confirmed === "true" ? "Confirmed Data Up" : "Unconfirmed Data Up",
      DevAddr: hex(addr),
      FCtrl: { ADR: false, ACK: ack === "true", ADRACKReq: false },
      FCnt: Number(fcnt),
      FPort: Number(fport),
      payload: hex(data),
    },
    hex(app),
    hex(nwk),
  );
  console.log(p.getPHYPayload().toString("hex"));
} else if (cmd === "join") {
  const [appEui, devEui, nonce, key] = a;
  const p = lp.fromFields({ MType: "Join Request", AppEUI: hex(appEui), DevEUI: hex(devEui), DevNonce: hex(nonce) }, null, null, hex(key));
  console.log(p.getPHYPayload().toString("hex"));
} else if (cmd === "accept") {
  const [phy, key, nonce] = a;
  const p = lp.fromWire(lp.decryptJoinAccept(lp.fromWire(hex(phy)), hex(key)));
  const micOk = lp.verifyMIC(p, null, hex(key));
  const keys = lp.generateSessionKeys(hex(key), p.NetID, p.AppNonce, hex(nonce));
  console.log(
    JSON.stringify({
      micOk,
      devAddr: p.DevAddr.toString("hex"),
      netId: p.NetID.toString("hex"),
      appNonce: p.AppNonce.toString("hex"),
      rxDelay: p.RxDelay.readUInt8(0),
      nwkSKey: keys.NwkSKey.toString("hex"),
      appSKey: keys.AppSKey.toString("hex"),
    }),
  );
} else if (cmd === "down") {
  const [phy, nwk, app] = a;
  const p = lp.fromWire(hex(phy));
  const micOk = lp.verifyMIC(p, hex(nwk));
  const payload = p.FPort === null ? "" : lp.decrypt(p, hex(app), hex(nwk)).toString("hex");
  console.log(
    JSON.stringify({
      micOk,
      mtype: p.getMType(),
      devAddr: p.DevAddr.toString("hex"),
      fcnt: p.getFCnt(),
      fport: p.getFPort(),
      ack: p.getFCtrlACK(),
      fopts: p.FOpts ? p.FOpts.toString("hex") : "",
      payload,
    }),
  );
} else {
  console.error("unknown command " + cmd);
  process.exit(2);
}
