//! `signoff-core`: the document-approval workflow engine (issue #3).
//!
//! Not built yet: this crate is a placeholder in the workspace so that the layout is in place.
//! It exports nothing. See ARCHITECTURE.md for what it will hold and the invariants it keeps.
