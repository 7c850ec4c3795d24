//! Rule SQL parser: recursive descent over [`super::lexer`] tokens. Precedence, lowest
//! first: `OR`, `AND`, `NOT`, comparisons (`= != <> < <= > >= =~`), `+ -`, `* / div mod`,
//! unary `-`, then paths (`a.b`, `a[1]`) and calls.

use serde_json::Value;

use super::lexer::{Pos, Tok, tokens};
use super::{BinOp, Expr, Field, ParseError, Seg, Source, Statement};
use crate::eval::EventName;
use crate::funcs;

/// The most tokens and the deepest nesting a rule may have: a rule comes from an API client.
const MAX_TOKENS: usize = 10_000;
const MAX_DEPTH: usize = 64;

/// Parses one rule statement.
pub fn parse(sql: &str) -> Result<Statement, ParseError> {
    let toks = tokens(sql)?;
    if toks.len() > MAX_TOKENS {
        return Err(ParseError::at(toks[0].1, format!("rule has more than {MAX_TOKENS} tokens")));
    }
    let mut p = Parser { toks, i: 0, depth: 0 };
    p.statement()
}

struct Parser {
    toks: Vec<(Tok, Pos)>,
    i: usize,
    depth: usize,
}

type R<T> = Result<T, ParseError>;

impl Parser {
    fn peek(&self) -> &Tok {
        &self.toks[self.i].0
    }
    fn pos(&self) -> Pos {
        self.toks[self.i].1
    }
    fn bump(&mut self) -> Tok {
        let t = self.toks[self.i].0.clone();
        if self.i + 1 < self.toks.len() {
            self.i += 1;
        }
        t
    }
    fn err<T>(&self, expected: &str) -> R<T> {
        Err(ParseError::at(self.pos(), format!("expected {expected}, found {}", self.peek().describe())))
    }
    fn eat_kw(&mut self, kw: &str) -> bool {
        if self.peek().is_kw(kw) {
            self.bump();
            true
        } else {
            false
        }
    }
    fn expect_kw(&mut self, kw: &str) -> R<()> {
        if self.eat_kw(kw) { Ok(()) } else { self.err(kw) }
    }
    fn eat(&mut self, t: &Tok) -> bool {
        if self.peek() == t {
            self.bump();
            true
        } else {
            false
        }
    }
    fn expect(&mut self, t: Tok, what: &str) -> R<()> {
        if self.eat(&t) { Ok(()) } else { self.err(what) }
    }

    fn statement(&mut self) -> R<Statement> {
        if self.peek().is_kw("FOREACH") {
            return Err(ParseError::at(self.pos(), "FOREACH is not supported; use SELECT".into()));
        }
        self.expect_kw("SELECT")?;
        let mut fields = vec![self.field()?];
        while self.eat(&Tok::Comma) {
            fields.push(self.field()?);
        }
        self.expect_kw("FROM")?;
        let mut from = vec![self.source()?];
        while self.eat(&Tok::Comma) {
            from.push(self.source()?);
        }
        let filter = if self.eat_kw("WHERE") { Some(self.expr()?) } else { None };
        if *self.peek() != Tok::Eof {
            return self.err(if filter.is_some() { "the end of the rule" } else { "WHERE or the end of the rule" });
        }
        let aliases: Vec<&str> = fields
            .iter()
            .filter_map(|f| match f {
                Field::Expr { name, .. } => match name.first() {
                    Some(Seg::Key(k)) => Some(k.as_str()),
                    _ => None,
                },
                Field::All => None,
            })
            .collect();
        let where_reads_alias = filter.as_ref().is_some_and(|w| reads_any(w, &aliases));
        Ok(Statement { fields, from, filter, where_reads_alias })
    }

    fn field(&mut self) -> R<Field> {
        if self.eat(&Tok::Star) {
            return Ok(Field::All);
        }
        let start = self.i;
        let expr = self.expr()?;
        let name = if self.eat_kw("AS") {
            self.path_name()?
        } else {
            match &expr {
                Expr::Path(p) => p.clone(),
                // EMQX names an unaliased expression by its text.
                _ => vec![Seg::Key(self.text(start, self.i))],
            }
        };
        Ok(Field::Expr { expr, name })
    }

    /// The text of tokens `a..b`, as EMQX names an unaliased expression.
    fn text(&self, a: usize, b: usize) -> String {
        let mut s = String::new();
        for (t, _) in &self.toks[a..b] {
            match t {
                Tok::Ident(x) => s.push_str(x),
                Tok::Str(x) => {
                    s.push('\'');
                    s.push_str(x);
                    s.push('\'');
                }
                Tok::Comma => s.push_str(", "),
                t => s.push_str(t.describe().trim_matches('`').trim_start_matches("number ")),
            }
        }
        s
    }

