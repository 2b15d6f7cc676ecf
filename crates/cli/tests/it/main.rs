//! The integration tests of signoff-cli, in one binary to keep link times low.

mod old_times;
