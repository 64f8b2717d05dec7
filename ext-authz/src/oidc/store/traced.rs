//! Every session store call as a client span (`session store load`, …), whatever the store.
//! Attributes name the operation and the store, never a cookie or a session's content.

use futures_util::future::BoxFuture;
use shared::traces::in_span;

use super::{Revocation, Session, SessionStore, StoreError};

pub struct Traced(pub Box<dyn SessionStore>);

fn span(operation: &'static str, kind: &'static str) -> tracing::Span {
    shared::traces::child_span(|| {
        tracing::info_span!(
            "session store",
            otel.name = format!("session store {operation}"),
            otel.kind = "client",
            db.system = kind,
            db.operation.name = operation,
        )
    })
}

impl SessionStore for Traced {
    fn kind(&self) -> &'static str {
        self.0.kind()
    }

    fn save<'a>(&'a self, session: &'a Session, now: u64) -> BoxFuture<'a, Result<String, StoreError>> {
        Box::pin(in_span(span("save", self.kind()), self.0.save(session, now)))
    }

    fn replace<'a>(&'a self, session: &'a Session, now: u64) -> BoxFuture<'a, Result<Option<String>, StoreError>> {
        Box::pin(in_span(span("replace", self.kind()), self.0.replace(session, now)))
    }

    fn load_all<'a>(&'a self, cookies: &'a [String], now: u64) -> BoxFuture<'a, Result<Vec<Session>, StoreError>> {
        Box::pin(in_span(span("load", self.kind()), self.0.load_all(cookies, now)))
    }

    fn end_all<'a>(&'a self, cookies: &'a [String], now: u64) -> BoxFuture<'a, Result<Vec<Session>, StoreError>> {
        Box::pin(in_span(span("end", self.kind()), self.0.end_all(cookies, now)))
    }

    fn delete<'a>(&'a self, session: &'a Session, now: u64) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(in_span(span("delete", self.kind()), self.0.delete(session, now)))
    }

    fn revoke<'a>(&'a self, revocation: &'a Revocation, now: u64) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(in_span(span("revoke", self.kind()), self.0.revoke(revocation, now)))
    }
}
