//! Audit ingest benchmark: events per second sustained into SQLite with the hash chain, the way
//! the relay writes them (buffered stream ends from many tasks, durable denials, and streams whose
//! opening is committed, or journaled, before they go on).
//!
//! `cargo bench -p sekisho-audit --bench ingest` (target: ≥ 20,000 events/s).

use std::time::{Duration, Instant};

use sekisho_audit::{AuditConfig, AuditKey, Auditor, Decision, Event, EventKind, Phase, SubjectKind, verify};
use sekisho_store::Store;

fn event(i: u64) -> Event {
    Event::new(if i.is_multiple_of(10) { "acme" } else { "default" }, EventKind::Access, Decision::Allow)
        .subject(SubjectKind::User, format!("user{}", i % 50))
        .path("tunnel")
        .target(format!("service-{}", i % 100))
        .reason("all required conditions hold")
        .policy(format!("service-{}/required", i % 100))
        .auth("agent_key")
        .source("203.0.113.7".parse().unwrap_or(std::net::IpAddr::from([0, 0, 0, 0])), "JP")
        .traffic(i * 7, i * 13, 42)
}

const STREAM_TASKS: u64 = 64;
const STREAMS_PER_TASK: u64 = 400;

/// 64 tasks open streams one after another: each an `opened` event recorded durably (what a new
/// connection waits for) and a `closed` one buffered. Streams per second and the mean wait.
async fn streams(auditor: &Auditor) -> Result<(f64, f64), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let openers: Vec<_> = (0..STREAM_TASKS)
        .map(|t| {
            let a = auditor.clone();
            tokio::spawn(async move {
                let mut waited = Duration::ZERO;
                for i in 0..STREAMS_PER_TASK {
                    let id = format!("bench:1:{}", t * STREAMS_PER_TASK + i);
                    let at = Instant::now();
                    a.record_durable(event(i).stream(id.clone(), Phase::Opened)).await?;
                    waited += at.elapsed();
                    a.record(event(i).stream(id, Phase::Closed));
                }
                Ok::<_, sekisho_audit::AuditError>(waited)
            })
        })
        .collect();
    let mut waited = Duration::ZERO;
    for o in openers {
        waited += o.await??;
    }
    auditor.flush().await?;
    let n = STREAM_TASKS * STREAMS_PER_TASK;
    Ok((n as f64 / started.elapsed().as_secs_f64(), waited.as_secs_f64() * 1000.0 / n as f64))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(&dir.path().join("bench.db")).await?;
    let key = AuditKey::generate();
    let (auditor, task) = Auditor::start(store.clone(), key.clone(), AuditConfig::default()).await?;

    let n: u64 = std::env::var("EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(200_000);
    let started = Instant::now();
    let producers: Vec<_> = (0..8u64)
        .map(|p| {
            let a = auditor.clone();
            tokio::spawn(async move {
                for i in (p..n).step_by(8) {
                    a.record(event(i));
                    if i.is_multiple_of(1000) {
                        tokio::task::yield_now().await;
                    }
                }
            })
        })
        .collect();
    for p in producers {
        p.await?;
    }
    auditor.flush().await?;
    let buffered = started.elapsed();

    let durable_n = 2_000u64;
    let started = Instant::now();
    let waiters: Vec<_> = (0..durable_n)
        .map(|i| {
            let a = auditor.clone();
            tokio::spawn(async move { a.record_durable(event(i).reason("denied")).await })
        })
        .collect();
    for w in waiters {
        w.await??;
    }
    let durable = started.elapsed();

    // Streams as the doors open them, with the opening committed before the caller goes on.
    let committed = streams(&auditor).await?;
    auditor.checkpoint().await?;
    drop(auditor);
    task.await?;
    // And as the relay writes them: the opening appended to its journal, committed in batches.
    let journal = sekisho_audit::JournalConfig { dir: dir.path().join("journal"), relay: "bench".into() };
    let config = AuditConfig { journal: Some(journal), ..AuditConfig::default() };
    let (auditor, task) = Auditor::start(store.clone(), key.clone(), config).await?;
    let journaled = streams(&auditor).await?;
    auditor.checkpoint().await?;
    drop(auditor);
    task.await?;

    let started = Instant::now();
    let report = verify(&store, &[key.verifying_key()], None, None).await?;
    let verified = started.elapsed();
    let rate = |k: u64, d: Duration| k as f64 / d.as_secs_f64();
    println!("buffered ingest: {n} events in {:.2} s = {:.0} events/s", buffered.as_secs_f64(), rate(n, buffered));
    println!("durable ingest (2,000 concurrent waiters): {:.0} events/s", rate(durable_n, durable));
    for (how, (rate, wait)) in [("committed", committed), ("journaled", journaled)] {
        println!(
            "streams ({STREAM_TASKS} concurrent, opened durable ({how}) + closed buffered): {rate:.0} streams/s, mean wait for the opening {wait:.2} ms"
        );
    }
    println!(
        "verify: {} events in {:.2} s = {:.0} events/s; ok = {}",
        n + durable_n + 4 * STREAM_TASKS * STREAMS_PER_TASK,
        verified.as_secs_f64(),
        rate(n + durable_n + 4 * STREAM_TASKS * STREAMS_PER_TASK, verified),
        report.ok
    );
    Ok(())
}
