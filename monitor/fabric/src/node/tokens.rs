//! Following a kind of liveliness token across the fabric: the set of what
//! the tokens under a key expression say, kept current as they come and go.
//!
//! Invariant: the set holds exactly what the live tokens say whose key
//! `parse` takes (others are ignored), from the tokens alive when the watch
//! began (history) on.

use std::collections::BTreeSet;
use tokio::sync::watch;
use zenoh::Session;
use zenoh::sample::SampleKind;

/// Keeps `set` as what the live tokens under `expr` say, as `parse` reads
/// their keys, until the session closes.
pub async fn follow<T: Ord>(
    session: Session,
    expr: &'static str,
    parse: fn(&str) -> Option<T>,
    set: watch::Sender<BTreeSet<T>>,
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
        let Some(entry) = parse(sample.key_expr().as_str()) else {
            continue;
        };
        set.send_modify(|set| {
            if sample.kind() == SampleKind::Put {
                set.insert(entry);
            } else {
                set.remove(&entry);
            }
        });
    }
}
