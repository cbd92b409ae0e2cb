//! What the gateway reads routes from: a narrow view of the store (its revision, the inputs of a
//! route table, and change announcements), implemented by `control`. The gateway never sees the
//! store itself.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use crate::store::StoreEvent as SourceEvent;

use super::inputs::{RouteInputs, Touched};

pub type SourceFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, String>> + Send + 'a>>;

pub trait RouteSource: Send + Sync + 'static {
    /// The store revision now.
    fn revision(&self) -> SourceFuture<'_, i64>;

    /// Everything a route table is compiled from, at one revision.
    fn inputs(&self) -> SourceFuture<'_, RouteInputs>;

    /// The inputs at the revision now, made from `previous` and only what changed since its
    /// revision, with what changed; `None` when only a whole read ([`RouteSource::inputs`]) is
    /// safe. By default there is no incremental read.
    fn inputs_since(&self, previous: Arc<RouteInputs>) -> SourceFuture<'_, Option<(RouteInputs, Touched)>> {
        let _ = previous;
        Box::pin(async { Ok(None) })
    }

    /// Change announcements, when the store sends them (several nodes on PostgreSQL); `None`
    /// when changes are found by polling the revision only.
    fn changes(&self) -> Option<tokio::sync::mpsc::Receiver<SourceEvent>>;
}
