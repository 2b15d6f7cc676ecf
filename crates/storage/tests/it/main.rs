//! The one integration-test binary of `signoff-storage`: the conformance suite (once per
//! adapter, the hosted one included), the differential test against a `BTreeMap` model,
//! crash and IO-error tests, opening errors, migrations, the redb store's heads between
//! checkpoints, and the hosted adapter's limits, names, injected faults and damaged values.

mod conformance;
mod crash;
mod differential;
mod group;
mod hosted;
mod migrate;
mod old_times;
mod open;
#[cfg(feature = "postgres")]
mod postgres;
mod readonly;
mod support;
mod tail;
