//! `[[codec]]` listeners: custom protocols decoded by a registered [`roost_codec::Codec`].

use std::sync::Arc;

use roost_adapter::{Adapter, Context, Error, Listener, Running};
use roost_codec::{CodecListenerSettings, Registry};

use crate::config::Settings;

pub struct CodecAdapter {
    listeners: Vec<(CodecListenerSettings, Arc<dyn roost_codec::codec::CodecFactory>)>,
}

impl CodecAdapter {
    /// Looks every listener's codec up now: a misnamed codec or bad options is a config
    /// error, found before any port is bound.
    pub fn new(settings: &Settings, codecs: &Registry) -> anyhow::Result<CodecAdapter> {
        let mut listeners = Vec::new();
        for (i, c) in settings.codecs.iter().enumerate() {
            let factory = codecs.build(&c.codec, &c.options).map_err(|e| match e {
                roost_codec::registry::RegistryError::Unknown { .. } => anyhow::anyhow!("codec[{i}].codec: {e}"),
                roost_codec::registry::RegistryError::Options(e) => anyhow::anyhow!("codec[{i}].options: {e}"),
            })?;
            listeners.push((c.clone(), factory));
        }
        Ok(CodecAdapter { listeners })
    }
}

#[async_trait::async_trait]
impl Adapter for CodecAdapter {
    fn name(&self) -> &str {
        "codec"
    }

    /// The codec driver binds as it starts (TCP or UDP, by the listener's transport).
    async fn bind(&mut self) -> Result<(), Error> {
        Ok(())
    }

    async fn start(self: Box<Self>, ctx: Context) -> Result<Running, Error> {
        let mut listeners = Vec::new();
        for (settings, factory) in self.listeners {
            let name = settings.name.clone();
            let (codec, transport) = (settings.codec.clone(), settings.transport);
            let listener = Arc::new(roost_codec::session::Listener {
                broker: ctx.broker.clone(),
                protocol_name: settings.codec.as_str().into(),
                settings,
                factory,
            });
            let addr = roost_codec::driver::start(listener, ctx.shutdown.clone(), ctx.tracker.clone()).await?;
            tracing::info!(listener = %name, %codec, %transport, %addr, "codec listening");
            let transport = match transport {
                roost_codec::settings::Transport::Tcp => "tcp",
                roost_codec::settings::Transport::Udp => "udp",
            };
            listeners.push(Listener::new(name, transport, addr));
        }
        Ok(Running { listeners, ..Default::default() })
    }
}
