//! The one integration-test binary of `signoff-storage`: the conformance suite (once per
//! adapter), the differential test against a `BTreeMap` model, crash and IO-error tests,
//! and opening errors.

mod conformance;
mod crash;
mod differential;
mod group;
mod open;
mod support;
