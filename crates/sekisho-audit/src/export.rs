//! Audit export formats: JSON lines and CSV (RFC 4180 quoting), one event per line, chain
//! fields included so an export can be re-verified. Each event also carries `time`, its `at`
//! as ISO 8601 with the offset of the tenant's zone (`2026-12-07T09:00:00+09:00`), for people and
//! spreadsheets; `at` (ms since the epoch, what the hash covers) stays.

use jiff::tz::TimeZone;
use sekisho_store::AuditRow;
use sekisho_store::zone;

/// The CSV header, in column order.
pub const CSV_COLUMNS: [&str; 21] = [
    "tenant",
    "seq",
    "at",
    "time",
    "kind",
    "subject_kind",
    "subject",
    "path",
    "target",
    "decision",
    "reason",
    "policy_id",
    "auth_method",
    "source_ip",
    "country",
    "bytes_in",
    "bytes_out",
    "duration_ms",
    "detail",
    "prev_hash",
    "hash",
];

fn field(out: &mut String, v: &str) {
    if v.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&v.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(v);
    }
}

/// Rows as CSV with a header line, times also in `zone`.
pub fn to_csv(rows: &[AuditRow], zone: &TimeZone) -> String {
    let mut out = CSV_COLUMNS.join(",");
    out.push('\n');
    let num = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
    for r in rows {
        let e = &r.record;
        let cells = [
            e.tenant_id.clone(),
            r.seq.to_string(),
            e.at.to_string(),
            zone::iso(zone, e.at),
            e.kind.clone(),
            e.subject_kind.clone(),
            e.subject.clone(),
            e.path.clone(),
            e.target.clone(),
            e.decision.clone(),
            e.reason.clone(),
            e.policy_id.clone(),
            e.auth_method.clone(),
            e.source_ip.clone(),
            e.country.clone(),
            num(e.bytes_in),
            num(e.bytes_out),
            num(e.duration_ms),
            e.detail.clone(),
            r.prev_hash.clone(),
            r.hash.clone(),
        ];
        for (i, c) in cells.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            field(&mut out, c);
        }
        out.push('\n');
    }
    out
}

/// Rows as JSON lines, each with `time` in `zone` beside `at`.
pub fn to_json_lines(rows: &[AuditRow], zone: &TimeZone) -> String {
    let mut out = String::new();
    for r in rows {
        let Ok(mut v) = serde_json::to_value(r) else { continue };
        if let Some(o) = v.as_object_mut() {
            o.insert("time".into(), zone::iso(zone, r.record.at).into());
        }
        out.push_str(&v.to_string());
        out.push('\n');
    }
    out
}
