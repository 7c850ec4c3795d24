//! Typed settings of the LwM2M gateway, filled from `[lwm2m]` by the server crate.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use roost_coap::settings::Transmission;

use crate::types::format;

/// What to observe when a device registers (EMQX `auto_observe`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AutoObserve {
    #[default]
    Off,
    /// Every object instance of the registration's object list.
    All,
    /// These paths (when the device lists their object).
    List(Vec<String>),
}

/// When an Update is published (EMQX `update_msg_publish_condition`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UpdatePublish {
    Always,
    /// Only an Update whose body carries a new object list.
    #[default]
    ContainsObjectList,
}

/// Topics below the mountpoint (EMQX `translators`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Translators {
    /// Subscribed for each device: MQTT commands in.
    pub command: String,
    pub response: String,
    pub notify: String,
    pub register: String,
    pub update: String,
}

impl Default for Translators {
    fn default() -> Self {
        Translators {
            command: "dn/#".into(),
            response: "up/resp".into(),
            notify: "up/notify".into(),
            register: "up/resp".into(),
            update: "up/update".into(),
        }
    }
}

/// The bootstrap server: what a device that asks (`POST /bs`) is provisioned with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapSettings {
    /// The LwM2M server the device is sent to, e.g. `coap://192.0.2.1:5783`.
    pub server_uri: String,
    /// The registration lifetime written to the Server object.
    pub lifetime: Duration,
    /// PSK credentials written to the Security object (security mode PSK); none: NoSec.
    pub psk_identity: Option<String>,
    pub psk_key: Option<Vec<u8>>,
    /// Per-endpoint bootstrap information: the device's own PSK instead of the shared one.
    pub devices: Vec<BootstrapDevice>,
    /// Only endpoints listed in `devices` are provisioned; any other gets 4.00.
    pub only_listed: bool,
}

/// One endpoint's bootstrap information (`[[lwm2m.bootstrap.device]]`): the PSK written to
/// its Security object, which the gateway's DTLS listeners then accept (username: the endpoint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapDevice {
    pub endpoint: String,
    pub psk_identity: String,
    pub psk_key: Vec<u8>,
}

/// A bootstrap request from an endpoint without bootstrap information (`only_listed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotListed;

impl BootstrapSettings {
    /// Whether endpoint `ep` may register as DTLS user `user` (`None`: plain UDP). An
    /// endpoint listed in `devices` was given a PSK whose username is the endpoint name: it
    /// registers over DTLS with it, and that identity registers no other endpoint.
    pub fn identity_allows(&self, ep: &str, user: Option<&str>) -> bool {
        let listed = |name: &str| self.devices.iter().any(|d| d.endpoint == name);
        if listed(ep) || user.is_some_and(listed) {
            return user == Some(ep);
        }
        true
    }

    /// The PSK to provision endpoint `ep` with: its own, else the shared one; `Err` when the
    /// endpoint is not listed and only listed ones are served.
    pub fn psk_for(&self, ep: &str) -> Result<Option<(&str, &[u8])>, NotListed> {
        if let Some(d) = self.devices.iter().find(|d| d.endpoint == ep) {
            return Ok(Some((d.psk_identity.as_str(), d.psk_key.as_slice())));
        }
        if self.only_listed {
            return Err(NotListed);
        }
        Ok(self.psk_identity.as_deref().zip(self.psk_key.as_deref()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lwm2mSettings {
    /// UDP sockets for the registration interface; empty disables it.
    pub bind: Vec<SocketAddr>,
    /// UDP sockets for the registration interface over DTLS (credentials: the CoAP
    /// gateway's `[[coap.psk]]` / certificate); empty (the default) disables it.
    pub dtls_bind: Vec<SocketAddr>,
    pub recv_buffer: usize,
    pub lifetime_min: Duration,
    pub lifetime_max: Duration,
    /// How long a queue-mode device stays reachable after it was last heard from.
    pub qmode_time_window: Duration,
    /// Commands held at most for one sleeping device, and requests in flight to one device
    /// at most; more are answered `queue_full` at once.
    pub max_queued: usize,
    pub auto_observe: AutoObserve,
    pub update_msg_publish_condition: UpdatePublish,
    /// Prefix of every topic; `{ep}` (or EMQX's `${endpoint_name}`) is the endpoint name.
    pub mountpoint: String,
    pub translators: Translators,
    /// A directory of extra OMA object definition XMLs.
    pub xml_dir: Option<String>,
    pub transmission: Transmission,
    /// Registered devices at most; more are refused with 5.03.
    pub max_devices: usize,
    /// `None`: `/bs` is not served (4.04).
    pub bootstrap: Option<BootstrapSettings>,
    /// A request payload (Write, Create, Execute arguments) larger than this goes to the
    /// device in Block1 blocks of this size (RFC 7959 §2.5); a power of two, 16..=1024.
    pub block_size: usize,
    /// The content formats reads and observes ask for (Accept), in order of preference,
    /// among those a device announced in its registration (`ct`); a device that announced
    /// none is asked for none (it answers in its default format).
    pub content_formats: Vec<u16>,
}

impl Default for Lwm2mSettings {
    fn default() -> Self {
        Lwm2mSettings {
            bind: vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 5783))],
            dtls_bind: Vec::new(),
            recv_buffer: 0,
            lifetime_min: Duration::from_secs(15),
            lifetime_max: Duration::from_secs(86_400),
            qmode_time_window: Duration::from_secs(22),
            max_queued: 100,
            auto_observe: AutoObserve::Off,
            update_msg_publish_condition: UpdatePublish::ContainsObjectList,
            mountpoint: "lwm2m/{ep}/".into(),
            translators: Translators::default(),
            xml_dir: None,
            transmission: Transmission::default(),
            max_devices: 1_000_000,
            bootstrap: None,
            block_size: 1024,
            content_formats: vec![format::SENML_CBOR, format::SENML_JSON, format::TLV, format::LWM2M_JSON],
        }
    }
}

impl Lwm2mSettings {
    /// The mountpoint for endpoint `ep`.
    pub fn mount(&self, ep: &str) -> String {
        self.mountpoint.replace("${endpoint_name}", ep).replace("{ep}", ep)
    }
}
