#!/usr/bin/env python3
"""CoAP test peer on aiocoap (PyPI), driven by tests/tests/coap.rs.

Scenarios (argv: SCENARIO PORT ...):
  put PORT PATH PAYLOAD   PUT PAYLOAD to PATH, print "code X.YY"
  observe PORT PATH       observe PATH, print "registered X.YY", then "notify PAYLOAD" per
                          notification; on the line "cancel" on stdin, deregister
                          (GET with Observe 1) and print "cancelled X.YY"; an error
                          notification prints "ended X.YY", the end "observation over"
"""
import asyncio
import sys

import aiocoap


def uri(port, path):
    return f"coap://127.0.0.1:{port}/{path}"


async def put(port, path, payload):
    ctx = await aiocoap.Context.create_client_context()
    req = aiocoap.Message(code=aiocoap.PUT, uri=uri(port, path), payload=payload.encode())
    resp = await ctx.request(req).response
    print(f"code {resp.code.dotted}", flush=True)
    await ctx.shutdown()


async def observe(port, path):
    ctx = await aiocoap.Context.create_client_context()
    req = aiocoap.Message(code=aiocoap.GET, uri=uri(port, path), observe=0)
    pr = ctx.request(req)
    first = await pr.response
    print(f"registered {first.code.dotted} {first.opt.observe is not None}", flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    notes = pr.observation.__aiter__()
    while True:
        line_task = asyncio.ensure_future(reader.readline())
        note_task = asyncio.ensure_future(notes.__anext__())
        done, _ = await asyncio.wait({line_task, note_task}, return_when=asyncio.FIRST_COMPLETED)
        if note_task in done:
            line_task.cancel()
            try:
                note = note_task.result()
            except StopAsyncIteration:
                # The server ended the observation (after an error notification).
                print("observation over", flush=True)
                break
            if not note.code.is_successful():
                # RFC 7641 §3.2: a non-2.xx notification ends the observation.
                print(f"ended {note.code.dotted}", flush=True)
                continue
            print(f"notify {note.payload.decode(errors='replace')}", flush=True)
            continue
        note_task.cancel()
        if line_task.result().strip() == b"cancel":
            # RFC 7641 §3.6: stop locally, then deregister with a GET carrying Observe 1.
            pr.observation.cancel()
            dereg = aiocoap.Message(code=aiocoap.GET, uri=uri(port, path), observe=1, token=first.token)
            resp = await ctx.request(dereg).response
            print(f"cancelled {resp.code.dotted}", flush=True)
            break
    await ctx.shutdown()


def main():
    scenario, port = sys.argv[1], int(sys.argv[2])
    if scenario == "put":
        asyncio.run(put(port, sys.argv[3], sys.argv[4]))
    elif scenario == "observe":
        asyncio.run(observe(port, sys.argv[3]))
    else:
        sys.exit(f"unknown scenario {scenario}")


if __name__ == "__main__":
    main()
