//! The gate stays the one place: no other crate of the workspace builds an access event by hand
//! (`EventKind::Access`), beside the clippy lint that refuses `Event::access`, `Engine::decide`
//! and `cedar_policy::Request::new` outside their one place (`clippy.toml`).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a failing test should panic with the cause")]

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_crate_but_the_gate_builds_access_events() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut files = Vec::new();
    for krate in std::fs::read_dir(crates).unwrap() {
        let krate = krate.unwrap().path();
        let name = krate.file_name().unwrap().to_string_lossy().into_owned();
        // The audit crate defines the kind; the gate uses it.
        if name == "sekisho-gate" || name == "sekisho-audit" || !krate.join("src").is_dir() {
            continue;
        }
        rust_files(&krate.join("src"), &mut files);
    }
    assert!(files.len() > 50, "the scan found too few files to be looking at the workspace: {}", files.len());
    let offenders: Vec<String> = files
        .iter()
        .filter(|f| std::fs::read_to_string(f).unwrap().contains("EventKind::Access"))
        .map(|f| f.display().to_string())
        .collect();
    assert!(offenders.is_empty(), "access events built outside the gate: {offenders:?}");
}
