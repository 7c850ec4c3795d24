//! Rule SQL tokens (EMQX 5 rule SQL, the `SELECT` subset): every token keeps its line and
//! column so a syntax error can name them.

use super::ParseError;

/// A position in the SQL text, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub line: u32,
    pub column: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    Ident(String),
    /// `'...'` or `"..."`: EMQX reads both as strings (double quotes name topics in `FROM`).
    Str(String),
    Int(i64),
    Float(f64),
    Comma,
    Dot,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Star,
    Plus,
    Minus,
    Slash,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// `=~`: topic match.
    Match,
    Eof,
}

impl Tok {
    pub fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("`{s}`"),
            Tok::Str(s) => format!("string {s:?}"),
            Tok::Int(i) => format!("number {i}"),
            Tok::Float(f) => format!("number {f}"),
            Tok::Eof => "the end of the SQL".into(),
            t => format!("`{}`", t.symbol()),
        }
    }

    fn symbol(&self) -> &'static str {
        match self {
            Tok::Comma => ",",
            Tok::Dot => ".",
            Tok::LParen => "(",
            Tok::RParen => ")",
            Tok::LBracket => "[",
            Tok::RBracket => "]",
            Tok::Star => "*",
            Tok::Plus => "+",
            Tok::Minus => "-",
            Tok::Slash => "/",
            Tok::Eq => "=",
            Tok::Ne => "!=",
            Tok::Lt => "<",
            Tok::Le => "<=",
            Tok::Gt => ">",
            Tok::Ge => ">=",
            Tok::Match => "=~",
            _ => "?",
        }
    }

    /// Whether this is the keyword `kw` (case-insensitive).
    pub fn is_kw(&self, kw: &str) -> bool {
        matches!(self, Tok::Ident(s) if s.eq_ignore_ascii_case(kw))
    }
}

/// Splits `sql` into tokens, each with its position; the last is [`Tok::Eof`].
pub fn tokens(sql: &str) -> Result<Vec<(Tok, Pos)>, ParseError> {
    let mut out = Vec::new();
    let chars: Vec<char> = sql.chars().collect();
    let (mut i, mut line, mut col) = (0usize, 1u32, 1u32);
    while i < chars.len() {
        let c = chars[i];
        let pos = Pos { line, column: col };
        let start = i;
        if c == '\n' {
            (i, line, col) = (i + 1, line + 1, 1);
            continue;
        }
        if c.is_whitespace() {
            (i, col) = (i + 1, col + 1);
            continue;
        }
        if c == '-' && chars.get(i + 1) == Some(&'-') {
            // A `--` comment runs to the end of the line.
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        let tok = if c.is_ascii_alphabetic() || c == '_' {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            Tok::Ident(chars[start..i].iter().collect())
        } else if c.is_ascii_digit() {
            i = number_end(&chars, i);
            let text: String = chars[start..i].iter().collect();
            number(&text, pos)?
        } else if c == '\'' || c == '"' {
            let (s, end, lines) = string(&chars, i, pos)?;
            i = end;
            if lines > 0 {
                line += lines;
                col = 1 + (end - chars[..end].iter().rposition(|&c| c == '\n').unwrap_or(0) - 1) as u32;
                out.push((Tok::Str(s), pos));
                continue;
            }
            Tok::Str(s)
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            let (t, n) = match two.as_str() {
                "!=" | "<>" => (Tok::Ne, 2),
                "<=" => (Tok::Le, 2),
                ">=" => (Tok::Ge, 2),
                "=~" => (Tok::Match, 2),
                _ => match c {
                    ',' => (Tok::Comma, 1),
                    '.' => (Tok::Dot, 1),
                    '(' => (Tok::LParen, 1),
                    ')' => (Tok::RParen, 1),
                    '[' => (Tok::LBracket, 1),
                    ']' => (Tok::RBracket, 1),
                    '*' => (Tok::Star, 1),
                    '+' => (Tok::Plus, 1),
                    '-' => (Tok::Minus, 1),
                    '/' => (Tok::Slash, 1),
                    '=' => (Tok::Eq, 1),
                    '<' => (Tok::Lt, 1),
                    '>' => (Tok::Gt, 1),
                    _ => return Err(ParseError::at(pos, format!("unexpected character {c:?}"))),
                },
            };
            i += n;
            t
        };
        col += (i - start) as u32;
        out.push((tok, pos));
    }
    out.push((Tok::Eof, Pos { line, column: col }));
    Ok(out)
}

fn number_end(chars: &[char], mut i: usize) -> usize {
    while i < chars.len() && chars[i].is_ascii_digit() {
        i += 1;
    }
    if i + 1 < chars.len() && chars[i] == '.' && chars[i + 1].is_ascii_digit() {
        i += 1;
        while i < chars.len() && chars[i].is_ascii_digit() {
            i += 1;
        }
    }
    if i < chars.len() && (chars[i] == 'e' || chars[i] == 'E') {
        let mut j = i + 1;
        if j < chars.len() && (chars[j] == '+' || chars[j] == '-') {
            j += 1;
        }
        if j < chars.len() && chars[j].is_ascii_digit() {
            i = j;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
        }
    }
    i
}

fn number(text: &str, pos: Pos) -> Result<Tok, ParseError> {
    if text.contains(['.', 'e', 'E']) {
        text.parse::<f64>().map(Tok::Float).map_err(|_| ParseError::at(pos, format!("bad number {text:?}")))
    } else {
        text.parse::<i64>().map(Tok::Int).map_err(|_| ParseError::at(pos, format!("number {text} is too large")))
    }
}

/// A quoted string from `chars[i]` (the quote): its text, the index after the closing
/// quote, and how many line breaks it held. A doubled quote, or a backslash before the
/// quote, is the quote itself.
fn string(chars: &[char], i: usize, pos: Pos) -> Result<(String, usize, u32), ParseError> {
    let q = chars[i];
    let (mut s, mut j, mut lines) = (String::new(), i + 1, 0);
    loop {
        let Some(&c) = chars.get(j) else {
            return Err(ParseError::at(pos, "string is not closed".to_string()));
        };
        if c == q {
            if chars.get(j + 1) == Some(&q) {
                s.push(q);
                j += 2;
                continue;
            }
            return Ok((s, j + 1, lines));
        }
        // EMQX keeps backslashes as they are (regexes read `\d`; see its `unescape`), but a
        // backslash before the quote escapes it.
        if c == '\\' && chars.get(j + 1) == Some(&q) {
            s.push(q);
            j += 2;
            continue;
        }
        if c == '\n' {
            lines += 1;
        }
        s.push(c);
        j += 1;
    }
}
