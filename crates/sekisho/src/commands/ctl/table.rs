//! Plain aligned tables for listings.

use serde_json::Value;

pub(crate) fn print(rows: &Value, columns: &[(&str, &str)]) {
    let rows = rows.as_array().cloned().unwrap_or_default();
    let cells: Vec<Vec<String>> = rows.iter().map(|r| columns.iter().map(|(_, k)| cell(&r[*k])).collect()).collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, (h, _))| cells.iter().map(|r| r[i].chars().count()).chain([h.len()]).max().unwrap_or(0))
        .collect();
    let line = |vals: Vec<String>| {
        let parts: Vec<String> = vals.iter().zip(&widths).map(|(v, w)| format!("{v:<w$}")).collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(columns.iter().map(|(h, _)| (*h).to_owned()).collect());
    for r in cells {
        line(r);
    }
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
