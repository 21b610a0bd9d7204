//! The audit writer: one task per relay owns the tenants' chain heads, groups events into
//! transactions, and signs checkpoints.
//!
//! Durable events ([`Auditor::record_durable`]) are on disk before the call returns: appended to
//! the relay's journal ([`crate::journal`]; committed later in the ordinary batches, and at start
//! after a crash), or, without a journal or when it cannot be written, committed by the writer,
//! which takes whatever else is queued and commits at once (group commit). Buffered events
//! ([`Auditor::record`]) wait at most [`AuditConfig::batch_window`] for company. If another
//! relay sharing the database took a sequence number first, the batch is re-chained on the new
//! head and retried. Checkpoints are signed every [`AuditConfig::checkpoint_every`] for each
//! tenant whose chain moved, and once more when the writer stops.
//!
//! **Nothing is dropped.** A batch the store refuses (other than a sequence conflict) is kept and
//! retried with back-off (100 ms doubling to 5 s) until it is written; meanwhile the writer reports
//! itself unhealthy ([`Auditor::health`]) and durable callers wait, up to
//! [`AuditConfig::durable_wait`], after which they hear [`AuditError::Unavailable`] while their event
//! stays queued. The queue is bounded by [`AuditConfig::max_queued`]: past it, durable callers wait
//! for room (back-pressure) and [`Auditor::saturated`] tells the access gate to refuse new accesses
//! until the writer catches up. Buffered events ([`Auditor::record`]) are always queued: they come
//! from accesses already allowed, whose evidence must not be lost.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use sekisho_store::{AuditRecord, AuditRow, Checkpoint, Store, StoreError, TenantId, now_ms};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::anchors::AnchorLog;
use crate::chain::{GENESIS, event_hash};
use crate::journal::Journal;
use crate::{AuditKey, Event};

#[derive(Debug, Clone, thiserror::Error)]
pub enum AuditError {
    #[error("audit log unavailable: {0}")]
    Unavailable(String),
    /// Pruning refused: the range does not verify, and removing it would launder what is wrong.
    #[error("{0}")]
    Unverified(String),
}

/// A tenant's chain is signed after this many new events even within the checkpoint interval,
/// so a crash leaves at most this many events (or 5 s of them) unsigned.
pub const CHECKPOINT_EVENTS: usize = 1000;

/// What a prune removed, for the chained summary event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pruned {
    pub count: u64,
    pub first_seq: i64,
    pub last_seq: i64,
    pub first_hash: String,
    pub last_hash: String,
}

impl From<StoreError> for AuditError {
    fn from(e: StoreError) -> Self {
        AuditError::Unavailable(e.to_string())
    }
}

#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// How long a buffered event may wait before it is committed.
    pub batch_window: Duration,
    /// How often moved chains get a signed checkpoint.
    pub checkpoint_every: Duration,
    /// The most events in one transaction.
    pub max_batch: usize,
    /// Events queued (not yet committed) past which durable callers wait for room and the access
    /// gate refuses new accesses.
    pub max_queued: usize,
    /// How long a durable caller waits for its event to be committed before it is told the log is
    /// unavailable (the event stays queued and is written when the store is back).
    pub durable_wait: Duration,
    /// The append-only file every signed checkpoint is also written to (outside the database).
    pub anchors: Option<std::path::PathBuf>,
    /// Where durable events are written ahead of the database (none: they wait for a commit).
    pub journal: Option<crate::journal::JournalConfig>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            batch_window: Duration::from_millis(200),
            checkpoint_every: Duration::from_secs(5),
            max_batch: 4096,
            max_queued: 100_000,
            durable_wait: Duration::from_secs(10),
            anchors: None,
            journal: None,
        }
    }
}

type Ack = oneshot::Sender<Result<(), AuditError>>;

