//! Waiting on queues the session may not have (no front end, no companion gateway): such a
//! wait never ends, so `select!` takes the others.

use tokio::sync::mpsc;

use super::Front;
use super::input::Input;

pub(super) async fn recv_front(front: &mut Option<Front>) -> Option<Input> {
    match front {
        Some(front) => front.inputs.recv().await,
        None => std::future::pending().await,
    }
}

/// The next of `queue`'s items; waits for ever when there is no queue.
pub(super) async fn recv_maybe<T>(queue: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match queue {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
