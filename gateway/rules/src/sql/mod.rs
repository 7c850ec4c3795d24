//! Rule SQL: EMQX 5's `SELECT ... FROM ... WHERE ...` (the common subset), parsed once into
//! [`Statement`] and evaluated per message or event by [`crate::eval`].
//!
//! Not supported (refused with a position): `FOREACH`/`DO`/`INCASE`, jq expressions.

mod lexer;
mod parser;

pub use lexer::Pos;
pub use parser::parse;

use serde_json::Value;

use crate::funcs::Func;

/// A syntax error, naming where: `line 1, column 23: expected FROM, found ...`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct ParseError {
    pub line: u32,
    pub column: u32,
    pub message: String,
}

impl ParseError {
    pub(crate) fn at(pos: Pos, message: String) -> ParseError {
        ParseError { line: pos.line, column: pos.column, message }
    }
}

/// One step of a field path: `payload.a`, `payload.list[1]`.
#[derive(Debug, Clone, PartialEq)]
pub enum Seg {
    Key(String),
    /// 1-based, as EMQX indexes (`[-1]` is the last).
    Index(i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// `=~`: the left side is a topic, the right a topic filter.
    Match,
    Add,
    Sub,
    Mul,
    Div,
    /// `div`: integer division.
    IntDiv,
    Mod,
}

#[derive(Debug, Clone)]
pub enum Expr {
    Lit(Value),
    /// A column (`clientid`), a path into one (`payload.a.b`), or a select alias.
    Path(Vec<Seg>),
    /// A path into any expression's value: `json_decode(x).a`.
    Index(Box<Expr>, Vec<Seg>),
    Not(Box<Expr>),
    Neg(Box<Expr>),
    Bin(BinOp, Box<Expr>, Box<Expr>),
    Call(Func, Vec<Expr>),
    Array(Vec<Expr>),
    /// `CASE [operand] WHEN .. THEN .. [ELSE ..] END`.
    Case {
        operand: Option<Box<Expr>>,
        arms: Vec<(Expr, Expr)>,
        otherwise: Option<Box<Expr>>,
    },
}

/// One item of the `SELECT` list.
#[derive(Debug, Clone)]
pub enum Field {
    /// `*`: every column of the event.
    All,
    /// An expression and the path it is stored under in the output (its `AS`, or its own
    /// path for a bare `payload.a.b`, or the function's text for a call).
    Expr { expr: Expr, name: Vec<Seg> },
}

/// What a rule listens to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Messages published on topics matching this filter.
    Topic(String),
    /// `$events/NAME`.
    Event(crate::eval::EventName),
}

/// A parsed rule.
#[derive(Debug, Clone)]
pub struct Statement {
    pub fields: Vec<Field>,
    pub from: Vec<Source>,
    pub filter: Option<Expr>,
    /// `WHERE` reads an alias of the select list, so the select runs first (else `WHERE`
    /// runs first and a message it rejects costs no output).
    pub where_reads_alias: bool,
}
