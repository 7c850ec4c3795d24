//! CoRE Link Format (RFC 6690) as LwM2M uses it: the object list of a Register/Update
//! (`</>;rt="oma.lwm2m";ct=11543,</1/0>,</3/0>;ver=1.1`) and the body of a Discover.
//! Lenient: a malformed entry is skipped, never a panic.

/// One link: the target between `<` and `>` and its attributes (`name` or `name=value`,
/// quotes removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub target: String,
    pub attrs: Vec<(String, String)>,
}

impl Link {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Splits on `sep` outside double quotes.
fn split_outside_quotes(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut quoted, mut start) = (false, 0);
    for (i, c) in s.char_indices() {
        if c == '"' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            out.push(&s[start..i]);
            start = i + c.len_utf8();
        }
    }
    out.push(&s[start..]);
    out
}

/// The links of a link-format body, as the strings they were (trimmed): what a Discover
/// result carries on MQTT.
pub fn link_strings(body: &str) -> Vec<String> {
    split_outside_quotes(body, ',').into_iter().map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
}

pub fn parse(body: &str) -> Vec<Link> {
    let mut links = Vec::new();
    for entry in link_strings(body) {
        let mut parts = split_outside_quotes(&entry, ';').into_iter();
        let Some(t) = parts.next().map(str::trim) else { continue };
        let Some(target) = t.strip_prefix('<').and_then(|t| t.strip_suffix('>')) else { continue };
        let attrs = parts
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(|a| match a.split_once('=') {
                Some((k, v)) => (k.trim().to_string(), v.trim().trim_matches('"').to_string()),
                None => (a.to_string(), String::new()),
            })
            .collect();
        links.push(Link { target: target.to_string(), attrs });
    }
    links
}

/// The registration's object list: the alternate root path (`/` unless the device gives
/// one with `rt="oma.lwm2m"`) and the object (instance) paths below it, in order, with the
/// root prefix removed (`/1/0`, `/3/0`, `/3303`).
pub fn object_list(body: &str) -> (String, Vec<String>) {
    let links = parse(body);
    let root = links
        .iter()
        .find(|l| l.attr("rt") == Some("oma.lwm2m"))
        .map(|l| l.target.trim_end_matches('/').to_string())
        .unwrap_or_default();
    let mut objects = Vec::new();
    for l in &links {
        if l.attr("rt") == Some("oma.lwm2m") {
            continue;
        }
        let Some(rest) = l.target.strip_prefix(root.as_str()) else { continue };
        if rest.len() > 1 && rest.starts_with('/') && rest[1..].split('/').all(|s| s.parse::<u16>().is_ok()) {
            objects.push(rest.to_string());
        }
    }
    (if root.is_empty() { "/".to_string() } else { root }, objects)
}

/// The content formats a registration announces: the `ct` attribute of its root link
/// (`</>;rt="oma.lwm2m";ct=110` or `ct="110 112"`, LwM2M 1.1 Core §6.2.1; the root link is
/// the one with `rt="oma.lwm2m"`, else `</>`). Numbers that do not parse are skipped.
pub fn content_formats(body: &str) -> Vec<u16> {
    let links = parse(body);
    let root =
        links.iter().find(|l| l.attr("rt") == Some("oma.lwm2m")).or_else(|| links.iter().find(|l| l.target == "/"));
    root.and_then(|l| l.attr("ct"))
        .map(|ct| ct.split([' ', ',']).filter_map(|f| f.trim().parse::<u16>().ok()).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_bodies() {
        let (root, objs) = object_list("</>;rt=\"oma.lwm2m\";ct=11543,</1/0>,</3/0>,</3303/0>;ver=1.1,</5>");
        assert_eq!(root, "/");
        assert_eq!(objs, ["/1/0", "/3/0", "/3303/0", "/5"]);
        let (root, objs) = object_list("</lwm2m>;rt=\"oma.lwm2m\",</lwm2m/1/0>,</lwm2m/3/0>,<garbage,</x/y>");
        assert_eq!(root, "/lwm2m");
        assert_eq!(objs, ["/1/0", "/3/0"]);
        assert_eq!(object_list("").1, Vec::<String>::new());
    }

    #[test]
    fn announced_content_formats() {
        assert_eq!(content_formats("</>;rt=\"oma.lwm2m\";ct=110,</3/0>"), [110]);
        assert_eq!(content_formats("</>;ct=\"110 112 11542\",</3/0>"), [110, 112, 11542]);
        assert_eq!(content_formats("</lwm2m>;rt=\"oma.lwm2m\";ct=\"60 x 112\",</lwm2m/3/0>"), [60, 112]);
        assert!(content_formats("</1/0>,</3/0>;ct=110").is_empty());
    }

    #[test]
    fn discover_bodies() {
        let body = "</3/0>;pmin=10;pmax=60,</3/0/1>,</3/0/7>;dim=2,</x>;title=\"a,b;c\"";
        assert_eq!(
            link_strings(body),
            ["</3/0>;pmin=10;pmax=60", "</3/0/1>", "</3/0/7>;dim=2", "</x>;title=\"a,b;c\""]
        );
        let l = parse(body);
        assert_eq!(l[0].attr("pmax"), Some("60"));
        assert_eq!(l[3].attr("title"), Some("a,b;c"));
    }
}