    fn path_name(&mut self) -> R<Vec<Seg>> {
        let mut p = vec![Seg::Key(self.ident("a name after AS")?)];
        while self.eat(&Tok::Dot) {
            p.push(Seg::Key(self.ident("a name after `.`")?));
        }
        Ok(p)
    }

    fn ident(&mut self, what: &str) -> R<String> {
        match self.peek().clone() {
            Tok::Ident(s) => {
                self.bump();
                Ok(s)
            }
            _ => self.err(what),
        }
    }

    fn source(&mut self) -> R<Source> {
        let pos = self.pos();
        let Tok::Str(s) = self.peek().clone() else {
            return self.err("a quoted topic filter or \"$events/...\"");
        };
        self.bump();
        if let Some(name) = s.strip_prefix("$events/") {
            return EventName::parse(name)
                .map(Source::Event)
                .ok_or_else(|| ParseError::at(pos, format!("unknown event {s:?} (known: {})", EventName::list())));
        }
        if s.is_empty() || s.contains('\0') {
            return Err(ParseError::at(pos, format!("{s:?} is not a topic filter")));
        }
        let levels: Vec<&str> = s.split('/').collect();
        for (i, l) in levels.iter().enumerate() {
            if (l.contains('#') && (*l != "#" || i + 1 != levels.len())) || (l.contains('+') && *l != "+") {
                return Err(ParseError::at(pos, format!("{s:?} is not a topic filter (misplaced `#` or `+`)")));
            }
        }
        Ok(Source::Topic(s))
    }

