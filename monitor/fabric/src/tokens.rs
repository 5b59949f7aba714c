//! Following a kind of liveliness token across the fabric: the set of what
//! the tokens under a key expression say, kept current as they come and go.
//!
//! Invariant: the set holds exactly what the live tokens say whose key
//! `parse` takes (others are ignored), from the tokens alive when the
//! follow began (history) on.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;
use zenoh::Session;
use zenoh::sample::SampleKind;

/// Where a follow keeps what the tokens say.
pub(crate) trait TokenSet<T>: Send {
    /// Adds `item` (its token came) or removes it (its token went).
    fn apply(&self, came: bool, item: T);
}

fn change<T: Ord>(set: &mut BTreeSet<T>, came: bool, item: T) {
    if came {
        set.insert(item);
    } else {
        set.remove(&item);
    }
}

impl<T: Ord + Send> TokenSet<T> for Arc<Mutex<BTreeSet<T>>> {
    fn apply(&self, came: bool, item: T) {
        // One insert or remove: never left half done.
        change(
            &mut self.lock().unwrap_or_else(|p| p.into_inner()),
            came,
            item,
        );
    }
}

impl<T: Ord + Send + Sync> TokenSet<T> for watch::Sender<BTreeSet<T>> {
    fn apply(&self, came: bool, item: T) {
        self.send_modify(|set| change(set, came, item));
    }
}

/// Keeps `set` as what the live tokens under `expr` say, as `parse` reads
/// their keys, until the session closes.
pub(crate) async fn follow<T>(
    session: Session,
    expr: &'static str,
    parse: fn(&str) -> Option<T>,
    set: impl TokenSet<T>,
) {
    let Ok(sub) = session
        .liveliness()
        .declare_subscriber(expr)
        .history(true)
        .await
    else {
        return;
    };
    while let Ok(sample) = sub.recv_async().await {
        if let Some(item) = parse(sample.key_expr().as_str()) {
            set.apply(sample.kind() == SampleKind::Put, item);
        }
    }
}
