//! The RabbitMQ action: AMQP 0-9-1 (amqprs, no TLS: loopback or a trusted network). Each
//! output is a `basic.publish` to the exchange with its rendered routing key and payload, on
//! a channel in confirm mode; a batch counts as written only when the broker has confirmed
//! every message of it (`basic.ack`), so a message the broker could not take is retried, not
//! lost (at least once: a retried batch may repeat messages the broker had taken).
//! After an error, a `nack` or a confirm timeout the connection is closed and made again.

use std::collections::BTreeSet;
use std::time::Duration;

use amqprs::callbacks::{ChannelCallback, DefaultConnectionCallback};
use amqprs::channel::{BasicPublishArguments, Channel, ConfirmSelectArguments, ExchangeDeclareArguments};
use amqprs::connection::{Connection, OpenConnectionArguments};
use amqprs::{Ack, BasicProperties, Cancel, CloseChannel, Nack, Return, error::Error as AmqpError};
use tokio::sync::mpsc;

use super::{Output, Sink, SinkError};
use crate::config::ActionKind;
use crate::template::Template;

/// A broker confirm: the delivery tag, whether it covers every lower tag, ack or nack.
#[derive(Debug)]
struct Confirm {
    tag: u64,
    multiple: bool,
    ack: bool,
}

/// Forwards the channel's confirms to the sink.
struct Confirms(mpsc::UnboundedSender<Confirm>);

type AmqpResult<T> = Result<T, AmqpError>;

#[async_trait::async_trait]
impl ChannelCallback for Confirms {
    async fn close(&mut self, _: &Channel, close: CloseChannel) -> AmqpResult<()> {
        tracing::debug!(%close, "rule rabbitmq action: channel closed by the broker");
        Ok(())
    }
    async fn cancel(&mut self, _: &Channel, _: Cancel) -> AmqpResult<()> {
        Ok(())
    }
    async fn flow(&mut self, _: &Channel, active: bool) -> AmqpResult<bool> {
        Ok(active)
    }
    async fn publish_ack(&mut self, _: &Channel, ack: Ack) {
        let _ = self.0.send(Confirm { tag: ack.delivery_tag(), multiple: ack.mutiple(), ack: true });
    }
    async fn publish_nack(&mut self, _: &Channel, nack: Nack) {
        let _ = self.0.send(Confirm { tag: nack.delivery_tag(), multiple: false, ack: false });
    }
    async fn publish_return(&mut self, _: &Channel, _: Return, _: BasicProperties, _: Vec<u8>) {}
}

struct Link {
    conn: Connection,
    channel: Channel,
    confirms: mpsc::UnboundedReceiver<Confirm>,
    /// The last delivery tag used on the channel (tags count from 1 per channel).
    tag: u64,
}

pub struct AmqpSink {
    args: OpenConnectionArguments,
    exchange: String,
    exchange_type: Option<String>,
    routing_key: Template,
    payload: Template,
    delivery_mode: u8,
    timeout: Duration,
    link: Option<Link>,
}

impl AmqpSink {
    pub fn new(kind: &ActionKind) -> Result<AmqpSink, SinkError> {
        let ActionKind::Rabbitmq {
            host,
            port,
            username,
            password,
            virtual_host,
            exchange,
            exchange_type,
            routing_key,
            payload,
            persistent,
            timeout_ms,
        } = kind
        else {
            return Err(SinkError::new("not a rabbitmq action"));
        };
        let mut args = OpenConnectionArguments::new(host, *port, username, password);
        args.virtual_host(virtual_host);
        Ok(AmqpSink {
            args,
            exchange: exchange.clone(),
            exchange_type: exchange_type.clone(),
            routing_key: Template::parse(routing_key).map_err(SinkError::new)?,
            payload: Template::parse(payload).map_err(SinkError::new)?,
            delivery_mode: if *persistent { amqprs::DELIVERY_MODE_PERSISTENT } else { amqprs::DELIVERY_MODE_TRANSIENT },
            timeout: Duration::from_millis(*timeout_ms),
            link: None,
        })
    }

    async fn connect(&self) -> Result<Link, SinkError> {
        let conn = Connection::open(&self.args).await.map_err(SinkError::new)?;
        conn.register_callback(DefaultConnectionCallback).await.map_err(SinkError::new)?;
        let channel = conn.open_channel(None).await.map_err(SinkError::new)?;
        let (tx, confirms) = mpsc::unbounded_channel();
        channel.register_callback(Confirms(tx)).await.map_err(SinkError::new)?;
        if let Some(ty) = &self.exchange_type {
            let mut declare = ExchangeDeclareArguments::new(&self.exchange, ty);
            declare.durable = true;
            channel.exchange_declare(declare).await.map_err(SinkError::new)?;
        }
        channel.confirm_select(ConfirmSelectArguments::default()).await.map_err(SinkError::new)?;
        Ok(Link { conn, channel, confirms, tag: 0 })
    }

    async fn publish(&self, link: &mut Link, batch: &[Output]) -> Result<(), SinkError> {
        let mut pending = BTreeSet::new();
        for out in batch {
            let props = BasicProperties::default()
                .with_content_type("application/json")
                .with_delivery_mode(self.delivery_mode)
                .finish();
            let args = BasicPublishArguments::new(&self.exchange, &self.routing_key.render(out));
            link.channel
                .basic_publish(props, self.payload.render(out).into_bytes(), args)
                .await
                .map_err(SinkError::new)?;
            link.tag += 1;
            pending.insert(link.tag);
        }
        while !pending.is_empty() {
            let c = link.confirms.recv().await.ok_or_else(|| SinkError::new("channel closed before the confirms"))?;
            if !c.ack {
                return Err(SinkError(format!("the broker refused message {} (nack)", c.tag)));
            }
            if c.multiple {
                pending = pending.split_off(&(c.tag + 1));
            } else {
                pending.remove(&c.tag);
            }
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Sink for AmqpSink {
    async fn write(&mut self, batch: &[Output]) -> Result<(), SinkError> {
        let mut link = match self.link.take() {
            Some(l) if l.conn.is_open() && l.channel.is_open() => l,
            old => {
                if let Some(old) = old {
                    let _ = old.conn.close().await;
                }
                self.connect().await?
            }
        };
        match tokio::time::timeout(self.timeout, self.publish(&mut link, batch)).await {
            Ok(Ok(())) => {
                self.link = Some(link);
                Ok(())
            }
            Ok(Err(e)) => {
                let _ = link.conn.close().await;
                Err(e)
            }
            Err(_) => {
                let _ = link.conn.close().await;
                Err(SinkError::new("no publisher confirm in time"))
            }
        }
    }
}
