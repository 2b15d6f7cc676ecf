//! Containing panics of the storage engines: redb 2.6 and sled 0.34 assert (panic) on some
//! damaged files, and a damaged file must give the caller an error naming it, never take the
//! process down or print a raw panic.
//!
//! [`contain`] runs a call into an engine under `catch_unwind` and marks the thread while it
//! runs, so that a binary's panic hook can stay quiet for panics that are contained
//! ([`panic_is_contained`]): the `signoff` binary installs such a hook. Libraries never
//! install one themselves.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};

thread_local! {
    /// How many [`contain`] calls are running on this thread.
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// True while the current thread runs inside [`contain`]: a panic now will be caught and
/// turned into an error, so a panic hook need not print it.
pub fn panic_is_contained() -> bool {
    DEPTH.with(|d| d.get() > 0)
}

/// Runs `f`, turning a panic into `Err` with the panic's message.
///
/// The engines' state after such a panic is unknown (their locks may be poisoned), so the
/// callers treat the whole store as damaged, not just the one call.
pub fn contain<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    /// Leaves the contained section also when `f` unwinds.
    struct Depth;
    impl Drop for Depth {
        fn drop(&mut self) {
            DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
        }
    }
    DEPTH.with(|d| d.set(d.get() + 1));
    let depth = Depth;
    let result = catch_unwind(AssertUnwindSafe(f));
    drop(depth);
    result.map_err(|panic| {
        panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "the storage engine failed on it".into())
    })
}
