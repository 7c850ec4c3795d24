//! EMQX placeholders in queries, commands and filters: `${username}`, `${clientid}`,
//! `${peerhost}`, `${cert_common_name}`. In SQL they become bound parameters (`$1` for
//! PostgreSQL, `?` for MySQL) and a client's values never reach the query text, so a
//! username like `' OR '1'='1` is only ever compared as a string. In Redis commands each
//! argument is sent as its own bulk string; in LDAP filters and DNs values are escaped
//! (RFC 4515 / RFC 4514).

use std::borrow::Cow;

use roost_core::auth::Credentials;

/// A value a template can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Var {
    Username,
    ClientId,
    PeerHost,
    CertCommonName,
}

impl Var {
    fn parse(name: &str) -> Option<Var> {
        Some(match name {
            "username" => Var::Username,
            "clientid" => Var::ClientId,
            "peerhost" => Var::PeerHost,
            "cert_common_name" => Var::CertCommonName,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Var(Var),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

/// How SQL parameters are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamStyle {
    /// PostgreSQL: `$1`, `$2`, ...
    Numbered,
    /// MySQL: `?`.
    Question,
}

impl Template {
    /// Parses `text`; an unknown `${name}` or an unclosed `${` is an error naming it.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_string()));
            }
            let after = &rest[start + 2..];
            let end = after.find('}').ok_or_else(|| format!("{text:?}: \"${{\" is not closed"))?;
            let name = &after[..end];
            let var = Var::parse(name).ok_or_else(|| {
                format!("${{{name}}} is not a placeholder: ${{username}}, ${{clientid}}, ${{peerhost}} or ${{cert_common_name}}")
            })?;
            parts.push(Part::Var(var));
            rest = &after[end + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template { parts })
    }

    /// Parses an SQL query; a placeholder inside quotes (`'${username}'`) is refused, since
    /// a bound parameter there would be the literal text `$1`.
    pub fn parse_sql(text: &str) -> Result<Template, String> {
        let t = Template::parse(text)?;
        let mut quotes = 0usize;
        for p in &t.parts {
            match p {
                Part::Text(s) => quotes += s.matches('\'').count(),
                Part::Var(_) if quotes % 2 == 1 => {
                    return Err("placeholders are bound as parameters: write ${username}, not '${username}'".into());
                }
                Part::Var(_) => {}
            }
        }
        Ok(t)
    }

    /// The SQL text with parameters and the values to bind, in order.
    pub fn sql(&self, style: ParamStyle) -> (String, Vec<Var>) {
        let mut text = String::new();
        let mut vars = Vec::new();
        for p in &self.parts {
            match p {
                Part::Text(s) => text.push_str(s),
                Part::Var(v) => {
                    vars.push(*v);
                    match style {
                        ParamStyle::Numbered => text.push_str(&format!("${}", vars.len())),
                        ParamStyle::Question => text.push('?'),
                    }
                }
            }
        }
        (text, vars)
    }

    /// The text with each value passed through `escape` (a missing value is empty).
    pub fn render(&self, vars: &Vars, escape: impl Fn(&str) -> Cow<'_, str>) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(s) => out.push_str(s),
                Part::Var(v) => out.push_str(&escape(vars.get(*v).unwrap_or(""))),
            }
        }
        out
    }
}

/// No escaping: Redis arguments are sent as bulk strings of their own.
pub fn verbatim(v: &str) -> Cow<'_, str> {
    Cow::Borrowed(v)
}

/// A client's values for the placeholders.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Vars {
    pub username: Option<String>,
    pub clientid: String,
    pub peerhost: Option<String>,
    pub cert_common_name: Option<String>,
}

impl Vars {
    pub fn of(c: &Credentials<'_>) -> Vars {
        Vars {
            username: c.client.username.clone(),
            clientid: c.client.client_id.as_str().to_string(),
            peerhost: c.client.peer.map(|p| p.ip().to_canonical().to_string()),
            cert_common_name: c.certificate.map(str::to_string),
        }
    }

    pub fn get(&self, v: Var) -> Option<&str> {
        match v {
            Var::Username => self.username.as_deref(),
            Var::ClientId => Some(&self.clientid),
            Var::PeerHost => self.peerhost.as_deref(),
            Var::CertCommonName => self.cert_common_name.as_deref(),
        }
    }

    /// The values of `vars`, in order (`None`: bound as SQL NULL).
    pub fn bind(&self, vars: &[Var]) -> Vec<Option<String>> {
        vars.iter().map(|v| self.get(*v).map(str::to_string)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        Vars {
            username: Some("' OR '1'='1".into()),
            clientid: "c1".into(),
            peerhost: Some("10.0.0.1".into()),
            cert_common_name: None,
        }
    }

    #[test]
    fn sql_binds_never_interpolates() {
        let t = Template::parse_sql("SELECT password_hash FROM u WHERE username = ${username} AND c = ${clientid}")
            .unwrap();
        let (pg, vs) = t.sql(ParamStyle::Numbered);
        assert_eq!(pg, "SELECT password_hash FROM u WHERE username = $1 AND c = $2");
        assert_eq!(vars().bind(&vs), vec![Some("' OR '1'='1".to_string()), Some("c1".to_string())]);
        assert_eq!(t.sql(ParamStyle::Question).0, "SELECT password_hash FROM u WHERE username = ? AND c = ?");
        assert!(Template::parse_sql("SELECT 1 WHERE u = '${username}'").is_err());
        assert!(Template::parse_sql("SELECT 1 WHERE u = ${password}").is_err());
        assert!(Template::parse("x ${username").is_err());
    }

    #[test]
    fn render_escapes() {
        let t = Template::parse("(uid=${username})").unwrap();
        assert_eq!(t.render(&vars(), |v| Cow::Owned(v.replace('(', "\\28"))), "(uid=' OR '1'='1)");
        let t = Template::parse("mqtt_user:${username}").unwrap();
        assert_eq!(t.render(&vars(), verbatim), "mqtt_user:' OR '1'='1");
    }
}
