//! Codec layer, WebAssembly: [`WasmCodec`], the `roost_codec::Codec` of one device, backed by
//! its own instance (own linear memory, so devices cannot see each other's state). Every
//! call gets a fresh fuel budget; a trap (out of fuel, out of memory, a bad pointer, a
//! malformed frame) poisons the instance and is returned as a `CodecError`, which closes
//! that device's connection (the will is published) exactly like a failing Rust codec.

use std::sync::Arc;
use std::time::Instant;

use bytes::{Buf, BytesMut};
use roost_codec::{Codec, CodecError, Downlink, Uplink};
use wasmi::{Memory, Store, TypedFunc};

use super::{HostState, WasmModule};
use crate::abi;
use crate::stats::{Outcome, PluginStats};

type EncodeFn = TypedFunc<(i32, i32, i32, i32, i32, i32), i32>;

struct Instance {
    store: Store<HostState>,
    memory: Memory,
    buffer: TypedFunc<i32, i32>,
    decode: TypedFunc<i32, i32>,
    encode: EncodeFn,
    timer: Option<TypedFunc<i32, i32>>,
}

/// The codec of one device running a WebAssembly plugin.
pub struct WasmCodec {
    /// `Err`: instantiation failed or an earlier call trapped; every call fails with it.
    instance: Result<Instance, String>,
    name: Arc<str>,
    fuel: u64,
    stats: Arc<PluginStats>,
}

impl WasmCodec {
    /// A new instance of `module` for one device. Failing to instantiate (e.g. the memory
    /// limit) is not reported here: the device's first call fails with it.
    pub fn new(module: &WasmModule) -> Self {
        let instance = instantiate(module).map_err(|e| format!("cannot instantiate: {e}"));
        if instance.is_err() {
            module.stats.count(Outcome::Trap, 0);
        }
        WasmCodec {
            instance,
            name: module.name.clone(),
            fuel: module.limits.fuel_per_call,
            stats: module.stats.clone(),
        }
    }

    /// Runs `call` with a fresh fuel budget, counting and classifying the outcome.
    fn call<R>(
        &mut self,
        call: impl FnOnce(&mut Instance) -> Result<R, wasmi::Error>,
    ) -> Result<(R, Vec<Uplink>, Vec<u8>), CodecError> {
        let inst = self.instance.as_mut().map_err(|e| CodecError::new(format!("plugin {}: {e}", self.name)))?;
        let state = inst.store.data_mut();
        state.out.clear();
        state.written.clear();
        state.emitted = 0;
        state.error = None;
        let _ = inst.store.set_fuel(self.fuel);
        let started = Instant::now();
        let result = call(inst);
        let nanos = started.elapsed().as_nanos() as u64;
        match result {
            Ok(r) => {
                self.stats.count(Outcome::Ok, nanos);
                let state = inst.store.data_mut();
                Ok((r, std::mem::take(&mut state.out), std::mem::take(&mut state.written)))
            }
            Err(e) => {
                let out_of_fuel = e.as_trap_code() == Some(wasmi::TrapCode::OutOfFuel);
                self.stats.count(if out_of_fuel { Outcome::Timeout } else { Outcome::Trap }, nanos);
                let why = if out_of_fuel { format!("ran out of fuel ({} per call)", self.fuel) } else { e.to_string() };
                let message = format!("plugin {} trapped: {why}", self.name);
                tracing::warn!(plugin = %self.name, error = %why, "WebAssembly codec trapped; closing its device");
                self.instance = Err(message.clone());
                Err(CodecError::new(message))
            }
        }
    }

    /// A negative return: the guest refused the input or frame.
    fn refused(&mut self, code: i32) -> CodecError {
        self.stats.count(Outcome::Error, 0);
        let message = self.instance.as_mut().ok().and_then(|i| i.store.data_mut().error.take());
        CodecError::new(message.unwrap_or_else(|| format!("plugin {} returned error {code}", self.name)))
    }
}

fn instantiate(module: &WasmModule) -> Result<Instance, wasmi::Error> {
    let mut store = module.store();
    let instance = module.linker.instantiate_and_start(&mut store, &module.module)?;
    let memory = instance.get_memory(&store, "memory").ok_or_else(|| wasmi::Error::new("no memory export"))?;
    store.data_mut().memory = Some(memory);
    Ok(Instance {
        buffer: instance.get_typed_func(&store, "roost_buffer")?,
        decode: instance.get_typed_func(&store, "roost_decode")?,
        encode: instance.get_typed_func(&store, "roost_encode")?,
        timer: instance.get_typed_func(&store, "roost_timer").ok(),
        memory,
        store,
    })
}

/// Places `parts` one after another in the guest's buffer. Nothing to place (every answer
/// but a PUBLISH): no call into the guest for an empty buffer.
fn put(inst: &mut Instance, parts: &[&[u8]]) -> Result<(), wasmi::Error> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    if len == 0 {
        return Ok(());
    }
    let len32 = i32::try_from(len).map_err(|_| wasmi::Error::new("input too large"))?;
    let mut at = inst.buffer.call(&mut inst.store, len32)? as u32 as usize;
    for part in parts {
        inst.memory
            .write(&mut inst.store, at, part)
            .map_err(|_| wasmi::Error::new(format!("roost_buffer({len}) returned {at}, outside memory")))?;
        at += part.len();
    }
    Ok(())
}

impl Codec for WasmCodec {
    fn decode(&mut self, buf: &mut BytesMut, out: &mut Vec<Uplink>) -> Result<(), CodecError> {
        if buf.is_empty() {
            return Ok(());
        }
        let input: &[u8] = buf;
        let len = input.len() as i32;
        let (consumed, frames, _) = self.call(|inst| {
            put(inst, &[input])?;
            inst.decode.call(&mut inst.store, len)
        })?;
        out.extend(frames);
        if consumed < 0 {
            return Err(self.refused(consumed));
        }
        if consumed > len {
            // A malformed result, like a trap: the instance is not trusted again.
            self.stats.count(Outcome::Trap, 0);
            let message = format!("plugin {} consumed {consumed} of {len} bytes", self.name);
            tracing::warn!(plugin = %self.name, error = %message, "WebAssembly codec returned garbage; closing its device");
            self.instance = Err(message.clone());
            return Err(CodecError::new(message));
        }
        buf.advance(consumed as usize);
        Ok(())
    }

    fn encode(&mut self, frame: Downlink, out: &mut BytesMut) -> Result<(), CodecError> {
        let a = abi::encode_args(&frame);
        let (topic_len, payload_len) = (a.topic.len() as i32, a.payload.len() as i32);
        let (code, _, written) = self.call(|inst| {
            inst.store.data_mut().encoding = true;
            let r = put(inst, &[a.topic, a.payload]).and_then(|()| {
                inst.encode.call(&mut inst.store, (a.kind, a.id, a.code, a.flags, topic_len, payload_len))
            });
            inst.store.data_mut().encoding = false;
            r
        })?;
        if code < 0 {
            return Err(self.refused(code));
        }
        out.extend_from_slice(&written);
        Ok(())
    }

    fn on_timer(&mut self, id: u32, out: &mut Vec<Uplink>) -> Result<(), CodecError> {
        let Some(timer) = self.instance.as_ref().ok().and_then(|i| i.timer) else { return Ok(()) };
        let (code, frames, _) = self.call(|inst| timer.call(&mut inst.store, id as i32))?;
        out.extend(frames);
        if code < 0 { Err(self.refused(code)) } else { Ok(()) }
    }
}
