//! Sekisho's evidence plane: one typed stream of access decisions and admin actions per tenant,
//! made tamper-evident.
//!
//! Every event carries the hash of the one before it in its tenant's chain ([`chain`]); the
//! relay signs checkpoints of each chain with its Ed25519 audit key; [`verify`] recomputes both
//! and names the first event that was altered, inserted, reordered or deleted. The [`writer`]
//! owns the chain heads and gives two promises: [`Auditor::record_durable`] returns only after
//! the event is committed (denials, admin actions), [`Auditor::record`] commits within a short
//! bounded window (stream ends). Storage is `sekisho-store`; this crate never touches payload.

pub mod anchors;
pub mod archive;
pub mod chain;
mod event;
pub mod export;
pub mod journal;
mod keys;
pub mod recording;
pub mod verify;
pub mod writer;

pub use anchors::{AnchorLog, Anchors};
pub use event::{Decision, Event, EventKind, Phase, SubjectKind};
pub use journal::JournalConfig;
pub use keys::{AuditKey, KeyError, load_public_key};
pub use verify::{
    OPEN_AT_CRASH, OpenStreamRef, Problem, ProblemKind, RecordingRef, Report, TenantReport, check_recordings, verify,
    verify_with_progress,
};
pub use writer::{AuditConfig, AuditError, AuditHealth, Auditor, CHECKPOINT_EVENTS, Pruned};
