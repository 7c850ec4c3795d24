// A temperature/humidity sensor's payload codec, written to LoRa Alliance TS013-1.0.0
// (the shape of the vendor codecs in The Things Network's device repository).
//
// fPort 2, 10 bytes, big endian:
//   0-1 battery, mV (uint16)        2-3 temperature, 0.01 degC (int16)
//   4-5 relative humidity, 0.1 %    6-7 pressure, 0.1 hPa (uint16)
//   8   status bits (bit 0: tamper, bit 1: low battery)
//   9   sequence number
// fPort 3, 1 byte: the reporting interval in minutes (an answer to a configuration).

function readUint16BE(bytes, i) {
  return (bytes[i] << 8) | bytes[i + 1];
}

function readInt16BE(bytes, i) {
  var v = readUint16BE(bytes, i);
  return v > 0x7fff ? v - 0x10000 : v;
}

function decodeUplink(input) {
  var bytes = input.bytes;
  if (input.fPort === 2) {
    if (bytes.length !== 10) {
      return { errors: ["expected 10 bytes on fPort 2, got " + bytes.length] };
    }
    var data = {
      battery: readUint16BE(bytes, 0) / 1000,
      temperature: readInt16BE(bytes, 2) / 100,
      humidity: readUint16BE(bytes, 4) / 10,
      pressure: readUint16BE(bytes, 6) / 10,
      tamper: (bytes[8] & 0x01) !== 0,
      sequence: bytes[9],
    };
    var warnings = [];
    if (bytes[8] & 0x02) {
      warnings.push("low battery");
    }
    if (data.humidity > 100) {
      warnings.push("humidity out of range");
    }
    return { data: data, warnings: warnings };
  }
  if (input.fPort === 3 && bytes.length === 1) {
    return { data: { interval: bytes[0] } };
  }
  return { errors: ["unknown fPort " + input.fPort] };
}

function encodeDownlink(input) {
  var minutes = input.data.interval;
  if (typeof minutes !== "number" || minutes < 1 || minutes > 255 || Math.floor(minutes) !== minutes) {
    return { errors: ["interval must be an integer number of minutes, 1 to 255"] };
  }
  return { fPort: 3, bytes: [minutes] };
}
