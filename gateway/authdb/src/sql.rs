//! What the SQL sources (`"postgresql"`, `"mysql"`) share: both run the configured query as
//! a prepared statement and read named columns, so authentication (`password_hash`, `salt`,
//! `is_superuser`) and ACL rows (`permission`, `action`, `topic`) are judged once, here.

use roost_core::auth::{AclRule, BoxFuture};

use crate::BackendError;
use crate::acl::AclBackend;
use crate::settings::SqlSettings;
use crate::source::{Backend, Outcome, judge};
use crate::template::{Var, Vars};

/// A prepared query: the SQL with the driver's parameter markers, and the variables bound.
pub type Query = (String, Vec<Var>);

/// One SQL database client.
pub trait SqlClient: Send + Sync {
    type Row: Send;
    /// The `source` labels of the authenticator and of the ACL source.
    const KIND: &'static str;
    const ACL_KIND: &'static str;
    fn settings(&self) -> &SqlSettings;
    /// The authentication query, and the ACL query if this database is an ACL source.
    fn queries(&self) -> (&Query, Option<&Query>);
    fn rows<'a>(&'a self, query: &'a Query, values: &'a Vars) -> BoxFuture<'a, Result<Vec<Self::Row>, BackendError>>;
    /// A column as text; `None` if absent or NULL.
    fn text(row: &Self::Row, name: &str) -> Option<String>;
    /// A column as a flag (boolean, number or text such as "true").
    fn flag(row: &Self::Row, name: &str) -> bool;
}

impl<C: SqlClient> Backend for C {
    fn kind(&self) -> &'static str {
        C::KIND
    }

    fn check<'a>(&'a self, vars: &'a Vars, password: Option<&'a [u8]>) -> BoxFuture<'a, Result<Outcome, BackendError>> {
        Box::pin(async move {
            let rows = self.rows(self.queries().0, vars).await?;
            let Some(row) = rows.first() else { return Ok(Outcome::NotFound) };
            let hash = C::text(row, "password_hash");
            let salt = C::text(row, "salt");
            Ok(judge(
                self.settings().hash,
                password,
                hash.as_deref(),
                salt.as_deref().map(str::as_bytes),
                C::flag(row, "is_superuser"),
            ))
        })
    }
}

impl<C: SqlClient> AclBackend for C {
    fn kind(&self) -> &'static str {
        C::ACL_KIND
    }

    fn rules<'a>(&'a self, vars: &'a Vars) -> BoxFuture<'a, Result<Vec<AclRule>, BackendError>> {
        Box::pin(async move {
            let Some(q) = self.queries().1 else { return Ok(Vec::new()) };
            let rows = self.rows(q, vars).await?;
            Ok(rows
                .iter()
                .filter_map(|r| {
                    let (p, a, t) = (C::text(r, "permission")?, C::text(r, "action")?, C::text(r, "topic")?);
                    crate::acl::rule(&p, &a, &t)
                })
                .collect())
        })
    }
}