enum Msg {
    /// An event; who waits for its commit; its number in the journal, if it was journaled.
    Event(Box<AuditRecord>, Option<Ack>, Option<u64>),
    Flush(Ack),
    Checkpoint(Ack),
    Prune {
        tenant: TenantId,
        before: i64,
        done: oneshot::Sender<Result<Option<Pruned>, AuditError>>,
    },
}

/// A handle to the audit writer; cheap to clone.
#[derive(Clone, Debug)]
pub struct Auditor {
    tx: mpsc::UnboundedSender<Msg>,
    shared: Arc<Shared>,
}

/// What the writer and its handles share: the queue's depth and the store's health.
#[derive(Debug)]
struct Shared {
    queued: AtomicUsize,
    max_queued: usize,
    durable_wait: Duration,
    /// Set while the store refuses to commit; cleared by the next commit.
    failing: AtomicBool,
    /// Woken whenever events are committed (room for waiting durable callers).
    drained: tokio::sync::Notify,
    /// The journal durable events are appended to; `Msg::Event`s with numbers are sent while it
    /// is locked, so the writer sees them in the journal's order.
    journal: Option<parking_lot::Mutex<Journal>>,
    /// A journal write failed (said once; durable events wait for commits meanwhile).
    journal_failing: AtomicBool,
    /// How old (ms) the oldest event of the last commit was when it was committed.
    lag_ms: AtomicU64,
    /// Sign-in events committed: allowed, denied.
    logins: [AtomicU64; 2],
}

impl Shared {
    fn new(config: &AuditConfig) -> Shared {
        Shared {
            queued: AtomicUsize::new(0),
            max_queued: config.max_queued.max(1),
            durable_wait: config.durable_wait,
            failing: AtomicBool::new(false),
            drained: tokio::sync::Notify::new(),
            journal: None,
            journal_failing: AtomicBool::new(false),
            lag_ms: AtomicU64::new(0),
            logins: [AtomicU64::new(0), AtomicU64::new(0)],
        }
    }
}

/// The writer's state, for the relay's health answer and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditHealth {
    /// Events recorded and not yet committed.
    pub queued: usize,
    /// The store refused the last commit; the batch is being retried.
    pub failing: bool,
    /// The queue is full: new accesses are refused until it drains.
    pub saturated: bool,
    /// How old (ms) the oldest event of the last commit was when it was committed.
    pub lag_ms: u64,
}

