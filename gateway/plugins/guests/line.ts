// The `line` codec (protocols/codec/src/codecs/line.rs) as a Roost WebAssembly plugin, ABI v1
// (docs/plugins.md), in AssemblyScript. Built by the tests with:
//   asc line.ts -o line.wasm --runtime stub -O3 --use abort=line/abort
// It works on raw bytes in linear memory (no strings, no GC): the host places input in the
// buffer that roost_buffer returns; frames go out through the roost.* imports.
//
// The stub runtime never frees, so nothing here allocates per frame or per call: the input
// and output buffers grow geometrically and are reused, error messages are assembled in a
// fixed scratch buffer. A connection can carry any number of bytes in bounded memory.

@external("roost", "connect")
declare function connect(id: usize, idLen: i32, user: usize, userLen: i32, pass: usize, passLen: i32, keepAlive: i32): void;
@external("roost", "publish")
declare function publish(id: i32, topic: usize, topicLen: i32, payload: usize, payloadLen: i32, qos: i32, retain: i32): void;
@external("roost", "subscribe")
declare function subscribe(id: i32, filter: usize, filterLen: i32, qos: i32): void;
@external("roost", "unsubscribe")
declare function unsubscribe(id: i32, filter: usize, filterLen: i32): void;
@external("roost", "ack")
declare function ack(id: i32): void;
@external("roost", "ping")
declare function ping(): void;
@external("roost", "disconnect")
declare function disconnect(): void;
@external("roost", "write")
declare function write(ptr: usize, len: i32): void;
@external("roost", "error")
declare function error(ptr: usize, len: i32): void;

const KEEP_ALIVE: i32 = 60;

// Called by the runtime on an internal failure: trap, so Roost closes the device.
export function abort(message: usize, file: usize, line: u32, column: u32): void {
  unreachable();
}

let inBuf: usize = 0;
let inCap: i32 = 0;
let outBuf: usize = 0;
let outCap: i32 = 0;
let outLen: i32 = 0;

export function roost_abi_version(): i32 {
  return 1;
}

export function roost_buffer(len: i32): usize {
  if (len > inCap) {
    // The old buffer is dropped (the stub runtime frees only its last block); growth is
    // geometric, so what is dropped stays under the largest input seen.
    inCap = max(len, inCap * 2);
    inBuf = heap.alloc(<usize>inCap);
  }
  return inBuf;
}

// ---- errors: the message is assembled in a fixed buffer, goes to roost.error, the call
// returns -1 (allocating here would leak: a refused encode keeps the connection open) ----

const ERR_CAP: i32 = 256;
const errBuf: usize = heap.alloc(<usize>ERR_CAP);
let errLen: i32 = 0;

function errText(s: string): void {
  for (let i = 0; i < s.length && errLen < ERR_CAP; i++) store<u8>(errBuf + errLen++, <u8>s.charCodeAt(i));
}

function errBytes(p: usize, len: i32): void {
  const n = min(len, ERR_CAP - errLen);
  memory.copy(errBuf + errLen, p, n);
  errLen += n;
}

function failWith(): i32 {
  error(errBuf, errLen);
  errLen = 0;
  return -1;
}

function fail(msg: string): i32 {
  errLen = 0;
  errText(msg);
  return failWith();
}

// `<p..p+len> + msg`, e.g. "PUB: topic missing".
function failAfter(p: usize, len: i32, msg: string): i32 {
  errLen = 0;
  errBytes(p, len);
  errText(msg);
  return failWith();
}

// ---- bytes ----

function byte(p: usize): u32 {
  return load<u8>(p);
}

function isSpace(c: u32): bool {
  return c == 32 || (c >= 9 && c <= 13);
}

