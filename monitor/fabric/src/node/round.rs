//! The gets of one IPC message (PROTOCOL.md §18.5): sent again with the
//! same stamp while it meets silence, each get lasting only until the
//! message is next sent again and [`OVERLAP`] more, the last one until
//! the message's time is up.
//!
//! Invariant: from the first get to the message's end, some get of the
//! round is live (each outlives the next one's start by [`OVERLAP`]; only
//! gets that no route reached end sooner, and the round asks again after
//! `RETRY`), and
//! no get but the last lasts longer than its silence and [`OVERLAP`]:
//! Zenoh keeps a task for every get until its time is up, answered or not,
//! so a device's memory for gets grows with its message rate times a get's
//! life, never times a message's limit (up to an hour).

use super::RETRY;
use crate::ipc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How long an IPC message waits in silence before it is sent again (the
/// wait doubles each time).
pub const RESEND_AFTER: Duration = Duration::from_secs(1);
/// The longest silence after which a message is sent again: the last time
/// is 31 s after the first, well within the receiver's memory of stamps
/// (`ipc::recent::KEEP`), so that it is never delivered twice.
pub const RESEND_LAST: Duration = Duration::from_secs(16);
/// How long a get of an IPC message outlives the time its message is next
/// sent again, if it is: a reply already on its way still finds it.
pub const OVERLAP: Duration = Duration::from_millis(500);

/// The gets of one message, sent again while it meets silence: their
/// replies come on one channel, which ends once every get has ended.
pub(super) struct Round {
    pub(super) replies: mpsc::Receiver<zenoh::query::Reply>,
    /// What another get of the round sends its replies on (weak: the
    /// channel ends with the round's last get).
    pub(super) again: mpsc::WeakSender<zenoh::query::Reply>,
    /// Where the message's answer goes.
    pub(super) answerer: ipc::Answerer,
}

/// Replies one round keeps: the first is the answer.
pub(super) const ROUND_REPLIES: usize = 8;

/// Whether a round with `left` to go sends its message again after
/// `quiet` more of silence.
pub(super) fn resends(quiet: Duration, left: Duration) -> bool {
    quiet <= RESEND_LAST && left > quiet + RETRY * 2
}

/// How long a get of a round lasts, sent with `left` to go and `quiet` of
/// silence before the round sends the message again: until then and
/// [`OVERLAP`] more, or to the end if the round will not send it again.
pub(super) fn get_life(left: Duration, quiet: Duration) -> Duration {
    if resends(quiet, left) {
        (quiet + OVERLAP).min(left)
    } else {
        left
    }
}

/// For a get sent at `now`, with `left` to go and `quiet` of silence
/// before the round sends its message again: when that is, if it is, and
/// how long the get lasts.
pub(super) fn schedule(
    now: Instant,
    left: Duration,
    quiet: Duration,
) -> (Option<Instant>, Duration) {
    (
        resends(quiet, left).then(|| now + quiet),
        get_life(left, quiet),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The gets a round with `limit` sends when it hears nothing: when
    /// each is sent and when it ends, from the first.
    fn silent_round(limit: Duration) -> Vec<(Duration, Duration)> {
        let (mut at, mut quiet) = (Duration::ZERO, RESEND_AFTER);
        let mut gets = vec![(at, get_life(limit, quiet))];
        while resends(quiet, limit - at) {
            at += quiet;
            quiet *= 2;
            gets.push((at, at + get_life(limit - at, quiet)));
        }
        gets
    }

    #[test]
    fn a_get_lives_past_the_next_one_and_only_the_last_to_the_end() {
        for secs in [1, 2, 5, 10, 31, 60, 3600] {
            let limit = Duration::from_secs(secs);
            let gets = silent_round(limit);
            for pair in gets.windows(2) {
                let ((_, end), (next, _)) = (pair[0], pair[1]);
                assert_eq!(end, next + OVERLAP, "{secs} s: {gets:?}");
            }
            assert_eq!(gets.last().unwrap().1, limit, "{secs} s: {gets:?}");
        }
    }

    #[test]
    fn a_long_message_is_sent_six_times_the_last_31_s_after_the_first() {
        let gets = silent_round(Duration::from_secs(3600));
        let sent: Vec<u64> = gets.iter().map(|(at, _)| at.as_secs()).collect();
        assert_eq!(sent, [0, 1, 3, 7, 15, 31]);
        // The first five last 1.5 to 16.5 s: not the hour.
        assert!(
            gets[..5]
                .iter()
                .all(|(at, end)| *end - *at <= RESEND_LAST + OVERLAP)
        );
    }

    #[test]
    fn a_short_message_has_one_get_for_its_whole_limit() {
        for ms in [10, 500, 1100] {
            let limit = Duration::from_millis(ms);
            assert_eq!(silent_round(limit), [(Duration::ZERO, limit)]);
        }
    }
}