impl Auditor {
    /// Loads the chain heads and starts the writer. The task ends (after a last flush and
    /// checkpoint) when every handle is dropped.
    pub async fn start(
        store: Store,
        key: AuditKey,
        config: AuditConfig,
    ) -> Result<(Auditor, JoinHandle<()>), AuditError> {
        let heads = load_heads(&store).await?;
        // Events found after a tenant's newest signed checkpoint (the relay stopped before the
        // next one, or rows were added while it was down) are signed by the next checkpoint;
        // first the chain says that they were found unsigned.
        let mut unsigned = Vec::new();
        for (tenant, (seq, _)) in &heads {
            let signed = store.list_checkpoints(&TenantId::from(tenant.as_str())).await?.iter().map(|c| c.seq).max();
            if signed.unwrap_or(0) < *seq {
                unsigned.push((tenant.clone(), signed.unwrap_or(0) + 1, *seq));
            }
        }
        let anchors = config.anchors.clone().map(AnchorLog::at);
        let created = match &anchors {
            Some(log) if !log.exists() => Some(bootstrap_anchors(&store, log).await?),
            _ => None,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let mut shared = Shared::new(&config);
        // Replaced by the handles' once the journal is replayed (below).
        let placeholder = Arc::new(Shared::new(&config));
        let journal_config = config.journal.clone();
        let mut writer = Writer {
            store,
            key,
            config,
            heads,
            dirty: HashMap::new(),
            shared: placeholder,
            anchors,
            pending_anchors: Vec::new(),
            mark: None,
        };
        // Events a crash left in the journal are committed before anything else is recorded.
        let mut replayed = None;
        if let Some(jc) = &journal_config {
            let (journal, report) = writer.replay_journal(jc).await?;
            shared.journal = Some(parking_lot::Mutex::new(journal));
            replayed = report;
        }
        let shared = Arc::new(shared);
        writer.shared = shared.clone();
        let auditor = Auditor { tx, shared };
        if let Some((tenants, text)) = replayed {
            for t in tenants {
                auditor.record(
                    Event::new(&t, crate::EventKind::System, crate::Decision::Allow)
                        .subject(crate::SubjectKind::System, "audit")
                        .reason(text.clone()),
                );
            }
        }
        // A new anchor file is itself evidence: each tenant whose newest checkpoint was copied
        // into it says so in its chain (a file deleted and re-created leaves this trace).
        for (tenant, first, last) in unsigned {
            auditor.record(
                Event::new(&tenant, crate::EventKind::System, crate::Decision::Deny)
                    .subject(crate::SubjectKind::System, "audit")
                    .reason(format!(
                        "audit_unsigned_at_start: events #{first}..#{last} were not covered by a signed checkpoint when \
                         the relay started (it stopped before signing them, or they were added while it was down)"
                    )),
            );
        }
        if let Some((path, tenants)) = created {
            for t in tenants {
                auditor.record(
                    Event::new(&t, crate::EventKind::System, crate::Decision::Allow)
                        .subject(crate::SubjectKind::System, "audit")
                        .reason(format!(
                            "audit anchor file {path} created; this tenant's newest checkpoint was copied into it from the database"
                        )),
                );
            }
        }
        Ok((auditor, tokio::spawn(writer.run(rx))))
    }

    /// Records an event; it is committed within the batch window (or, while the store refuses,
    /// as soon as it accepts again). Never dropped.
    pub fn record(&self, event: Event) {
        if self.enqueue(Msg::Event(Box::new(event.into_record(now_ms())), None, None)).is_err() {
            tracing::error!("audit writer stopped; an event could not be queued");
        }
    }

    /// Queues one event for the writer, counted until it is committed.
    fn enqueue(&self, msg: Msg) -> Result<(), AuditError> {
        self.shared.queued.fetch_add(1, Ordering::Relaxed);
        if self.tx.send(msg).is_err() {
            self.shared.queued.fetch_sub(1, Ordering::Relaxed);
            return Err(AuditError::Unavailable("audit writer stopped".into()));
        }
        Ok(())
    }

    /// Records an event and returns once it is on disk: appended to the journal (committed right
    /// after), or, without one, committed. Waits for room while the queue is full; after
    /// [`AuditConfig::durable_wait`] without room or a commit it returns
    /// [`AuditError::Unavailable`], and a queued event stays queued.
    pub async fn record_durable(&self, event: Event) -> Result<(), AuditError> {
        let shared = &self.shared;
        let give_up = tokio::time::Instant::now() + shared.durable_wait;
        while shared.queued.load(Ordering::Relaxed) >= shared.max_queued {
            let room = shared.drained.notified();
            if tokio::time::timeout_at(give_up, room).await.is_err() {
                return Err(AuditError::Unavailable("the audit queue is full and the store is not keeping up".into()));
            }
        }
        let record = Box::new(event.into_record(now_ms()));
        // On disk once its line is in the journal; the writer commits it at once, unwaited.
        if let Some(journal) = &shared.journal {
            let mut j = journal.lock();
            match j.append(&record) {
                Ok(number) => {
                    self.enqueue(Msg::Event(record, None, Some(number)))?;
                    if shared.journal_failing.swap(false, Ordering::Relaxed) {
                        tracing::warn!("the audit journal can be written again");
                    }
                    return Ok(());
                }
                Err(e) => {
                    if !shared.journal_failing.swap(true, Ordering::Relaxed) {
                        tracing::error!(error = %e, "cannot write the audit journal; durable events wait for database commits");
                    }
                }
            }
        }
        let (ack, done) = oneshot::channel();
        self.enqueue(Msg::Event(record, Some(ack), None))?;
        match tokio::time::timeout_at(give_up, done).await {
            Ok(answer) => answer.map_err(|_| AuditError::Unavailable("audit writer stopped".into()))?,
            Err(_) => Err(AuditError::Unavailable(
                "the audit store did not commit in time; the event stays queued and is written when it can be".into(),
            )),
        }
    }

    /// Closes the streams `relay` left open (it was killed or crashed while they were forwarded):
    /// each gets its `closed` event, reason `open_at_crash`, with the time the relay found it, and
    /// is committed before this returns. Returns how many. Called once at start, before the relay
    /// forwards anything, so none of them can still be open.
    pub async fn close_streams_left_open(&self, store: &Store, relay: &str) -> Result<usize, AuditError> {
        let mut seen = std::collections::HashSet::new();
        loop {
            let open = store.open_streams(None, Some(relay), 1000).await?;
            if open.is_empty() {
                return Ok(seen.len());
            }
            for s in &open {
                if !seen.insert(s.stream_id.clone()) {
                    return Err(AuditError::Unavailable(format!(
                        "stream {} stays open after its closing",
                        s.stream_id
                    )));
                }
                let tenant = TenantId::from(s.tenant_id.as_str());
                let opened = store.audit_page(&tenant, s.seq - 1, 1).await?.into_iter().find(|r| r.seq == s.seq);
                let mut rec = match opened {
                    Some(row) => row.record,
                    // Its `opened` event was pruned: the closing names what is known.
                    None => AuditRecord {
                        tenant_id: s.tenant_id.clone(),
                        kind: crate::EventKind::Access.as_str().into(),
                        decision: crate::Decision::Allow.as_str().into(),
                        ..AuditRecord::default()
                    },
                };
                rec.at = now_ms();
                rec.phase = sekisho_store::PHASE_CLOSED.into();
                rec.stream_id = s.stream_id.clone();
                rec.input = String::new();
                rec.reason = format!(
                    "{}: the relay stopped (killed or crashed) while this stream was open; it was opened at \
                     event #{}, its bytes and end are unknown",
                    crate::OPEN_AT_CRASH,
                    s.seq
                );
                rec.detail = String::new();
                self.enqueue(Msg::Event(Box::new(rec), None, None))?;
            }
            self.flush().await?;
        }
    }

    /// Whether the queue is full: the access gate refuses new accesses until it drains.
    pub fn saturated(&self) -> bool {
        self.shared.queued.load(Ordering::Relaxed) >= self.shared.max_queued
    }

    /// The queue's depth and the store's health.
    pub fn health(&self) -> AuditHealth {
        AuditHealth {
            queued: self.shared.queued.load(Ordering::Relaxed),
            failing: self.shared.failing.load(Ordering::Relaxed),
            saturated: self.saturated(),
            lag_ms: self.shared.lag_ms.load(Ordering::Relaxed),
        }
    }

    /// Sign-in events committed since the start: (allowed, denied).
    pub fn login_counts(&self) -> (u64, u64) {
        (self.shared.logins[0].load(Ordering::Relaxed), self.shared.logins[1].load(Ordering::Relaxed))
    }

    /// Returns once everything recorded before the call is committed.
    pub async fn flush(&self) -> Result<(), AuditError> {
        self.ask(Msg::Flush).await
    }

    /// Flushes and signs a checkpoint for every chain that moved since the last one.
    pub async fn checkpoint(&self) -> Result<(), AuditError> {
        self.ask(Msg::Checkpoint).await
    }

    /// Removes a tenant's events older than `before` (ms), leaving a signed anchor so the rest
    /// of the chain still verifies, and says what was removed. Refuses
    /// ([`AuditError::Unverified`]) when the tenant's chain does not verify: removing a broken
    /// range would launder it.
    pub async fn prune(&self, tenant: &TenantId, before: i64) -> Result<Option<Pruned>, AuditError> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send(Msg::Prune { tenant: tenant.clone(), before, done })
            .map_err(|_| AuditError::Unavailable("audit writer stopped".into()))?;
        rx.await.map_err(|_| AuditError::Unavailable("audit writer stopped".into()))?
    }

