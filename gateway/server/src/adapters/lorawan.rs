//! LoRaWAN packet forwarders over Semtech UDP (`[lorawan]`): bridge or network server, with
//! its frame and join counters and the `/api/v1/lorawan` routes.

use std::sync::Arc;

use roost_adapter::metrics::load;
use roost_adapter::{Adapter, Context, Error, Family, Listener, Running};
use roost_lorawan::settings::LorawanSettings;
use tokio::net::UdpSocket;

pub struct LorawanAdapter {
    settings: LorawanSettings,
    sockets: Vec<UdpSocket>,
}

impl LorawanAdapter {
    pub fn new(settings: LorawanSettings) -> LorawanAdapter {
        LorawanAdapter { settings, sockets: Vec::new() }
    }
}

#[async_trait::async_trait]
impl Adapter for LorawanAdapter {
    fn name(&self) -> &str {
        "lorawan"
    }

    async fn bind(&mut self) -> Result<(), Error> {
        self.sockets = roost_lorawan::driver::bind(&self.settings.bind, self.settings.recv_buffer)
            .map_err(|e| super::bind_error("LoRaWAN packet-forwarder listener", e))?;
        Ok(())
    }

    async fn start(self: Box<Self>, ctx: Context) -> Result<Running, Error> {
        let mode = self.settings.mode;
        let lorawan = roost_lorawan::driver::Context::new(ctx.broker.clone(), self.settings);
        let mut listeners = Vec::new();
        for socket in &self.sockets {
            let addr = socket.local_addr()?;
            tracing::info!(%addr, ?mode, "LoRaWAN packet forwarders listening (udp)");
            listeners.push(Listener::new("lorawan", "udp", addr));
        }
        if !self.sockets.is_empty() {
            let (shutdown, tracker) = (ctx.shutdown.clone(), ctx.tracker.clone());
            ctx.tracker.spawn(roost_lorawan::driver::serve(self.sockets, lorawan.clone(), shutdown, tracker));
        }
        Ok(Running {
            listeners,
            metrics: metrics(&lorawan),
            routes: Some(crate::api::lorawan::routes(lorawan.clone())),
            state: Some(lorawan),
        })
    }
}

fn metrics(ctx: &Arc<roost_lorawan::driver::Context>) -> Vec<Family> {
    let c = || ctx.clone();
    let (a, b, f, j, u, d, r) = (c(), c(), c(), c(), c(), c(), c());
    vec![
        Family::gauge("lorawan_gateways", "LoRaWAN packet forwarders tracked now", move || load(&a.counters.gateways)),
        Family::counters(
            "lorawan_datagrams",
            "Semtech UDP datagrams from packet forwarders, by outcome",
            "outcome",
            move || {
                let l = &b.counters;
                vec![
                    ("received", load(&l.datagrams)),
                    ("malformed", load(&l.malformed)),
                    ("unknown_version", load(&l.unknown_version)),
                    ("unexpected", load(&l.unexpected)),
                    ("inbox_full", load(&l.inbox_full)),
                    ("gateway_refused", load(&l.gateways_refused)),
                ]
            },
        ),
        Family::counter("lorawan_frames", "Radio frames (rxpk) received from gateways", move || {
            load(&f.counters.frames)
        }),
        Family::counter("lorawan_joins", "OTAA joins accepted", move || load(&j.counters.ns.joins)),
        Family::counter("lorawan_uplinks", "Device uplinks accepted (after de-duplication)", move || {
            load(&u.counters.ns.uplinks)
        }),
        Family::counter("lorawan_downlinks", "Downlinks sent to gateways", move || load(&d.counters.ns.downlinks)),
        Family::counters(
            "lorawan_rejected_frames",
            "Frames the network server rejected, by reason",
            "reason",
            move || {
                let ns = &r.counters.ns;
                vec![
                    ("mic", load(&ns.mic_failures)),
                    ("replay", load(&ns.replays)),
                    ("fcnt_gap", load(&ns.fcnt_gaps)),
                    ("dev_nonce_replay", load(&ns.dev_nonce_replays)),
                    ("unknown_device", load(&ns.unknown_devices)),
                    ("bad_phy_payload", load(&ns.bad_phy)),
                    ("crc_error", load(&ns.crc_errors)),
                ]
            },
        ),
    ]
}
