//! `${field}` templates over a rule's output (EMQX's placeholder syntax): `${t}`,
//! `${payload.x}`, `${.}` for the whole output as JSON. Text templates render a missing
//! field as `undefined` (as EMQX does); SQL templates turn each placeholder into a bound
//! parameter, so a value can never change the statement.

use serde_json::{Map, Value};

use crate::eval::index;
use crate::sql::Seg;

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Lit(String),
    /// Empty: the whole output.
    Var(Vec<Seg>),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    pub fn parse(s: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = s;
        while let Some(i) = rest.find("${") {
            if i > 0 {
                parts.push(Part::Lit(rest[..i].to_string()));
            }
            let after = &rest[i + 2..];
            let end =
                after.find('}').ok_or_else(|| format!("`${{` at byte {} is not closed", s.len() - rest.len() + i))?;
            let name = after[..end].trim();
            let path = if name == "." {
                Vec::new()
            } else {
                if name.is_empty()
                    || !name
                        .split('.')
                        .all(|k| !k.is_empty() && k.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-'))
                {
                    return Err(format!("`${{{name}}}` is not a field name"));
                }
                name.split('.').map(|k| Seg::Key(k.to_string())).collect()
            };
            parts.push(Part::Var(path));
            rest = &after[end + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Lit(rest.to_string()));
        }
        Ok(Template { parts })
    }

    fn value(path: &[Seg], out: &Map<String, Value>) -> Value {
        match path.split_first() {
            None => Value::Object(out.clone()),
            Some((Seg::Key(k), rest)) => out.get(k).map_or(Value::Null, |v| index(v, rest)),
            Some(_) => Value::Null,
        }
    }

    /// The template as text.
    pub fn render(&self, out: &Map<String, Value>) -> String {
        let mut s = String::new();
        for p in &self.parts {
            match p {
                Part::Lit(l) => s.push_str(l),
                Part::Var(path) => s.push_str(&crate::funcs::text(&Self::value(path, out))),
            }
        }
        s
    }

    /// The value of a template that is exactly one `${field}` (its JSON type kept), else `None`.
    pub fn single(&self, out: &Map<String, Value>) -> Option<Value> {
        match self.parts.as_slice() {
            [Part::Var(path)] => Some(Self::value(path, out)),
            _ => None,
        }
    }

    /// For SQL: the text with each placeholder replaced by `param(n)` (n from 1), and the
    /// values in order.
    pub fn sql(&self, param: impl Fn(usize) -> String) -> (String, Vec<Vec<Seg>>) {
        let (mut s, mut vars) = (String::new(), Vec::new());
        for p in &self.parts {
            match p {
                Part::Lit(l) => s.push_str(l),
                Part::Var(path) => {
                    vars.push(path.clone());
                    s.push_str(&param(vars.len()));
                }
            }
        }
        (s, vars)
    }

    /// The values of `vars` (from [`Template::sql`]) in `out`.
    pub fn values(vars: &[Vec<Seg>], out: &Map<String, Value>) -> Vec<Value> {
        vars.iter().map(|p| Self::value(p, out)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_fields_paths_and_the_whole_output() {
        let out: Map<String, Value> = serde_json::from_str(r#"{"t": 31, "c": "dev", "p": {"x": [1]}}"#).expect("json");
        let t = Template::parse("a/${c}/${t}/${p.x}/${nope}").expect("parse");
        assert_eq!(t.render(&out), "a/dev/31/[1]/undefined");
        let whole: Value = serde_json::from_str(&Template::parse("${.}").expect("parse").render(&out)).expect("json");
        assert_eq!(whole, Value::Object(out.clone()));
        let (sql, vars) = Template::parse("INSERT INTO x VALUES (${t}, ${c})").expect("parse").sql(|n| format!("${n}"));
        assert_eq!(sql, "INSERT INTO x VALUES ($1, $2)");
        assert_eq!(Template::values(&vars, &out), vec![Value::from(31), Value::from("dev")]);
        assert!(Template::parse("${open").is_err() && Template::parse("${a b}").is_err());
    }
}
