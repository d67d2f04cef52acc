//! No source file holds more than [`LIMIT`] lines besides its tests: every `.rs` file under
//! `src/` and `crates/*/src/` is measured up to its first `#[cfg(test)]` line (at the start of a
//! line), the same rule as
//! `awk '/^#\[cfg\(test\)\]/{exit} {c++} END{print c+0}' FILE`. A file named `tests.rs` or
//! `*_tests.rs` is a test module (declared under `#[cfg(test)]` by its parent) and not measured.

use std::path::{Path, PathBuf};

/// The most lines a source file may hold before its tests.
const LIMIT: usize = 600;

/// Files known to be over [`LIMIT`], waiting to be split (paths from the repository's root):
/// none today. Remove a file from here when it is split; the test fails if a listed file is no
/// longer over.
const ALLOWED: &[&str] = &[];

/// The lines of `source` before its first line starting with `#[cfg(test)]` (all of them when
/// there is none).
fn lines_before_tests(source: &str) -> usize {
    source
        .lines()
        .take_while(|line| !line.starts_with("#[cfg(test)]"))
        .count()
}

/// Whether `path` is a test module of its own (all tests, not measured).
fn is_test_module(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n == "tests.rs" || n.ends_with("_tests.rs"))
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The source roots: `src/` and the `src/` of every crate under `crates/`.
fn source_roots(root: &Path) -> Vec<PathBuf> {
    let mut roots = vec![root.join("src")];
    for entry in std::fs::read_dir(root.join("crates")).unwrap() {
        let src = entry.unwrap().path().join("src");
        if src.is_dir() {
            roots.push(src);
        }
    }
    roots
}

#[test]
fn the_counting_rule_stops_at_the_first_cfg_test_line_at_the_start_of_a_line() {
    assert_eq!(lines_before_tests(""), 0);
    assert_eq!(lines_before_tests("a\nb\nc\n"), 3);
    assert_eq!(lines_before_tests("a\nb\nc"), 3);
    assert_eq!(lines_before_tests("a\n#[cfg(test)]\nmod tests;\n"), 1);
    assert_eq!(lines_before_tests("#[cfg(test)]\nmod tests;\n"), 0);
    // Only the first one counts, and only at the start of a line: an indented attribute (a test
    // helper inside an impl) is code, not the file's tests.
    assert_eq!(
        lines_before_tests(
            "a\n    #[cfg(test)]\n    fn f() {}\nb\n#[cfg(test)]\nc\n#[cfg(test)]\n"
        ),
        4
    );
    assert!(is_test_module(Path::new("src/state/tests.rs")));
    assert!(is_test_module(Path::new("src/state/signal_tests.rs")));
    assert!(!is_test_module(Path::new("src/state/mod.rs")));
    assert!(!is_test_module(Path::new("src/tests/mod.rs")));
}

#[test]
fn no_source_file_holds_more_than_600_lines_before_its_tests() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in source_roots(&root) {
        rust_files(&dir, &mut files);
    }
    assert!(files.len() > 50, "walked too few files: {}", files.len());
    let mut over = Vec::new();
    let mut allowed_but_not_over = ALLOWED.to_vec();
    for path in files.iter().filter(|p| !is_test_module(p)) {
        let name = path
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let source = std::fs::read_to_string(path).unwrap();
        let n = lines_before_tests(&source);
        if n > LIMIT {
            if ALLOWED.contains(&name.as_str()) {
                allowed_but_not_over.retain(|a| *a != name);
            } else {
                over.push(format!("{name}: {n} lines before its #[cfg(test)]"));
            }
        }
    }
    assert!(
        over.is_empty(),
        "over {LIMIT} lines besides tests (split the file by concern):\n{}",
        over.join("\n")
    );
    assert!(
        allowed_but_not_over.is_empty(),
        "allowed to be over {LIMIT} lines but no longer are (remove them from ALLOWED): {allowed_but_not_over:?}"
    );
}
