// A water valve's payload codec, written to LoRa Alliance TS013-1.0.0: decodeUplink for its
// status reports, encodeDownlink / decodeDownlink for its commands.
//
// Uplink, fPort 10: 0 state (0 closed, 1 open, 2 fault), 1-2 flow in L/h (uint16 BE),
//                   3 battery in percent.
// Downlink, fPort 20: 0 command (0x00 close, 0x01 open), 1-2 minutes to stay open (uint16
//                   BE, 0: until closed).

var STATES = ["closed", "open", "fault"];

function decodeUplink(input) {
  var b = input.bytes;
  if (input.fPort !== 10 || b.length !== 4) {
    return { errors: ["expected 4 bytes on fPort 10"] };
  }
  if (b[0] >= STATES.length) {
    return { errors: ["unknown state " + b[0]] };
  }
  return {
    data: { state: STATES[b[0]], flow: (b[1] << 8) | b[2], battery: b[3] },
    warnings: b[0] === 2 ? ["valve reports a fault"] : [],
  };
}

function encodeDownlink(input) {
  var d = input.data;
  if (d.valve !== "open" && d.valve !== "close") {
    return { errors: ["valve must be \"open\" or \"close\""] };
  }
  var minutes = d.minutes === undefined ? 0 : d.minutes;
  if (typeof minutes !== "number" || minutes < 0 || minutes > 65535 || Math.floor(minutes) !== minutes) {
    return { errors: ["minutes must be an integer 0..65535"] };
  }
  if (d.valve === "close" && minutes !== 0) {
    return { errors: ["minutes is only for \"open\""] };
  }
  return { fPort: 20, bytes: [d.valve === "open" ? 1 : 0, (minutes >> 8) & 0xff, minutes & 0xff], warnings: [] };
}

function decodeDownlink(input) {
  var b = input.bytes;
  if (input.fPort !== 20 || b.length !== 3 || b[0] > 1) {
    return { errors: ["not a valve command"] };
  }
  return { data: { valve: b[0] === 1 ? "open" : "close", minutes: (b[1] << 8) | b[2] } };
}
