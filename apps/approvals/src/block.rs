//! A minimal executor for core's async storage traits inside the component.
//!
//! Every store the app uses answers at once (the hosted key-value store is a synchronous
//! import), so each future is ready on its first poll. Polling with a no-op waker is all the
//! runtime the app needs, and it keeps tokio and friends out of the component.

use std::future::Future;
use std::task::{Context, Poll, Waker};

/// How many times a future is polled before the app gives up on it. A future over the
/// hosted store is ready on the first poll; one that is not would never be woken.
const MAX_POLLS: u32 = 1_000;

/// Runs a future that completes without waiting on anything.
///
/// # Panics
///
/// When the future is still pending after [`MAX_POLLS`] polls: it waits on something that
/// will never happen in a single-threaded component, and a trap is the honest answer.
pub fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..MAX_POLLS {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
    panic!("a storage future was still pending after {MAX_POLLS} polls")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_futures_complete() {
        assert_eq!(block_on(async { 1 + 1 }), 2);
        let store = signoff_core::store::MemoryStore::new();
        use signoff_core::store::EventStore;
        assert!(block_on(store.read("nothing", 0)).unwrap().is_empty());
    }

    #[test]
    fn a_future_that_yields_once_completes() {
        let mut first = true;
        let f = std::future::poll_fn(move |_| {
            if std::mem::take(&mut first) {
                Poll::Pending
            } else {
                Poll::Ready(7)
            }
        });
        assert_eq!(block_on(f), 7);
    }
}