// Strict UTF-8 (no overlongs, no surrogates, at most U+10FFFF), like Rust's from_utf8.
function validUtf8(p: usize, len: i32): bool {
  let i = 0;
  while (i < len) {
    const c = byte(p + i);
    if (c < 0x80) { i++; continue; }
    let n = 0;
    let min: u32 = 0;
    let cp: u32 = 0;
    if (c >= 0xc2 && c <= 0xdf) { n = 1; cp = c & 0x1f; min = 0x80; }
    else if (c >= 0xe0 && c <= 0xef) { n = 2; cp = c & 0x0f; min = 0x800; }
    else if (c >= 0xf0 && c <= 0xf4) { n = 3; cp = c & 0x07; min = 0x10000; }
    else return false;
    if (i + n >= len) return false;
    for (let k = 1; k <= n; k++) {
      const cc = byte(p + i + k);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += n + 1;
  }
  return true;
}

// Case-insensitive compare of [p, p+len) with an upper-case ASCII word.
function is(p: usize, len: i32, word: string): bool {
  if (len != word.length) return false;
  for (let i = 0; i < len; i++) {
    let c = byte(p + i);
    if (c >= 97 && c <= 122) c -= 32;
    if (c != <u32>word.charCodeAt(i)) return false;
  }
  return true;
}

// The next whitespace-separated word in [cursor, end): sets wordAt/wordLen, false if none.
let cursor: usize = 0;
let wordAt: usize = 0;
let wordLen: i32 = 0;

function nextWord(end: usize): bool {
  while (cursor < end && isSpace(byte(cursor))) cursor++;
  if (cursor >= end) return false;
  wordAt = cursor;
  while (cursor < end && !isSpace(byte(cursor))) cursor++;
  wordLen = <i32>(cursor - wordAt);
  return true;
}

// ---- decode ----

const ONES: u64 = 0x0101010101010101;
const HIGHS: u64 = 0x8080808080808080;
const NEWLINES: u64 = 0x0a0a0a0a0a0a0a0a;

// The offset of the first '\n' in [p, p+len), or -1; `scanHigh` gets bit 7 set when a byte
// before it is non-ASCII. Eight bytes per step: each step is a few instructions, and
// instructions are what an interpreter pays for.
let scanHigh: u64 = 0;

function findNewline(p: usize, len: i32): i32 {
  let i: i32 = 0;
  let high: u64 = 0;
  while (i + 8 <= len) {
    const v = load<u64>(p + <usize>i);
    const x = v ^ NEWLINES;
    if (((x - ONES) & ~x & HIGHS) != 0) break;
    high |= v;
    i += 8;
  }
  while (i < len) {
    const c = byte(p + <usize>i);
    if (c == 10) break;
    high |= <u64>c;
    i++;
  }
  scanHigh = high;
  return i < len ? i : -1;
}

// One pass finds each line's end and whether it has non-ASCII bytes; only such a line is
// validated as UTF-8.
export function roost_decode(len: i32): i32 {
  let start: i32 = 0;
  while (true) {
    const n = findNewline(inBuf + <usize>start, len - start);
    if (n < 0) break;
    const lineAt = inBuf + <usize>start;
    let lineLen = n;
    start += n + 1;
    if ((scanHigh & HIGHS) != 0 && !validUtf8(lineAt, lineLen)) return fail("line is not UTF-8");
    while (lineLen > 0 && byte(lineAt + lineLen - 1) == 13) lineLen--;
    let blank = true;
    for (let k = 0; k < lineLen; k++) if (!isSpace(byte(lineAt + k))) { blank = false; break; }
    if (blank) continue;
    const r = parse(lineAt, lineLen);
    if (r < 0) return r;
  }
  return start;
}

function parse(p: usize, len: i32): i32 {
  const end = p + len;
  // command: up to the first ' ' (split_once(' ')); rest: after it
  let cmdLen = 0;
  while (cmdLen < len && byte(p + cmdLen) != 32) cmdLen++;
  const rest: usize = cmdLen < len ? p + cmdLen + 1 : end;
  cursor = rest;
  if (is(p, cmdLen, "CONNECT")) {
    if (!nextWord(end)) return failAfter(p, cmdLen, ": client id missing");
    const id = wordAt, idLen = wordLen;
    let user: usize = 0, userLen = -1, pass: usize = 0, passLen = -1;
    if (nextWord(end)) { user = wordAt; userLen = wordLen; }
    if (nextWord(end)) { pass = wordAt; passLen = wordLen; }
    connect(id, idLen, user, userLen, pass, passLen, KEEP_ALIVE);
  } else if (is(p, cmdLen, "PUB") || is(p, cmdLen, "PUB1")) {
    let topicLen = 0;
    const restLen = <i32>(end - rest);
    while (topicLen < restLen && byte(rest + topicLen) != 32) topicLen++;
    if (topicLen == 0) return failAfter(p, cmdLen, ": topic missing");
    const payload = topicLen < restLen ? rest + topicLen + 1 : end;
    const qos = byte(p + cmdLen - 1) == 49 ? 1 : 0;
    publish(0, rest, topicLen, payload, <i32>(end - payload), qos, 0);
  } else if (is(p, cmdLen, "SUB")) {
    if (!nextWord(end)) return failAfter(p, cmdLen, ": filter missing");
    const f = wordAt, fLen = wordLen;
    let qos = 0;
    if (nextWord(end)) {
      if (wordLen == 1 && byte(wordAt) == 48) qos = 0;
      else if (wordLen == 1 && byte(wordAt) == 49) qos = 1;
      else {
        errLen = 0;
        errText("SUB: QoS ");
        errBytes(wordAt, wordLen);
        errText(" is not 0 or 1");
        return failWith();
      }
    }
    subscribe(0, f, fLen, qos);
  } else if (is(p, cmdLen, "UNSUB")) {
    if (!nextWord(end)) return failAfter(p, cmdLen, ": filter missing");
    unsubscribe(0, wordAt, wordLen);
  } else if (is(p, cmdLen, "ACK")) {
    if (!nextWord(end)) return failAfter(p, cmdLen, ": id missing");
    const id = parseU16(wordAt, wordLen);
    if (id < 0) {
      errLen = 0;
      errText("ACK: ");
      errBytes(wordAt, wordLen);
      errText(" is not a message id");
      return failWith();
    }
    ack(id);
  } else if (is(p, cmdLen, "PING")) {
    ping();
  } else if (is(p, cmdLen, "QUIT")) {
    disconnect();
  } else {
    errLen = 0;
    errText("unknown command \"");
    errBytes(p, cmdLen);
    errText("\"");
    return failWith();
  }
  return 0;
}

// Like Rust's u16::from_str: optional '+', then 1+ decimal digits, at most 65535; -1 if not.
function parseU16(p: usize, len: i32): i32 {
  let i = 0;
  if (len > 0 && byte(p) == 43) i = 1;
  if (i >= len) return -1;
  let n: i32 = 0;
  for (; i < len; i++) {
    const c = byte(p + i);
    if (c < 48 || c > 57) return -1;
    n = n * 10 + <i32>(c - 48);
    if (n > 65535) return -1;
  }
  return n;
}

// ---- encode ----

function reserve(n: i32): void {
  if (n > outCap) {
    outCap = max(n, outCap * 2);
    outBuf = heap.alloc(<usize>outCap);
  }
  outLen = 0;
}

function put(s: string): void {
  for (let i = 0; i < s.length; i++) store<u8>(outBuf + outLen++, <u8>s.charCodeAt(i));
}

function putBytes(p: usize, len: i32): void {
  memory.copy(outBuf + outLen, p, len);
  outLen += len;
}

// Decimal digits without allocating (the stub runtime never frees).
function putNumber(n: i32): void {
  let digits = 1;
  for (let m = n; m >= 10; m /= 10) digits++;
  for (let k = digits - 1; k >= 0; k--) {
    store<u8>(outBuf + outLen + k, <u8>(48 + n % 10));
    n /= 10;
  }
  outLen += digits;
}

const REFUSED: string[] = [
  "", "bad credentials", "not authorized", "server busy", "shutting down", "invalid topic", "quota exceeded",
];
const CLOSED: string[] = ["", "keep alive timeout", "taken over", "kicked", "shutting down"];

export function roost_encode(kind: i32, id: i32, code: i32, flags: i32, topicLen: i32, payloadLen: i32): i32 {
  reserve(64 + topicLen + payloadLen);
  if (code < 0 || code > 6) return fail("unknown code");
  if ((kind == 1 || kind == 2 || kind == 3) && code != 0) {
    put("ERR ");
    put(REFUSED[code]);
  } else if (kind == 1 || kind == 2 || kind == 4) {
    put("OK");
  } else if (kind == 3) {
    put("OK ");
    putNumber(flags & 3);
  } else if (kind == 5) {
    put("PONG");
  } else if (kind == 6) {
    const payload = inBuf + topicLen;
    let oneLine = findNewline(payload, payloadLen) < 0;
    if (oneLine && (scanHigh & HIGHS) != 0) oneLine = validUtf8(payload, payloadLen);
    if (!oneLine) {
      errLen = 0;
      errText("message on ");
      errBytes(inBuf, topicLen);
      errText(" is not one line of UTF-8");
      return failWith();
    }
    put("MSG ");
    putNumber(id);
    put(" ");
    putBytes(inBuf, topicLen);
    put(" ");
    putBytes(payload, payloadLen);
  } else if (kind == 7) {
    if (code < 1 || code > 4) return fail("unknown close reason");
    put("BYE ");
    put(CLOSED[code]);
  } else {
    return fail("unknown frame kind");
  }
  put("\n");
  write(outBuf, outLen);
  return 0;
}
