//! Codec layer, WebAssembly host functions (`roost.*` imports, ABI v1). Each checks what
//! the guest hands it (pointers inside memory, UTF-8 names, QoS numbers, how much one call
//! emits) and traps on anything else: a malformed result closes that device, never more.

use std::time::Duration;

use bytes::Bytes;
use roost_codec::{ConnectFrame, Uplink, WillFrame};
use wasmi::{Caller, Engine, Error, Extern, Linker};

use super::HostState;
use crate::abi;

type Cx<'a> = Caller<'a, HostState>;

/// Copies `len` bytes at `ptr` out of the guest's memory, counting them against the
/// call's output budget.
fn bytes(cx: &mut Cx<'_>, ptr: i32, len: i32) -> Result<Vec<u8>, Error> {
    with_bytes(cx, ptr, len, |_, slice| slice.to_vec())
}

/// Hands `len` bytes at `ptr` in the guest's memory to `f` (no copy), counting them against
/// the call's output budget.
fn with_bytes<R>(cx: &mut Cx<'_>, ptr: i32, len: i32, f: impl FnOnce(&mut HostState, &[u8]) -> R) -> Result<R, Error> {
    let memory = match cx.data().memory {
        Some(m) => m,
        // Before `instantiate` recorded it (a start function calling an import).
        None => cx.get_export("memory").and_then(Extern::into_memory).ok_or_else(|| Error::new("no memory"))?,
    };
    let (data, state) = memory.data_and_store_mut(&mut *cx);
    let (start, len) = (ptr as u32 as usize, len as u32 as usize);
    let slice = start
        .checked_add(len)
        .and_then(|end| data.get(start..end))
        .ok_or_else(|| Error::new(format!("guest passed {len} bytes at {start}, outside its memory")))?;
    state.emitted += len;
    if state.emitted > state.sandbox.max_output {
        return Err(Error::new(format!("guest emitted more than {} bytes in one call", state.sandbox.max_output)));
    }
    Ok(f(state, slice))
}

fn text(cx: &mut Cx<'_>, what: &str, ptr: i32, len: i32) -> Result<String, Error> {
    String::from_utf8(bytes(cx, ptr, len)?).map_err(|_| Error::new(format!("guest's {what} is not UTF-8")))
}

/// `len < 0` means absent.
fn optional(cx: &mut Cx<'_>, ptr: i32, len: i32) -> Result<Option<Vec<u8>>, Error> {
    if len < 0 { Ok(None) } else { bytes(cx, ptr, len).map(Some) }
}

fn qos(n: i32) -> Result<roost_codec::QoS, Error> {
    abi::qos(n).ok_or_else(|| Error::new(format!("guest gave QoS {n}")))
}

fn id16(n: i32) -> Result<u16, Error> {
    u16::try_from(n).map_err(|_| Error::new(format!("guest gave id {n}, not 0..=65535")))
}

fn emit(cx: &mut Cx<'_>, frame: Uplink) -> Result<(), Error> {
    let state = cx.data_mut();
    if state.encoding {
        return Err(Error::new("guest emitted a frame while encoding"));
    }
    if state.out.len() >= state.sandbox.max_frames {
        return Err(Error::new(format!("guest emitted more than {} frames in one call", state.sandbox.max_frames)));
    }
    state.out.push(frame);
    Ok(())
}

