//! The Redis action (redis-rs over tokio, no TLS: loopback or a trusted network). The command
//! is a list of whitespace-separated argument templates (`HSET dev:${clientid} t ${t}`,
//! `XADD readings * t ${t}`), so a value becomes exactly one argument whatever it holds. A
//! batch is one `MULTI`/`EXEC` pipeline: it is written whole or not at all, and a retry
//! cannot write half of it twice. After an error the connection is made again.

use super::{Output, Sink, SinkError};
use crate::config::ActionKind;
use crate::template::Template;

/// The command's arguments as templates; the first (the command name) must be literal.
pub fn parse_command(command: &str) -> Result<Vec<Template>, String> {
    let args: Vec<&str> = command.split_whitespace().collect();
    let Some(name) = args.first() else { return Err("empty".into()) };
    if !name.chars().all(|c| c.is_ascii_alphabetic()) {
        return Err(format!("{name:?} is not a command name"));
    }
    args.iter().map(|a| Template::parse(a)).collect()
}

pub struct RedisSink {
    client: redis::Client,
    command: Vec<Template>,
    conn: Option<redis::aio::MultiplexedConnection>,
}

impl RedisSink {
    pub fn new(kind: &ActionKind) -> Result<RedisSink, SinkError> {
        let ActionKind::Redis { url, command } = kind else {
            return Err(SinkError::new("not a redis action"));
        };
        Ok(RedisSink {
            client: redis::Client::open(url.as_str()).map_err(SinkError::new)?,
            command: parse_command(command).map_err(SinkError::new)?,
            conn: None,
        })
    }
}

#[async_trait::async_trait]
impl Sink for RedisSink {
    async fn write(&mut self, batch: &[Output]) -> Result<(), SinkError> {
        if self.conn.is_none() {
            self.conn = Some(self.client.get_multiplexed_async_connection().await.map_err(SinkError::new)?);
        }
        let Some(conn) = self.conn.as_mut() else { return Err(SinkError::new("not connected")) };
        let mut pipe = redis::pipe();
        pipe.atomic();
        for out in batch {
            let mut args = self.command.iter().map(|t| t.render(out));
            let mut cmd = redis::cmd(&args.next().unwrap_or_default());
            for a in args {
                cmd.arg(a);
            }
            pipe.add_command(cmd).ignore();
        }
        let r: Result<(), redis::RedisError> = pipe.query_async(conn).await;
        if let Err(e) = r {
            self.conn = None;
            return Err(SinkError::new(e));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_into_argument_templates() {
        let out: Output = serde_json::from_str(r#"{"c": "dev 1", "t": 31}"#).expect("json");
        let args = parse_command("HSET  dev:${c} t ${t}").expect("parse");
        let got: Vec<String> = args.iter().map(|a| a.render(&out)).collect();
        assert_eq!(got, ["HSET", "dev:dev 1", "t", "31"]);
        assert!(parse_command("").is_err() && parse_command("${c} x").is_err() && parse_command("SET ${").is_err());
    }
}
