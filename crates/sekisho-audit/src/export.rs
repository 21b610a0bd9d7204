//! Audit export formats: JSON lines and CSV (RFC 4180 quoting), one event per line, chain
//! fields included so an export can be re-verified.

use sekisho_store::AuditRow;

/// The CSV header, in column order.
pub const CSV_COLUMNS: [&str; 20] = [
    "tenant",
    "seq",
    "at",
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

/// Rows as CSV with a header line.
pub fn to_csv(rows: &[AuditRow]) -> String {
    let mut out = CSV_COLUMNS.join(",");
    out.push('\n');
    let num = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
    for r in rows {
        let e = &r.record;
        let cells = [
            e.tenant_id.clone(),
            r.seq.to_string(),
            e.at.to_string(),
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

/// Rows as JSON lines.
pub fn to_json_lines(rows: &[AuditRow]) -> String {
    rows.iter().filter_map(|r| serde_json::to_string(r).ok()).map(|l| l + "\n").collect()
}
