//! The integration tests of signoff-cli, in one binary to keep link times low.

mod damaged;
mod old_times;