    async fn ask(&self, msg: fn(Ack) -> Msg) -> Result<(), AuditError> {
        let (ack, done) = oneshot::channel();
        self.tx.send(msg(ack)).map_err(|_| AuditError::Unavailable("audit writer stopped".into()))?;
        done.await.map_err(|_| AuditError::Unavailable("audit writer stopped".into()))?
    }
}

/// A new anchor file, started with each tenant's newest checkpoint from the database; returns
/// its path and the tenants copied.
async fn bootstrap_anchors(store: &Store, log: &AnchorLog) -> Result<(String, Vec<String>), AuditError> {
    let mut newest = Vec::new();
    for tenant in store.audit_tenants().await? {
        if let Some(c) = store.list_checkpoints(&tenant).await?.into_iter().max_by_key(|c| c.seq) {
            newest.push(c);
        }
    }
    // The file exists from now on, even when there is nothing to copy yet.
    log.append(&newest)
        .and_then(|()| if log.exists() { Ok(()) } else { std::fs::File::create(log.path()).map(|_| ()) })
        .map_err(|e| AuditError::Unavailable(format!("cannot write the anchor file {}: {e}", log.path().display())))?;
    let tenants = newest.iter().map(|c| c.tenant_id.clone()).collect();
    Ok((log.path().display().to_string(), tenants))
}

