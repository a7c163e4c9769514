//! The WIT contract is the one source of truth for the names it defines.
//! The ten `error-kind` cases of `wit/since_v*/types.wit` (read with wit-parser,
//! as any component toolchain reads them) are spelled out again by the
//! host (`mender::ErrorKind`), the Rust guest SDK (`mender_guest::prelude::ErrorKind`)
//! and the plain-Rust benchmark logic (`bench/logic/backoff.rs`). Each copy
//! must list the same names in the same order (the host's index is a
//! counter slot in WIT order); a rename, a missing or extra kind, or a
//! different order fails here with the lists side by side.

#[path = "common/tools.rs"]
mod tools;

#[path = "../bench/logic/backoff.rs"]
#[allow(dead_code)]
mod bench_logic;

use std::path::PathBuf;
use std::str::FromStr;

use mender_guest::prelude::ErrorKind as SdkKind;

/// The contract the guest SDK targets: the copies are checked against it,
/// and every other version against it ([`every_contract_version_has_the_same_error_kinds`]).
const LATEST: &str = "since_v0.2.0";

/// The cases of `enum error-kind` in `interface types` of the latest
/// contract, in order.
fn wit_error_kinds() -> Vec<String> {
    error_kinds_of(LATEST)
}

/// Every contract version's directory under wit/.
fn versions() -> Vec<String> {
    let dir = tools::workspace().join("wit");
    let mut versions: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("since_v"))
        .collect();
    versions.sort();
    versions
}

/// The cases of `enum error-kind` in `interface types` of wit/`version`.
fn error_kinds_of(version: &str) -> Vec<String> {
    let dir = tools::workspace().join("wit").join(version);
    // The files go in by hand: wit-parser's own directory reading needs its
    // `std` feature, which changes a feature of a crate wasmtime shares and
    // so would rebuild wasmtime for the tests.
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "wit"))
        .collect();
    files.sort();
    let mut sources = wit_parser::SourceMap::default();
    for file in &files {
        let text =
            std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        sources.push_str(&file.display().to_string(), text);
    }
    let group = sources
        .parse()
        .unwrap_or_else(|(sources, e)| panic!("{}", e.render(&sources)));
    let mut resolve = wit_parser::Resolve::default();
    let package = resolve
        .push_group(group)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let types = resolve.packages[package]
        .interfaces
        .get("types")
        .unwrap_or_else(|| panic!("{}: no `interface types`", dir.display()));
    let error_kind = resolve.interfaces[*types]
        .types
        .get("error-kind")
        .unwrap_or_else(|| panic!("{}: no `error-kind` in `interface types`", dir.display()));
    match &resolve.types[*error_kind].kind {
        wit_parser::TypeDefKind::Enum(e) => e.cases.iter().map(|c| c.name.clone()).collect(),
        other => panic!("`error-kind` is not an enum: {other:?}"),
    }
}

/// `None` when `copy` equals `wit`, else the two lists side by side with
/// each differing row marked.
fn drift(copy: &[String], wit: &[String]) -> Option<String> {
    if copy == wit {
        return None;
    }
    let mut table = format!("  {:<4}{:<16}{}\n", "#", "wit/types.wit", "copy");
    for i in 0..wit.len().max(copy.len()) {
        let (w, c) = (wit.get(i), copy.get(i));
        table += &format!(
            "{} {:<4}{:<16}{}\n",
            if w == c { ' ' } else { '≠' },
            i,
            w.map_or("(none)", |s| s.as_str()),
            c.map_or("(none)", |s| s.as_str()),
        );
    }
    Some(table)
}

/// Every copy's names, each as it spells them (and parses them back).
fn copies() -> Vec<(&'static str, Vec<String>)> {
    let mut copies = Vec::new();

    let host = mender::ErrorKind::ALL;
    copies.push((
        "mender::ErrorKind::as_str",
        host.map(|k| k.as_str().to_owned()).to_vec(),
    ));
    copies.push((
        "mender::ErrorKind Display",
        host.map(|k| k.to_string()).to_vec(),
    ));
    // Serde names are what configs and the attempt history use; they come
    // from `rename_all`, not from `as_str`, so they are a copy of their own.
    copies.push((
        "mender::ErrorKind serde",
        host.map(|k| {
            serde_json::to_value(k)
                .unwrap()
                .as_str()
                .unwrap_or("(not a string)")
                .to_owned()
        })
        .to_vec(),
    ));

    let sdk = SdkKind::ALL;
    copies.push((
        "mender_guest::prelude::ErrorKind::name",
        sdk.map(|k| k.name().to_owned()).to_vec(),
    ));
    copies.push((
        "mender_guest::prelude::ErrorKind Display",
        sdk.map(|k| k.to_string()).to_vec(),
    ));

    copies.push((
        "bench/logic/backoff.rs Kind::name",
        bench_logic::Kind::ALL.map(|k| k.name().to_owned()).to_vec(),
    ));
    copies
}

#[test]
fn every_copy_of_the_error_kinds_matches_the_wit() {
    let wit = wit_error_kinds();
    assert_eq!(wit.len(), 10, "wit/types.wit error-kind: {wit:?}");
    let drifted: Vec<String> = copies()
        .into_iter()
        .filter_map(|(name, names)| drift(&names, &wit).map(|t| format!("{name}:\n{t}")))
        .collect();
    assert!(
        drifted.is_empty(),
        "the error kinds drifted from wit/types.wit:\n{}",
        drifted.join("\n")
    );
}

/// The host maps error kinds between contract versions by position (one
/// counter slot per kind), so every version must list the same kinds in
/// the same order.
#[test]
fn every_contract_version_has_the_same_error_kinds() {
    let versions = versions();
    assert!(
        versions.iter().any(|v| v == "since_v0.1.0") && versions.iter().any(|v| v == LATEST),
        "wit/ should hold since_v0.1.0 and {LATEST}: {versions:?}"
    );
    let latest = wit_error_kinds();
    for version in &versions {
        let kinds = error_kinds_of(version);
        if let Some(table) = drift(&kinds, &latest) {
            panic!("wit/{version} error-kind differs from wit/{LATEST}:\n{table}");
        }
    }
}

/// Each WIT name parses back, in every copy that parses names, to the kind
/// at the same position.
#[test]
fn every_wit_error_kind_name_parses_in_every_copy() {
    let mut wrong = Vec::new();
    for (i, name) in wit_error_kinds().iter().enumerate() {
        let quoted = serde_json::Value::String(name.clone());
        let host = serde_json::from_value::<mender::ErrorKind>(quoted.clone()).ok();
        if host != mender::ErrorKind::ALL.get(i).copied() {
            wrong.push(format!("mender::ErrorKind from {name:?}: {host:?}"));
        }
        let sdk = SdkKind::from_str(name).ok();
        if sdk != SdkKind::ALL.get(i).copied() {
            wrong.push(format!(
                "mender_guest::prelude::ErrorKind::from_str({name:?}): {sdk:?}"
            ));
        }
        let sdk_serde = serde_json::from_value::<SdkKind>(quoted).ok();
        if sdk_serde != SdkKind::ALL.get(i).copied() {
            wrong.push(format!(
                "mender_guest::prelude::ErrorKind from {name:?}: {sdk_serde:?}"
            ));
        }
        let bench = bench_logic::Kind::parse(name);
        if bench != bench_logic::Kind::ALL.get(i).copied() {
            wrong.push(format!("bench_logic::Kind::parse({name:?}): {bench:?}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "WIT names that do not parse to their kind:\n{}",
        wrong.join("\n")
    );
}
