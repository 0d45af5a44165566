//! The structure of `src/` as the top of `lib.rs` declares it: top-level modules in layers,
//! each importing only from the modules declared before it (so no import cycle can form), no
//! source file over 700 lines outside its tests, and a `main.rs` that only dispatches.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::common::repo;

/// The top-level modules in the order `lib.rs` declares them: the allowed import direction.
fn declared_order(lib: &str) -> Vec<String> {
    lib.lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod ").and_then(|r| r.strip_suffix(';')))
        .map(str::to_string)
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The code of a file without comments and the contents of string and char literals, so that
/// only real paths are left.
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            i += 2;
            while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                i += 1;
            }
            i += 2;
        } else if b[i] == b'r'
            && matches!(b.get(i + 1), Some(b'"') | Some(b'#'))
            && (i == 0 || !(b[i - 1] as char).is_alphanumeric())
        {
            // raw string r"..." or r#"..."#
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&b'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&b'"') {
                out.push(b[i] as char);
                i += 1;
                continue;
            }
            j += 1;
            let close: Vec<u8> = std::iter::once(b'"').chain(std::iter::repeat_n(b'#', hashes)).collect();
            while j < b.len() && !b[j..].starts_with(&close) {
                j += 1;
            }
            i = j + close.len();
            out.push_str("\"\"");
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' && b.get(i + 2) == Some(&b'\'') {
            i += 3; // 'x'
        } else if b[i] == b'\'' && b.get(i + 1) == Some(&b'\\') {
            i += 2;
            while i < b.len() && b[i] != b'\'' {
                i += 1;
            }
            i += 1;
        } else {
            let ch = text[i..].chars().next().unwrap();
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// Top-level modules a file's code names through `crate::`: plain paths (`crate::io::x`) and
/// groups (`use crate::{io, image::decode}`), with the line of each.
fn crate_refs(code: &str) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    let ident = |s: &str| s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<String>();
    for (start, _) in code.match_indices("crate::") {
        if start > 0 && {
            let c = code.as_bytes()[start - 1] as char;
            c.is_alphanumeric() || c == '_' || c == ':' || c == '$'
        } {
            continue; // `$crate::` in macros, or part of a longer name
        }
        let line = code[..start].matches('\n').count() + 1;
        let rest = &code[start + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // the first segment of every path at depth one of the group
            let mut depth = 0;
            let mut at_start = true;
            let mut i = 0;
            let gb = group.as_bytes();
            while i < gb.len() {
                match gb[i] {
                    b'{' => {
                        depth += 1;
                        at_start = false;
                    }
                    b'}' if depth == 0 => break,
                    b'}' => depth -= 1,
                    b',' if depth == 0 => at_start = true,
                    c if at_start && (c.is_ascii_alphabetic() || c == b'_') => {
                        let id = ident(&group[i..]);
                        i += id.len();
                        out.push((id, line));
                        at_start = false;
                        continue;
                    }
                    _ => {}
                }
                i += 1;
            }
        } else {
            out.push((ident(rest), line));
        }
    }
    out
}

/// The top-level module a file belongs to (None for `lib.rs` and `main.rs`).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_string_lossy().into_owned();
    match first.as_str() {
        "lib.rs" | "main.rs" => None,
        f => Some(f.trim_end_matches(".rs").to_string()),
    }
}

#[test]
fn every_import_runs_down_the_declared_layers() {
    let src = repo().join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let order = declared_order(&lib);
    assert!(order.len() > 10 && order[0] == "error" && order.last().map(String::as_str) == Some("cli"), "{order:?}");
    let rank: BTreeMap<&str, usize> = order.iter().enumerate().map(|(i, m)| (m.as_str(), i)).collect();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut wrong = Vec::new();
    let mut checked = 0;
    for f in &files {
        let Some(module) = module_of(&src, f) else { continue };
        let own = *rank
            .get(module.as_str())
            .unwrap_or_else(|| panic!("{}: module `{module}` is not declared in lib.rs", f.display()));
        let code = code_only(&std::fs::read_to_string(f).unwrap());
        for (target, line) in crate_refs(&code) {
            checked += 1;
            if target == module || matches!(target.as_str(), "Error" | "Result") {
                continue; // its own room, or the crate-root re-exports of `error`
            }
            match rank.get(target.as_str()) {
                Some(&t) if t < own => {}
                Some(_) => {
                    wrong.push(format!("{}:{line}: `{module}` imports `{target}`, declared after it", f.display()))
                }
                None => wrong.push(format!("{}:{line}: `crate::{target}` is not a declared module", f.display())),
            }
        }
    }
    assert!(checked > 300, "only {checked} crate paths found; is the parser broken?");
    assert!(wrong.is_empty(), "{} imports against the layers of lib.rs:\n{}", wrong.len(), wrong.join("\n"));
}

#[test]
fn the_path_parser_finds_groups_and_skips_comments_and_strings() {
    let code = code_only(
        "use crate::{io, image::{decode, measure}, text::tokens};\n// crate::cli in a comment\nlet s = \"crate::cli\";\nlet c = '\"';\nfn f() { crate::rng::Rng::new(1); }\n/* crate::cli */\n",
    );
    let refs: Vec<String> = crate_refs(&code).into_iter().map(|(m, _)| m).collect();
    assert_eq!(refs, ["io", "image", "text", "rng"]);
}

#[test]
fn no_source_file_is_over_700_lines_outside_its_tests() {
    let src = repo().join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut long = Vec::new();
    for f in &files {
        if f.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(f).unwrap();
        let lines = text.lines().take_while(|l| !l.starts_with("#[cfg(test)]")).count();
        if lines > 700 {
            long.push(format!("{}: {lines} lines", f.display()));
        }
    }
    assert!(long.is_empty(), "{}", long.join("\n"));
}

#[test]
fn main_only_parses_and_dispatches() {
    let main = std::fs::read_to_string(repo().join("src/main.rs")).unwrap();
    assert!(main.lines().count() <= 60, "main.rs has {} lines", main.lines().count());
    let code = code_only(&main);
    // `main`, the allocator setting and the declaration of the allocator's option setter
    assert_eq!(code.matches("fn ").count(), 3, "main.rs holds main and the allocator setting only");
    assert!(!code.contains("Command::"), "main.rs dispatches through cli::dispatch, not a match of its own");
    assert!(code.contains("dispatch(cli.command)"));
}

#[test]
fn every_module_opens_with_a_doc_comment() {
    let src = repo().join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let undocumented: Vec<String> = files
        .iter()
        .filter(|f| f.file_name().is_none_or(|n| n != "tests.rs"))
        .filter(|f| !std::fs::read_to_string(f).unwrap().starts_with("//!"))
        .map(|f| f.display().to_string())
        .collect();
    assert!(undocumented.is_empty(), "files without a module doc:\n{}", undocumented.join("\n"));
}
