//! `signoff-core`: the document-approval workflow engine (issue #3).
//!
//! Workflows are data ([`workflow`]), validated once into an immutable [`Workflow`] pinned
//! by hash. Documents are event-sourced: [`DocState::decide`] turns a [`Command`] into
//! [`Record`]s or a typed [`Refusal`], and [`DocState::apply`] folds records into state. The
//! records are the audit trail, hash-chained per document ([`audit`]). [`Engine`] holds
//! documents in memory and answers queries; [`store`] has the async storage seams;
//! [`scenario`] runs scenario files, for tests and for `signoff workflow test`.
//!
//! Core does no IO: no files, no network, no system clock (time comes from a [`Clock`]).

pub mod anchor;
pub mod audit;
pub mod engine;
pub mod event;
pub mod evidence;
pub mod notify;
pub mod offer;
pub mod refusal;
pub mod scenario;
pub mod state;
pub mod store;
pub mod time;
pub mod workflow;

pub use engine::Engine;
pub use event::{Action, Command, Event, Record};
pub use refusal::{Reason, Refusal};
pub use state::DocState;
pub use time::{Clock, FixedClock, ManualClock, Timestamp};
pub use workflow::Workflow;
