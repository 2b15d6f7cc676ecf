//! The `signoff` binary's integration tests: they run the built binary as a user would, so
//! that exit codes (101 for a panic) and everything printed on stderr are what a user sees.

mod sweep;
