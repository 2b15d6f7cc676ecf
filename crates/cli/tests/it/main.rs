//! The integration tests of signoff-cli, in one binary to keep link times low. Some run the
//! built `signoff` binary as a user would, so that exit codes (101 for a panic) and
//! everything printed on stderr are what a user sees.

mod damaged;
mod old_times;
mod sweep;
