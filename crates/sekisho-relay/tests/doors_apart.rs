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

/// Statements in `source` (test modules aside) that turn a store result into a default: the
/// fail-open shapes ARCHITECTURE ("Fail closed") forbids on a door, the gate and the relay, e.g.
/// `store.groups_of(id).await.ok()`, `….unwrap_or_default()`, `let _ = state.store.…`.
fn fail_open(source: &str) -> Vec<String> {
    let code = source.split("#[cfg(test)]").next().unwrap_or("");
    // One line per statement, whitespace squeezed, so chains split over lines read as one.
    let flat: String = code.split_whitespace().collect::<Vec<_>>().join(" ").replace(" .", ".");
    let mut found = Vec::new();
    for stmt in flat.split([';', '{', '}']) {
        let stmt = stmt.trim();
        let Some(at) = stmt.find("store.") else { continue };
        let after = &stmt[at..];
        let swallowed =
            [".ok()", ".unwrap_or_default()", ".unwrap_or(", ".unwrap_or_else("].iter().any(|p| after.contains(p));
        let ignored = stmt.starts_with("let _ =") && after.contains(".await");
        if (swallowed || ignored) && !stmt.starts_with("//") {
            found.push(stmt.to_owned());
        }
    }
    found
}

/// The crates on the decision path: the gate, the layer, every door, the relay.
#[test]
fn no_door_reads_a_store_error_as_a_default() {
    let ws = workspace();
    let mut wrong = Vec::new();
    for (name, (deps, dir)) in &ws {
        if !(deps.contains(LAYER) || name == LAYER || name == GATE) {
            continue;
        }
        let mut files = vec![dir.clone()];
        while let Some(f) = files.pop() {
            if f.is_dir() {
                files.extend(std::fs::read_dir(&f).unwrap().map(|e| e.unwrap().path()));
            } else if f.extension().is_some_and(|e| e == "rs") && !f.ends_with("tests.rs") {
                let text = std::fs::read_to_string(&f).unwrap();
                wrong.extend(fail_open(&text).into_iter().map(|s| format!("{}: {s}", f.display())));
            }
        }
    }
    assert_eq!(
        wrong,
        Vec::<String>::new(),
        "a store error must deny by name (`store_unavailable`), not become a default"
    );
}

#[test]
fn the_fail_open_check_catches_each_shape() {
    let code = "fn a() {\n let g = state\n .store\n .groups_of(&id)\n  .await\n  .ok()\n  .unwrap_or_default();\n \
                let _ = state.store.login_failed(id, now).await;\n \
                let k = store.get_api_key(&id).await.unwrap_or(None);\n \
                let fine = state.store.get_user(&id).await?;\n \
                if let Err(e) = state.store.api_key_used(&id).await { log(e) }\n}\n\
                #[cfg(test)] mod tests { fn t() { let _ = store.x().await.ok(); } }";
    let found = fail_open(code);
    assert_eq!(found.len(), 3, "{found:#?}");
}