async fn load_heads(store: &Store) -> Result<HashMap<String, (i64, String)>, StoreError> {
    let mut heads: HashMap<String, (i64, String)> =
        store.audit_heads().await?.into_iter().map(|(t, seq, hash)| (t, (seq, hash))).collect();
    // A tenant whose events were all pruned continues from its newest anchor.
    for tenant in store.audit_tenants().await? {
        if heads.contains_key(tenant.as_str()) {
            continue;
        }
        if let Some(anchor) = store.list_checkpoints(&tenant).await?.into_iter().rev().find(|c| c.kind == "prune") {
            heads.insert(tenant.into_string(), (anchor.seq, anchor.hash));
        }
    }
    Ok(heads)
}

struct Writer {
    store: Store,
    key: AuditKey,
    config: AuditConfig,
    /// Per tenant: the newest committed `(seq, hash)`.
    heads: HashMap<String, (i64, String)>,
    /// Tenants whose chain moved since their last checkpoint, with how many events.
    dirty: HashMap<String, usize>,
    shared: Arc<Shared>,
    anchors: Option<AnchorLog>,
    /// Signed checkpoints not yet in the anchor file (written with the next ones).
    pending_anchors: Vec<Checkpoint>,
    /// The highest journal number in the batch being gathered (committed with it).
    mark: Option<u64>,
}

mod replay;

