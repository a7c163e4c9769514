//! The core crate's layers point one way, and no module outgrows a read.
//!
//! Each top-level module of `host/src` has a rank; a module may name
//! (`crate::…`) only modules of a lower rank, so the module graph has no
//! cycle by construction and a reader can learn the crate bottom-up (see
//! ARCHITECTURE.md). The check reads the sources as text: no parsing
//! library, no build of the crate needed (it runs with `rustc --test` too).
//! Unit-test modules (`#[cfg(test)]`) may reach anywhere and are skipped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Bottom to top. Modules on one line share a rank and may not name each
/// other.
const LAYERS: &[&[&str]] = &[
    &["escape", "failure", "file", "redact"],
    &["config"],
    &["api"],
    &["host"],
    &["plugin"],
    &["pipeline"],
    &["call"],
    &["runtime"],
    &["layer", "conformance"],
];

/// Longest a module file may be, not counting its unit tests.
const MAX_LINES: usize = 500;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rank(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

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

/// The file's lines before its `#[cfg(test)]` module, comments blanked.
fn code_lines(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let all: Vec<&str> = text.lines().collect();
    for (i, line) in all.iter().enumerate() {
        let t = line.trim_start();
        if t.starts_with("#[cfg(test)]")
            && all
                .get(i + 1)
                .is_some_and(|next| next.trim_start().starts_with("mod tests"))
        {
            break;
        }
        lines.push(if t.starts_with("//") {
            String::new()
        } else {
            line.to_string()
        });
    }
    lines
}

/// The top-level modules `line` names through `crate::`.
fn named_modules(line: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a, b::c}`: every first segment in the group.
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let first: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                names.push(first);
            }
        } else {
            names.push(
                rest.chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect(),
            );
        }
    }
    names
}

#[test]
fn modules_name_only_lower_layers() {
    let root = src();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    files.sort();
    let mut wrong = Vec::new();
    let mut edges: BTreeMap<(String, String), usize> = BTreeMap::new();
    for file in &files {
        let rel = file.strip_prefix(&root).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = first.trim_end_matches(".rs").to_string();
        if module == "lib" {
            continue;
        }
        let Some(from) = rank(&module) else {
            wrong.push(format!(
                "{}: module `{module}` has no layer in tests/layers.rs",
                rel.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in code_lines(&text).iter().enumerate() {
            for target in named_modules(line) {
                if target == module || target.is_empty() {
                    continue;
                }
                // Crate-root items (`crate::Runtime`) are re-exports: look
                // through them only by their module, so name modules.
                let Some(to) = rank(&target) else {
                    if target.chars().next().is_some_and(char::is_uppercase) {
                        wrong.push(format!(
                            "{}:{}: names the crate-root re-export `crate::{target}`; name its module instead",
                            rel.display(),
                            n + 1
                        ));
                    }
                    continue;
                };
                *edges.entry((module.clone(), target.clone())).or_default() += 1;
                if to >= from {
                    wrong.push(format!(
                        "{}:{}: `{module}` (layer {from}) names `{target}` (layer {to}): \
                         a module may name only lower layers",
                        rel.display(),
                        n + 1
                    ));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "layering violations:\n{}",
        wrong.join("\n")
    );
    // The check must have seen the crate: the call path alone names four layers.
    assert!(
        edges.contains_key(&("call".into(), "pipeline".into())),
        "no edge call -> pipeline found: is {} the core's source?",
        root.display()
    );
}

#[test]
fn no_module_is_over_the_line_limit() {
    let root = src();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let mut long: Vec<String> = files
        .iter()
        // A `tests.rs` is a unit-test module: as long as its cases need.
        .filter(|file| !file.ends_with("tests.rs"))
        .filter_map(|file| {
            let n = code_lines(&std::fs::read_to_string(file).unwrap()).len();
            (n > MAX_LINES)
                .then(|| format!("{}: {n} lines", file.strip_prefix(&root).unwrap().display()))
        })
        .collect();
    long.sort();
    assert!(
        long.is_empty(),
        "modules over {MAX_LINES} lines (unit tests not counted); split them by concept:\n{}",
        long.join("\n")
    );
}

#[test]
fn the_checker_finds_names_in_groups_and_paths() {
    assert_eq!(named_modules("use crate::call::Gate;"), ["call"]);
    assert_eq!(
        named_modules("use crate::{api::Step, host::HostShared};"),
        ["api", "host"]
    );
    assert_eq!(
        named_modules("let x = crate::plugin::sandbox::ticks_for(d) + crate::redact::f();"),
        ["plugin", "redact"]
    );
    assert_eq!(
        code_lines("a\n// crate::x\n#[cfg(test)]\nmod tests {\n"),
        ["a", ""]
    );
}
