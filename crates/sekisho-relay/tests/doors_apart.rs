//! Front doors apart (ARCHITECTURE, "Front doors"): every crate that builds on the front-door
//! layer (`sekisho-door`) is a door, except the relay that composes them and the binary; a door
//! depends on the layer and the gate, never on another door or on the relay, and is started
//! through the `FrontDoor` trait. Read from `cargo metadata`, so a new door is checked the day
//! its crate appears.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a test")]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// The crates allowed to know every door.
const COMPOSERS: [&str; 2] = ["sekisho-relay", "sekisho"];
const LAYER: &str = "sekisho-door";
const GATE: &str = "sekisho-gate";

/// Each workspace crate's normal (non-dev) dependencies on other workspace crates, and its
/// source directory.
fn workspace() -> BTreeMap<String, (BTreeSet<String>, PathBuf)> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(out.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON");
    let packages = meta["packages"].as_array().expect("packages");
    let names: BTreeSet<String> = packages.iter().map(|p| p["name"].as_str().unwrap().to_owned()).collect();
    packages
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["kind"].is_null()) // normal dependencies; dev and build ones aside
                .map(|d| d["name"].as_str().unwrap().to_owned())
                .filter(|d| names.contains(d))
                .collect();
            let dir = PathBuf::from(p["manifest_path"].as_str().unwrap()).parent().unwrap().join("src");
            (p["name"].as_str().unwrap().to_owned(), (deps, dir))
        })
        .collect()
}

/// What is wrong with the crate graph, one line each.
fn violations(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let doors: BTreeSet<&String> = graph
        .iter()
        .filter(|(name, deps)| deps.contains(LAYER) && !COMPOSERS.contains(&name.as_str()))
        .map(|(name, _)| name)
        .collect();
    let mut wrong = Vec::new();
    for door in &doors {
        let deps = &graph[*door];
        for dep in deps {
            if doors.contains(dep) || COMPOSERS.contains(&dep.as_str()) {
                wrong.push(format!("front door `{door}` depends on `{dep}`"));
            }
        }
        if !deps.contains(GATE) {
            wrong.push(format!("front door `{door}` does not use the access gate `{GATE}`"));
        }
    }
    for dep in &graph[LAYER] {
        if doors.contains(dep) || COMPOSERS.contains(&dep.as_str()) {
            wrong.push(format!("the front-door layer depends on `{dep}`"));
        }
    }
    wrong
}

#[test]
fn no_front_door_depends_on_another() {
    let ws = workspace();
    let graph: BTreeMap<String, BTreeSet<String>> = ws.iter().map(|(n, (d, _))| (n.clone(), d.clone())).collect();
    let doors: Vec<&String> =
        graph.iter().filter(|(n, d)| d.contains(LAYER) && !COMPOSERS.contains(&n.as_str())).map(|(n, _)| n).collect();
    for expected in ["sekisho-api", "sekisho-web", "sekisho-bastion", "sekisho-gateway"] {
        assert!(doors.iter().any(|d| *d == expected), "`{expected}` is a front door crate on the layer: {doors:?}");
    }
    assert_eq!(violations(&graph), Vec::<String>::new());
    // Every door is started through the trait.
    for door in doors {
        let lib = std::fs::read_to_string(ws[door].1.join("lib.rs")).unwrap();
        assert!(lib.contains("impl FrontDoor for"), "`{door}` implements `sekisho_door::FrontDoor` in its lib.rs");
    }
}

#[test]
fn the_check_catches_a_door_that_imports_another() {
    let set = |xs: &[&str]| xs.iter().map(|s| (*s).to_owned()).collect::<BTreeSet<_>>();
    let mut graph = BTreeMap::new();
    graph.insert(LAYER.to_owned(), set(&[GATE]));
    graph.insert(GATE.to_owned(), set(&[]));
    graph.insert("sekisho-web".to_owned(), set(&[LAYER, GATE, "sekisho-api"]));
    graph.insert("sekisho-api".to_owned(), set(&[LAYER, GATE]));
    graph.insert("sekisho-mail".to_owned(), set(&[LAYER]));
    graph.insert("sekisho-relay".to_owned(), set(&[LAYER, "sekisho-api", "sekisho-web"]));
    assert_eq!(
        violations(&graph),
        vec![
            "front door `sekisho-mail` does not use the access gate `sekisho-gate`".to_owned(),
            "front door `sekisho-web` depends on `sekisho-api`".to_owned(),
        ]
    );
}