impl Writer {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        let mut ticker = tokio::time::interval(self.config.checkpoint_every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut batch: Vec<AuditRecord> = Vec::new();
        let mut acks: Vec<Ack> = Vec::new();
        loop {
            let first = tokio::select! {
                m = rx.recv() => m,
                _ = ticker.tick() => {
                    self.checkpoint_dirty().await;
                    continue;
                }
            };
            let Some(first) = first else { break };
            let mut urgent = self.take(first, &mut batch, &mut acks).await;
            // Collect company: everything already queued, and for buffered-only batches
            // whatever arrives within the window.
            let deadline = tokio::time::Instant::now() + self.config.batch_window;
            while batch.len() < self.config.max_batch {
                let next = if urgent {
                    match rx.try_recv() {
                        Ok(m) => Some(m),
                        Err(_) => break,
                    }
                } else {
                    match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(m) => m,
                        Err(_) => break,
                    }
                };
                let Some(m) = next else { break };
                urgent |= self.take(m, &mut batch, &mut acks).await;
            }
            // Committed, or retried until it is: a batch is never dropped.
            self.commit_until_done(&mut batch).await;
            for ack in acks.drain(..) {
                let _ = ack.send(Ok(()));
            }
            if self.dirty.values().any(|n| *n >= CHECKPOINT_EVENTS) {
                self.checkpoint_dirty().await;
            }
        }
        self.commit_until_done(&mut batch).await;
        self.checkpoint_dirty().await;
    }

    /// Commits `batch`, retrying with back-off while the store refuses, and reports the store's
    /// health meanwhile.
    async fn commit_until_done(&mut self, batch: &mut Vec<AuditRecord>) {
        let mut delay = Duration::from_millis(100);
        let oldest = batch.iter().map(|r| r.at).min();
        let logins =
            |decision: &str| batch.iter().filter(|r| r.kind == "login" && r.decision == decision).count() as u64;
        let (allowed, denied) = (logins("allow"), logins("deny"));
        loop {
            let n = batch.len();
            match self.commit(batch).await {
                Ok(()) => {
                    if let Some(at) = oldest {
                        self.shared.lag_ms.store(u64::try_from(now_ms() - at).unwrap_or(0), Ordering::Relaxed);
                    }
                    self.shared.logins[0].fetch_add(allowed, Ordering::Relaxed);
                    self.shared.logins[1].fetch_add(denied, Ordering::Relaxed);
                    if self.shared.failing.swap(false, Ordering::Relaxed) {
                        tracing::warn!("the audit store accepts events again; the retried batch is written");
                    }
                    self.shared.queued.fetch_sub(n.min(self.shared.queued.load(Ordering::Relaxed)), Ordering::Relaxed);
                    self.shared.drained.notify_waiters();
                    return;
                }
                Err(e) => {
                    if !self.shared.failing.swap(true, Ordering::Relaxed) {
                        tracing::error!(error = %e, waiting = n, "cannot write audit events; retrying until the store accepts them");
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// Adds a message to the batch; true if someone waits for it. Checkpoint and prune requests
    /// are served at once (after committing what is queued, so they see it).
    async fn take(&mut self, m: Msg, batch: &mut Vec<AuditRecord>, acks: &mut Vec<Ack>) -> bool {
        match m {
            Msg::Event(record, ack, journaled) => {
                batch.push(*record);
                // A journaled event's caller has gone on, but it is committed as promptly as one
                // waited for (group commit with whatever is queued), so the log shows refusals and
                // admin actions at once.
                let urgent = journaled.is_some() || ack.is_some();
                if journaled.is_some() {
                    self.mark = journaled;
                }
                acks.extend(ack);
                urgent
            }
            Msg::Flush(ack) => {
                acks.push(ack);
                true
            }
            Msg::Checkpoint(ack) => {
                self.commit_until_done(batch).await;
                self.checkpoint_dirty().await;
                let _ = ack.send(Ok(()));
                false
            }
            Msg::Prune { tenant, before, done } => {
                self.commit_until_done(batch).await;
                let _ = done.send(self.prune(&tenant, before).await);
                false
            }
        }
    }

    /// Chains and commits the batch, retrying on a head moved by another writer.
    async fn commit(&mut self, batch: &mut Vec<AuditRecord>) -> Result<(), AuditError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut attempt = 0;
        loop {
            let mut heads = self.heads.clone();
            let rows: Vec<AuditRow> = batch
                .iter()
                .map(|record| {
                    let head = heads.entry(record.tenant_id.clone()).or_insert_with(|| (0, GENESIS.to_owned()));
                    let seq = head.0 + 1;
                    let hash = event_hash(&head.1, seq, record);
                    let row = AuditRow { seq, record: record.clone(), prev_hash: head.1.clone(), hash: hash.clone() };
                    *head = (seq, hash);
                    row
                })
                .collect();
            let relay = self.config.journal.as_ref().map(|j| j.relay.as_str());
            let mark = relay.zip(self.mark.map(|m| m as i64));
            match self.store.insert_audit_journaled(&rows, mark).await {
                Ok(()) => {
                    if let (Some(upto), Some(journal)) = (self.mark.take(), &self.shared.journal) {
                        journal.lock().committed(upto);
                    }
                    for r in &rows {
                        *self.dirty.entry(r.record.tenant_id.clone()).or_default() += 1;
                    }
                    self.heads = heads;
                    batch.clear();
                    return Ok(());
                }
                Err(StoreError::Conflict { .. }) if attempt < 5 => {
                    attempt += 1;
                    tracing::info!(attempt, "audit chain moved under us; re-chaining on the new head");
                    self.heads = load_heads(&self.store).await?;
                }
                // The batch stays as it is; the caller retries it.
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn checkpoint_dirty(&mut self) {
        let tenants: Vec<(String, usize)> = self.dirty.drain().collect();
        for (tenant, moved) in tenants {
            let Some((seq, hash)) = self.heads.get(&tenant).cloned() else { continue };
            let mut c = Checkpoint {
                tenant_id: tenant.clone(),
                seq,
                hash,
                at: now_ms(),
                kind: "periodic".into(),
                key_id: String::new(),
                signature: String::new(),
            };
            self.key.sign(&mut c);
            match self.store.insert_checkpoint(&c).await {
                Ok(()) => self.pending_anchors.push(c),
                Err(StoreError::Conflict { .. }) => {}
                Err(e) => {
                    tracing::error!(error = %e, %tenant, "cannot write audit checkpoint");
                    self.dirty.insert(tenant, moved);
                }
            }
        }
        self.write_anchors();
    }

    /// Appends the pending checkpoints to the anchor file; kept for the next try on failure.
    fn write_anchors(&mut self) {
        let Some(log) = &self.anchors else {
            self.pending_anchors.clear();
            return;
        };
        if let Err(e) = log.append(&self.pending_anchors) {
            tracing::error!(
                error = %e,
                file = %log.path().display(),
                pending = self.pending_anchors.len(),
                "cannot append to the audit anchor file; retrying with the next checkpoint"
            );
            return;
        }
        self.pending_anchors.clear();
    }

    async fn prune(&mut self, tenant: &TenantId, before: i64) -> Result<Option<Pruned>, AuditError> {
        let Some(seq) = self.store.audit_seq_before(tenant, before).await? else {
            return Ok(None);
        };
        let Some(last) = self.store.audit_page(tenant, seq - 1, 1).await?.into_iter().next() else {
            return Ok(None);
        };
        // What is removed must verify first (links, hashes, signed checkpoints, and the anchor
        // file): pruning a broken range would leave a clean-looking chain behind.
        self.checkpoint_dirty().await;
        let trusted = [self.key.verifying_key()];
        let anchors = match &self.anchors {
            Some(log) => Some(crate::anchors::Anchors::read(log.path()).map_err(AuditError::Unverified)?),
            None => None,
        };
        let report = crate::verify::verify(&self.store, &trusted, Some(tenant), anchors.as_ref()).await?;
        if let Some(p) = report.tenants.iter().find_map(|t| t.problem.as_ref()) {
            return Err(AuditError::Unverified(format!(
                "refusing to prune the audit log of `{tenant}`: it does not verify ({})",
                p.message
            )));
        }
        let Some(first) = self.store.audit_page(tenant, 0, 1).await?.into_iter().next() else {
            return Ok(None);
        };
        let mut anchor = Checkpoint {
            tenant_id: tenant.to_owned().to_string(),
            seq,
            hash: last.hash.clone(),
            at: now_ms(),
            kind: "prune".into(),
            key_id: String::new(),
            signature: String::new(),
        };
        self.key.sign(&mut anchor);
        let count = self.store.prune_audit(&anchor).await?;
        self.pending_anchors.push(anchor);
        self.write_anchors();
        Ok(Some(Pruned {
            count,
            first_seq: first.seq,
            last_seq: last.seq,
            first_hash: first.hash,
            last_hash: last.hash,
        }))
    }
}
