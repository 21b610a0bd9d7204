//! Plain aligned tables for listings.

use serde_json::Value;

/// Prints the `columns` (header, JSON key) of each row of a JSON array.
pub(crate) fn print(rows: &Value, columns: &[(&str, &str)]) {
    let headers: Vec<&str> = columns.iter().map(|(h, _)| *h).collect();
    print!("{}", render(&headers, &rows_of(rows, |r| columns.iter().map(|(_, k)| cell(&r[*k])).collect())));
}

/// Each row of a JSON array (none if it is not one) turned into cells by `f`.
pub(crate) fn rows_of(rows: &Value, f: impl Fn(&Value) -> Vec<String>) -> Vec<Vec<String>> {
    rows.as_array().map(|a| a.iter().map(f).collect()).unwrap_or_default()
}

/// Headers and rows as aligned text, one line each.
pub(crate) fn render(headers: &[&str], cells: &[Vec<String>]) -> String {
    let widths: Vec<usize> = headers
        .iter()
        .enumerate()
        .map(|(i, h)| cells.iter().map(|r| r.get(i).map_or(0, |c| c.chars().count())).chain([h.chars().count()]).max())
        .map(Option::unwrap_or_default)
        .collect();
    let line = |vals: &mut dyn Iterator<Item = &str>| {
        let parts: Vec<String> = vals.zip(&widths).map(|(v, w)| format!("{v:<w$}")).collect();
        format!("{}\n", parts.join("  ").trim_end())
    };
    let mut out = line(&mut headers.iter().copied());
    for r in cells {
        out.push_str(&line(&mut r.iter().map(String::as_str)));
    }
    out
}

/// A JSON value as a table cell: `-` for null, strings bare, string arrays comma-joined.
pub(crate) fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) if s.is_empty() => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(a) if a.is_empty() => "-".into(),
        Value::Array(a) => a.iter().map(cell).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn tables_align_and_cells_flatten() {
        let text = render(&["A", "LONG"], &[vec!["xyz".into(), "1".into()], vec!["-".into(), "22".into()]]);
        assert_eq!(text, "A    LONG\nxyz  1\n-    22\n");
        assert_eq!(cell(&json!(["eng", "ops"])), "eng,ops");
        assert_eq!(cell(&json!([])), "-");
        assert_eq!(cell(&json!(null)), "-");
        assert_eq!(cell(&json!(true)), "true");
    }
}