    pub(super) fn expr(&mut self) -> R<Expr> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ParseError::at(self.pos(), format!("expression nested deeper than {MAX_DEPTH}")));
        }
        let e = self.or();
        self.depth -= 1;
        e
    }

    fn or(&mut self) -> R<Expr> {
        let mut l = self.and()?;
        while self.eat_kw("OR") {
            l = Expr::Bin(BinOp::Or, Box::new(l), Box::new(self.and()?));
        }
        Ok(l)
    }

    fn and(&mut self) -> R<Expr> {
        let mut l = self.not()?;
        while self.eat_kw("AND") {
            l = Expr::Bin(BinOp::And, Box::new(l), Box::new(self.not()?));
        }
        Ok(l)
    }

    fn not(&mut self) -> R<Expr> {
        if self.eat_kw("NOT") {
            self.depth += 1;
            if self.depth > MAX_DEPTH {
                return Err(ParseError::at(self.pos(), format!("expression nested deeper than {MAX_DEPTH}")));
            }
            let e = self.not();
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(e?)));
        }
        self.cmp()
    }

    fn cmp(&mut self) -> R<Expr> {
        let l = self.add()?;
        let op = match self.peek() {
            Tok::Eq => BinOp::Eq,
            Tok::Ne => BinOp::Ne,
            Tok::Lt => BinOp::Lt,
            Tok::Le => BinOp::Le,
            Tok::Gt => BinOp::Gt,
            Tok::Ge => BinOp::Ge,
            Tok::Match => BinOp::Match,
            _ => return Ok(l),
        };
        self.bump();
        Ok(Expr::Bin(op, Box::new(l), Box::new(self.add()?)))
    }

    fn add(&mut self) -> R<Expr> {
        let mut l = self.mul()?;
        loop {
            let op = match self.peek() {
                Tok::Plus => BinOp::Add,
                Tok::Minus => BinOp::Sub,
                _ => return Ok(l),
            };
            self.bump();
            l = Expr::Bin(op, Box::new(l), Box::new(self.mul()?));
        }
    }

    fn mul(&mut self) -> R<Expr> {
        let mut l = self.unary()?;
        loop {
            let op = match self.peek() {
                Tok::Star => BinOp::Mul,
                Tok::Slash => BinOp::Div,
                t if t.is_kw("div") => BinOp::IntDiv,
                t if t.is_kw("mod") => BinOp::Mod,
                _ => return Ok(l),
            };
            self.bump();
            l = Expr::Bin(op, Box::new(l), Box::new(self.unary()?));
        }
    }

    fn unary(&mut self) -> R<Expr> {
        if self.eat(&Tok::Minus) {
            return Ok(match self.unary()? {
                Expr::Lit(Value::Number(n)) if n.as_i64().is_some() => Expr::Lit(Value::from(-n.as_i64().unwrap_or(0))),
                Expr::Lit(Value::Number(n)) => Expr::Lit(Value::from(-n.as_f64().unwrap_or(0.0))),
                e => Expr::Neg(Box::new(e)),
            });
        }
        let base = self.primary()?;
        let segs = self.segments()?;
        Ok(match (base, segs.is_empty()) {
            (b, true) => b,
            (Expr::Path(mut p), false) => {
                p.extend(segs);
                Expr::Path(p)
            }
            (b, false) => Expr::Index(Box::new(b), segs),
        })
    }

    /// `.key` and `[n]` after a primary.
    fn segments(&mut self) -> R<Vec<Seg>> {
        let mut segs = Vec::new();
        loop {
            if self.eat(&Tok::Dot) {
                segs.push(Seg::Key(self.ident("a field name after `.`")?));
            } else if *self.peek() == Tok::LBracket {
                self.bump();
                let neg = self.eat(&Tok::Minus);
                match self.bump() {
                    Tok::Int(n) => segs.push(Seg::Index(if neg { -n } else { n })),
                    Tok::Str(k) if !neg => segs.push(Seg::Key(k)),
                    _ => {
                        self.i -= 1;
                        return self.err("an index or a quoted key in `[]`");
                    }
                }
                self.expect(Tok::RBracket, "`]`")?;
            } else {
                return Ok(segs);
            }
        }
    }

    fn primary(&mut self) -> R<Expr> {
        let pos = self.pos();
        match self.peek().clone() {
            Tok::Int(n) => {
                self.bump();
                Ok(Expr::Lit(Value::from(n)))
            }
            Tok::Float(f) => {
                self.bump();
                Ok(Expr::Lit(Value::from(f)))
            }
            Tok::Str(s) => {
                self.bump();
                Ok(Expr::Lit(Value::from(s)))
            }
            Tok::LParen => {
                self.bump();
                let e = self.expr()?;
                self.expect(Tok::RParen, "`)`")?;
                Ok(e)
            }
            Tok::LBracket => {
                self.bump();
                let mut items = Vec::new();
                if !self.eat(&Tok::RBracket) {
                    items.push(self.expr()?);
                    while self.eat(&Tok::Comma) {
                        items.push(self.expr()?);
                    }
                    self.expect(Tok::RBracket, "`,` or `]`")?;
                }
                Ok(Expr::Array(items))
            }
            Tok::Ident(name) => {
                self.bump();
                self.named(name, pos)
            }
            _ => self.err("an expression"),
        }
    }

    /// After an identifier: a keyword literal, `CASE`, a call, or a column.
    fn named(&mut self, name: String, pos: Pos) -> R<Expr> {
        match name.to_ascii_lowercase().as_str() {
            "true" => return Ok(Expr::Lit(Value::Bool(true))),
            "false" => return Ok(Expr::Lit(Value::Bool(false))),
            "null" | "undefined" => return Ok(Expr::Lit(Value::Null)),
            "case" => return self.case(),
            "select" | "from" | "where" | "as" | "and" | "or" | "when" | "then" | "else" | "end" => {
                return Err(ParseError::at(pos, format!("expected an expression, found keyword `{name}`")));
            }
            _ => {}
        }
        if *self.peek() != Tok::LParen {
            return Ok(Expr::Path(vec![Seg::Key(name)]));
        }
        self.bump();
        let mut args = Vec::new();
        if !self.eat(&Tok::RParen) {
            args.push(self.expr()?);
            while self.eat(&Tok::Comma) {
                args.push(self.expr()?);
            }
            self.expect(Tok::RParen, "`,` or `)`")?;
        }
        let f = funcs::lookup(&name, args.len()).map_err(|m| ParseError::at(pos, m))?;
        Ok(Expr::Call(f, args))
    }

    fn case(&mut self) -> R<Expr> {
        let operand = if self.peek().is_kw("WHEN") { None } else { Some(Box::new(self.expr()?)) };
        let mut arms = Vec::new();
        while self.eat_kw("WHEN") {
            let cond = self.expr()?;
            self.expect_kw("THEN")?;
            arms.push((cond, self.expr()?));
        }
        if arms.is_empty() {
            return self.err("WHEN");
        }
        let otherwise = if self.eat_kw("ELSE") { Some(Box::new(self.expr()?)) } else { None };
        if !self.eat_kw("END") {
            return self.err("WHEN, ELSE or END");
        }
        Ok(Expr::Case { operand, arms, otherwise })
    }
}

/// Whether `e` reads a column whose first name is one of `names`.
fn reads_any(e: &Expr, names: &[&str]) -> bool {
    match e {
        Expr::Path(p) => matches!(p.first(), Some(Seg::Key(k)) if names.contains(&k.as_str())),
        Expr::Lit(_) => false,
        Expr::Index(b, _) | Expr::Not(b) | Expr::Neg(b) => reads_any(b, names),
        Expr::Bin(_, a, b) => reads_any(a, names) || reads_any(b, names),
        Expr::Call(_, args) | Expr::Array(args) => args.iter().any(|a| reads_any(a, names)),
        Expr::Case { operand, arms, otherwise } => {
            operand.as_ref().is_some_and(|o| reads_any(o, names))
                || arms.iter().any(|(c, v)| reads_any(c, names) || reads_any(v, names))
                || otherwise.as_ref().is_some_and(|o| reads_any(o, names))
        }
    }
}
