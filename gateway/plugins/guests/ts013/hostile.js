// A codec that misbehaves on purpose (tests of the sandbox): fPort 1 loops forever, 2
// allocates without bound, 3 throws, 4 returns something that is not a TS013 result,
// 5 recurses without end; any other port decodes one byte.
function decodeUplink(input) {
  switch (input.fPort) {
    case 1:
      for (;;) {}
    case 2: {
      var keep = [];
      for (;;) keep.push(new Array(100000).fill(input.bytes));
    }
    case 3:
      throw new Error("sensor exploded");
    case 4:
      return 42;
    case 5: {
      var f = function (n) { return f(n + 1) + 1; };
      return { data: f(0) };
    }
    default:
      return { data: { value: input.bytes[0] } };
  }
}
