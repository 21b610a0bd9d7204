//! Every kept fuzz input, replayed: `fuzz/corpus/<target>/*` through the target's body. Seconds
//! in the test command; the long coverage-guided runs are `scripts/fuzz.sh`.

use std::path::Path;

#[test]
fn every_kept_input_passes_its_parser() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    for (name, body) in sekisho_fuzz::TARGETS {
        let dir = root.join(name);
        let entries =
            std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("no corpus for `{name}` at {}: {e}", dir.display()));
        let mut count = 0;
        for entry in entries {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            // A panic here names the input that caused it.
            let result = std::panic::catch_unwind(|| body(&data));
            assert!(result.is_ok(), "`{name}` panicked on {}", path.display());
            count += 1;
        }
        assert!(count > 0, "the corpus of `{name}` is empty");
    }
}
