//! `signoff-storage`: redb, sled, memory and hosted key-value adapters behind the storage
//! traits of `signoff-core` (issue #4).
//!
//! Not built yet: this crate is a placeholder in the workspace so that the layout is in place.
//! It exports nothing.
