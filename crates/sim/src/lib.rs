//! `signoff-sim`: a local simulator of the Forge platform (issue #5).
//!
//! Not built yet: this crate is a placeholder in the workspace so that the layout is in place.
//! It exports nothing.