/// The linker offering every `roost.*` import; shared by all instances of a module.
pub(super) fn linker(engine: &Engine) -> Result<Linker<HostState>, Error> {
    let mut l = Linker::<HostState>::new(engine);
    let m = abi::IMPORT_MODULE;
    l.func_wrap(
        m,
        "connect",
        |mut cx: Cx<'_>, id: i32, id_len: i32, user: i32, user_len: i32, pass: i32, pass_len: i32, keep_alive: i32| {
            let mut c = ConnectFrame::new(text(&mut cx, "client id", id, id_len)?, keep_alive.clamp(0, 65_535) as u16);
            c.username = optional(&mut cx, user, user_len)?
                .map(|u| String::from_utf8(u).map_err(|_| Error::new("guest's user name is not UTF-8")))
                .transpose()?;
            c.password = optional(&mut cx, pass, pass_len)?.map(Bytes::from);
            emit(&mut cx, Uplink::Connect(c))
        },
    )?;
    l.func_wrap(
        m,
        "will",
        |mut cx: Cx<'_>, topic: i32, topic_len: i32, payload: i32, payload_len: i32, q: i32, retain: i32| {
            let will = WillFrame {
                topic: text(&mut cx, "will topic", topic, topic_len)?,
                payload: Bytes::from(bytes(&mut cx, payload, payload_len)?),
                qos: qos(q)?,
                retain: retain != 0,
            };
            match cx.data_mut().out.last_mut() {
                Some(Uplink::Connect(c)) => {
                    c.will = Some(will);
                    Ok(())
                }
                _ => Err(Error::new("guest called roost.will not right after roost.connect")),
            }
        },
    )?;
    l.func_wrap(
        m,
        "publish",
        |mut cx: Cx<'_>, id: i32, topic: i32, topic_len: i32, payload: i32, payload_len: i32, q: i32, retain: i32| {
            let frame = Uplink::Publish {
                id: id16(id)?,
                topic: text(&mut cx, "topic", topic, topic_len)?,
                payload: Bytes::from(bytes(&mut cx, payload, payload_len)?),
                qos: qos(q)?,
                retain: retain != 0,
            };
            emit(&mut cx, frame)
        },
    )?;
    l.func_wrap(m, "subscribe", |mut cx: Cx<'_>, id: i32, filter: i32, filter_len: i32, q: i32| {
        let frame =
            Uplink::Subscribe { id: id16(id)?, filter: text(&mut cx, "filter", filter, filter_len)?, qos: qos(q)? };
        emit(&mut cx, frame)
    })?;
    l.func_wrap(m, "unsubscribe", |mut cx: Cx<'_>, id: i32, filter: i32, filter_len: i32| {
        let frame = Uplink::Unsubscribe { id: id16(id)?, filter: text(&mut cx, "filter", filter, filter_len)? };
        emit(&mut cx, frame)
    })?;
    l.func_wrap(m, "ack", |mut cx: Cx<'_>, id: i32| emit(&mut cx, Uplink::Ack { id: id16(id)? }))?;
    l.func_wrap(m, "ping", |mut cx: Cx<'_>| emit(&mut cx, Uplink::Ping))?;
    l.func_wrap(m, "disconnect", |mut cx: Cx<'_>| emit(&mut cx, Uplink::Disconnect))?;
    l.func_wrap(m, "set_timer", |mut cx: Cx<'_>, id: i32, millis: i32| {
        let after = Duration::from_millis(millis.max(0) as u64);
        emit(&mut cx, Uplink::SetTimer { id: id as u32, after })
    })?;
    l.func_wrap(m, "cancel_timer", |mut cx: Cx<'_>, id: i32| emit(&mut cx, Uplink::CancelTimer { id: id as u32 }))?;
    l.func_wrap(m, "write", |mut cx: Cx<'_>, ptr: i32, len: i32| {
        if !cx.data().encoding {
            return Err(Error::new("guest called roost.write outside roost_encode"));
        }
        with_bytes(&mut cx, ptr, len, |state, chunk| state.written.extend_from_slice(chunk))
    })?;
    l.func_wrap(m, "error", |mut cx: Cx<'_>, ptr: i32, len: i32| {
        // Bounded like any output; lossy so a garbled message still says something.
        let message = String::from_utf8_lossy(&bytes(&mut cx, ptr, len.min(1024))?).into_owned();
        cx.data_mut().error = Some(message);
        Ok(())
    })?;
    Ok(l)
}
