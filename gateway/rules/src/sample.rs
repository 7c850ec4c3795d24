//! A sample message or event given as JSON (`/api/v1/rules/test`, the EMQX examples table),
//! turned into an [`Input`]. EMQX's test context field names.

use serde::Deserialize;

use crate::eval::{EventName, Input};

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sample {
    /// `message.publish` (default), `client.connected`, ... (or `client_connected`).
    #[serde(default)]
    pub event: Option<String>,
    pub clientid: Option<String>,
    pub username: Option<String>,
    /// `host:port`.
    pub peername: Option<String>,
    pub protocol: Option<String>,
    pub topic: Option<String>,
    pub payload: Option<String>,
    pub qos: Option<u8>,
    #[serde(default)]
    pub retain: bool,
    pub reason: Option<String>,
    pub from_clientid: Option<String>,
    pub timestamp: Option<i64>,
    #[serde(default)]
    pub user_properties: Vec<(String, String)>,
}

impl Sample {
    /// The input this sample describes, or what is wrong with it.
    pub fn input<'a>(&'a self, node: &'a str) -> Result<Input<'a>, String> {
        let event = match &self.event {
            None => EventName::MessagePublish,
            Some(e) => EventName::from_dotted(e).ok_or_else(|| format!("unknown event {e:?}"))?,
        };
        let mut i = Input::new(event, node, self.timestamp.unwrap_or_else(crate::time::now_ms));
        i.clientid = self.clientid.as_deref();
        i.username = self.username.as_deref();
        i.peer = match &self.peername {
            Some(p) => Some(p.parse().map_err(|_| format!("peername {p:?} is not host:port"))?),
            None => None,
        };
        i.protocol = self.protocol.as_deref();
        i.topic = self.topic.as_deref();
        i.payload = self.payload.as_deref().map(str::as_bytes);
        i.qos = self.qos.or(self.topic.as_ref().map(|_| 0));
        i.retain = self.retain;
        i.reason = self.reason.as_deref();
        i.from_clientid = self.from_clientid.as_deref();
        i.user_properties = &self.user_properties;
        Ok(i)
    }
}
