//! The core's layering rules, checked from the sources (ARCHITECTURE.md draws them):
//!
//! * nothing under `server/`, `http/` or `ws/` imports `asgi/`;
//! * `bridge/` imports nothing of `asgi/`;
//! * `asgi/` imports nothing of `server/`;
//! * no import circle among the crate's files;
//! * PyO3 appears only in `asgi/`, `bridge/` and `lib.rs`.
//!
//! An import is any `crate::...`, `super::...` or `self::...` path in the code (comments
//! and string literals left out), resolved to the file that defines the module it names.
//! `mod` declarations are structure, not imports.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// One source file: its module path (`["http", "service"]`) and its code.
struct Source {
    module: Vec<String>,
    code: String,
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `http/service.rs` -> `["http", "service"]`; `http/mod.rs` -> `["http"]`; `lib.rs` -> `[]`.
fn module_of(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" {
        parts.push(stem.to_owned());
    }
    parts
}

/// The code without comments, string and char literals (their text can look like paths).
fn strip(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let mut depth = 0;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if b[i] == b'r' && (b[i..].starts_with(b"r\"") || b[i..].starts_with(b"r#")) {
            // Raw string: r"..." or r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while j < b.len() && b[j] == b'#' {
                hashes += 1;
                j += 1;
            }
            if j < b.len() && b[j] == b'"' {
                let close: Vec<u8> = std::iter::once(b'"')
                    .chain(std::iter::repeat_n(b'#', hashes))
                    .collect();
                j += 1;
                while j < b.len() && !b[j..].starts_with(&close) {
                    j += 1;
                }
                i = j + close.len();
                out.push_str("\"\"");
            } else {
                out.push('r');
                i += 1;
            }
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' && i + 2 < b.len() && (b[i + 2] == b'\'' || b[i + 1] == b'\\') {
            // A char literal ('x' or '\n'); lifetimes ('a) are left alone.
            i += 1;
            while i < b.len() && b[i] != b'\'' {
                if b[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("' '");
        } else {
            let c = text[i..].chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Parse a use tree at `s` (after a `crate::`, `super::` or `self::`): every full path it
/// names, relative to its root. `a::b::{c, d::e}` -> `[a,b,c]`, `[a,b,d,e]`.
fn use_tree(s: &str) -> Vec<Vec<String>> {
    fn tree(s: &[char], i: &mut usize) -> Vec<Vec<String>> {
        let skip_ws = |i: &mut usize| {
            while *i < s.len() && s[*i].is_whitespace() {
                *i += 1;
            }
        };
        skip_ws(i);
        if *i < s.len() && s[*i] == '{' {
            *i += 1;
            let mut all = Vec::new();
            loop {
                skip_ws(i);
                if *i >= s.len() || s[*i] == '}' {
                    *i += 1;
                    break;
                }
                all.extend(tree(s, i));
                skip_ws(i);
                if *i < s.len() && s[*i] == ',' {
                    *i += 1;
                }
            }
            return all;
        }
        let start = *i;
        while *i < s.len() && (is_ident(s[*i]) || s[*i] == '*') {
            *i += 1;
        }
        let segment: String = s[start..*i].iter().collect();
        if segment.is_empty() {
            return vec![Vec::new()];
        }
        if *i + 1 < s.len() && s[*i] == ':' && s[*i + 1] == ':' {
            *i += 2;
            return tree(s, i)
                .into_iter()
                .map(|mut rest| {
                    rest.insert(0, segment.clone());
                    rest
                })
                .collect();
        }
        vec![vec![segment]]
    }
    let chars: Vec<char> = s.chars().take(4000).collect();
    let mut i = 0;
    tree(&chars, &mut i)
}

/// Every module path the code refers to, made absolute. `module` is the file's own path;
/// `in_tests` tells whether a reference sits inside the file's `mod tests`, where `super`
/// is the file itself.
fn references(module: &[String], code: &str) -> BTreeSet<Vec<String>> {
    let tests_at = code.find("#[cfg(test)]\nmod tests").unwrap_or(code.len());
    let mut found = BTreeSet::new();
    for root in ["crate::", "super::", "self::"] {
        let mut from = 0;
        while let Some(at) = code[from..].find(root) {
            let at = from + at;
            from = at + root.len();
            let preceded = code[..at].chars().next_back();
            if preceded.is_some_and(|c| is_ident(c) || c == ':') {
                continue;
            }
            for path in use_tree(&code[from..]) {
                let mut absolute: Vec<String> = match root {
                    "crate::" => Vec::new(),
                    "self::" => module.to_vec(),
                    _ if at >= tests_at => module.to_vec(),
                    _ => module[..module.len().saturating_sub(1)].to_vec(),
                };
                absolute.extend(path.into_iter().filter(|s| s != "*"));
                found.insert(absolute);
            }
        }
    }
    found
}

/// The file module a path lives in: its longest prefix that is a file of the crate.
fn owner(path: &[String], files: &BTreeSet<Vec<String>>) -> Vec<String> {
    (0..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|prefix| files.contains(prefix))
        .unwrap_or_default()
}

fn sources() -> Vec<Source> {
    let root = src_dir();
    let mut paths = Vec::new();
    collect(&root, &mut paths);
    paths
        .into_iter()
        .map(|path| Source {
            module: module_of(path.strip_prefix(&root).unwrap()),
            code: strip(&fs::read_to_string(&path).unwrap()),
        })
        .collect()
}

/// file module -> the file modules it imports.
fn graph() -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let sources = sources();
    let files: BTreeSet<Vec<String>> = sources.iter().map(|s| s.module.clone()).collect();
    sources
        .iter()
        .map(|s| {
            let deps = references(&s.module, &s.code)
                .iter()
                .map(|p| owner(p, &files))
                .filter(|dep| dep != &s.module)
                .collect();
            (s.module.clone(), deps)
        })
        .collect()
}

fn name(module: &[String]) -> String {
    if module.is_empty() {
        "lib.rs".into()
    } else {
        module.join("/")
    }
}

fn under(module: &[String], folder: &str) -> bool {
    module.first().is_some_and(|m| m == folder)
}

#[test]
fn layers_import_one_way() {
    let forbidden = [
        ("server", "asgi"),
        ("http", "asgi"),
        ("ws", "asgi"),
        ("bridge", "asgi"),
        ("asgi", "server"),
    ];
    let mut broken = Vec::new();
    for (module, deps) in graph() {
        for dep in deps {
            for (from, to) in forbidden {
                if under(&module, from) && under(&dep, to) {
                    broken.push(format!("{} imports {}", name(&module), name(&dep)));
                }
            }
        }
    }
    assert!(broken.is_empty(), "layering broken:\n{}", broken.join("\n"));
}

#[test]
fn no_import_circle_among_files() {
    let graph = graph();
    // Depth-first search; a grey node met again closes a circle.
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        White,
        Grey,
        Black,
    }
    let mut marks: BTreeMap<&Vec<String>, Mark> = graph.keys().map(|k| (k, Mark::White)).collect();
    let mut circles = Vec::new();
    fn visit<'g>(
        node: &'g Vec<String>,
        graph: &'g BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        marks: &mut BTreeMap<&'g Vec<String>, Mark>,
        stack: &mut Vec<&'g Vec<String>>,
        circles: &mut Vec<String>,
    ) {
        marks.insert(node, Mark::Grey);
        stack.push(node);
        for dep in graph.get(node).into_iter().flatten() {
            match marks.get(dep).copied().unwrap_or(Mark::Black) {
                Mark::White => visit(dep, graph, marks, stack, circles),
                Mark::Grey => {
                    let start = stack.iter().position(|n| *n == dep).unwrap();
                    let mut names: Vec<String> = stack[start..].iter().map(|n| name(n)).collect();
                    names.push(name(dep));
                    circles.push(names.join(" -> "));
                }
                Mark::Black => {}
            }
        }
        stack.pop();
        marks.insert(node, Mark::Black);
    }
    for node in graph.keys() {
        if marks[node] == Mark::White {
            visit(node, &graph, &mut marks, &mut Vec::new(), &mut circles);
        }
    }
    assert!(
        circles.is_empty(),
        "import circles:\n{}",
        circles.join("\n")
    );
}

#[test]
fn pyo3_only_in_asgi_bridge_and_lib() {
    let mut outside = Vec::new();
    for source in sources() {
        let allowed = source.module.is_empty()
            || under(&source.module, "asgi")
            || under(&source.module, "bridge");
        if !allowed && source.code.contains("pyo3") {
            outside.push(name(&source.module));
        }
    }
    assert!(outside.is_empty(), "PyO3 used in: {}", outside.join(", "));
}

/// The checker itself: it must see the imports it is meant to catch.
#[test]
fn the_checker_reads_use_trees_and_paths() {
    let code = strip(
        "use crate::a::{b::C, d};\n// use crate::commented::Out;\nfn f() { crate::e::f(); \
         let s = \"crate::in_string\"; super::g::h(); }\n",
    );
    let refs = references(&["x".to_owned(), "y".to_owned()], &code);
    let as_strings: BTreeSet<String> = refs.iter().map(|p| p.join("::")).collect();
    let expected: BTreeSet<String> = ["a::b::C", "a::d", "e::f", "x::g::h"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(as_strings, expected);
}
