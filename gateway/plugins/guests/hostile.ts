// The `line` codec with three faults on purpose, for the sandbox tests: a line starting with
// LOOP spins forever, GROW allocates until the memory limit, JUNK returns more bytes consumed
// than it was given. Anything else is the plain `line` codec.
import { roost_decode as lineDecode, roost_buffer } from "./line";
export { roost_abi_version, roost_buffer, roost_encode, abort } from "./line";

function startsWith(p: usize, len: i32, word: string): bool {
  if (len < word.length) return false;
  for (let i = 0; i < word.length; i++) if (load<u8>(p + i) != <u8>word.charCodeAt(i)) return false;
  return true;
}

export function roost_decode(len: i32): i32 {
  const p = roost_buffer(0);
  if (startsWith(p, len, "LOOP")) {
    let n: i32 = 0;
    while (n >= 0) n = (n + 1) & 0x7fffffff;
  }
  if (startsWith(p, len, "GROW")) {
    for (;;) heap.alloc(65536);
  }
  if (startsWith(p, len, "JUNK")) return len + 1;
  return lineDecode(len);
}
