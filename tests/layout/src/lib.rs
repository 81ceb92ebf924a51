//! The module graph of a crate, read from its source files: which file uses which, through
//! `crate::`, `super::` and `self::` paths. Pure logic over (path, text) pairs, so the rules in
//! `tests/layout.rs` can be checked against the real tree and unit-tested on small ones.
//!
//! The reading is textual, not a compiler's: comments and string literals are skipped, and a
//! path resolves to the longest prefix of it that names a file of the crate. That is what a
//! reader of the tree sees as "this file uses that one".

use std::collections::{BTreeMap, BTreeSet};

/// A crate's files by module path (`[]` is the root: lib.rs or main.rs; `["a","b"]` is a/b.rs or
/// a/b/mod.rs), each with its text.
pub struct Crate {
    files: BTreeMap<Vec<String>, (String, String)>,
}

impl Crate {
    /// `files` are (path relative to the crate's src/, text).
    pub fn new(files: impl IntoIterator<Item = (String, String)>) -> Crate {
        let mut map = BTreeMap::new();
        for (path, text) in files {
            if let Some(module) = module_path(&path) {
                map.insert(module, (path, text));
            }
        }
        Crate { files: map }
    }

    /// Edges file -> file (by path relative to src/), a file's uses of itself left out. A name
    /// a module re-exports (`pub use a::X`) leads to the file that defines it, as a reader
    /// following it would go.
    pub fn edges(&self) -> BTreeSet<(String, String)> {
        let mut reexports: BTreeMap<(Vec<String>, String), Vec<String>> = BTreeMap::new();
        for (module, (_, text)) in &self.files {
            let code = without_test_modules(&strip_comments_and_strings(text));
            for (public, path, alias) in use_trees(&code) {
                if public && let Some(target) = self.absolute(module, &path) {
                    reexports.insert((module.clone(), alias), target);
                }
            }
        }
        let mut edges = BTreeSet::new();
        for (module, (path, text)) in &self.files {
            let code = without_test_modules(&strip_comments_and_strings(text));
            let used = used_paths(&code)
                .into_iter()
                .chain(use_trees(&code).into_iter().map(|(_, p, _)| p));
            for target in used {
                let Some(absolute) = self.absolute(module, &target) else {
                    continue;
                };
                if let Some(file) = self.file_of(&absolute, &reexports, 8)
                    && file != path
                {
                    edges.insert((path.clone(), file.to_string()));
                }
            }
        }
        edges
    }

    /// A used path made absolute: `crate::`, `self::`, `super::` or (in `use`) a child module.
    fn absolute(&self, module: &[String], used: &[String]) -> Option<Vec<String>> {
        match used.first().map(String::as_str) {
            Some("crate" | "self" | "super") => absolute_path(module, used),
            Some(child) => {
                let mut m = module.to_vec();
                m.push(child.to_string());
                self.files.contains_key(&m).then(|| {
                    m.extend(used[1..].iter().cloned());
                    m
                })
            }
            None => None,
        }
    }

    /// The file a path leads to: its longest prefix that is a file, through re-exports.
    fn file_of(
        &self,
        path: &[String],
        reexports: &BTreeMap<(Vec<String>, String), Vec<String>>,
        depth: u8,
    ) -> Option<&str> {
        let n = (0..=path.len())
            .rev()
            .find(|n| self.files.contains_key(&path[..*n]))?;
        if n < path.len()
            && depth > 0
            && let Some(target) = reexports.get(&(path[..n].to_vec(), path[n].clone()))
            && target.as_slice() != path
        {
            let mut next = target.clone();
            next.extend(path[n + 1..].iter().cloned());
            return self.file_of(&next, reexports, depth - 1);
        }
        self.files.get(&path[..n]).map(|(p, _)| p.as_str())
    }
}

/// The `use` declarations of `code`: (public, full path, name it is known by) for every leaf of
/// every use tree (`use a::{b, c::{d as e}}` gives a::b as b and a::c::d as e).
fn use_trees(code: &str) -> Vec<(bool, Vec<String>, String)> {
    let mut out = Vec::new();
    let b = code.as_bytes();
    let mut i = 0;
    while let Some(found) = code[i..].find("use ") {
        let at = i + found;
        i = at + 4;
        if at > 0 && (is_ident(b[at - 1]) || b[at - 1] == b':') {
            continue;
        }
        let Some(end) = code[i..].find(';') else {
            break;
        };
        let before = code[..at].trim_end();
        let public = before.ends_with("pub") || before.ends_with(')') && before.contains("pub(");
        let tree: String = code[i..i + end]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        leaves(&tree, &mut Vec::new(), public, &mut out);
        i += end;
    }
    out
}

/// The leaves of one use tree (whitespace removed), each with its full path and name.
fn leaves(
    tree: &str,
    prefix: &mut Vec<String>,
    public: bool,
    out: &mut Vec<(bool, Vec<String>, String)>,
) {
    for item in split_top(tree) {
        let depth = prefix.len();
        let mut rest = item.as_str();
        loop {
            if let Some(group) = rest.strip_prefix('{') {
                leaves(
                    group.strip_suffix('}').unwrap_or(group),
                    prefix,
                    public,
                    out,
                );
                break;
            }
            let seg_end = rest.find("::").unwrap_or(rest.len());
            let seg = &rest[..seg_end];
            if seg_end == rest.len() {
                let (name, alias) = match seg.split_once("as") {
                    Some((n, a)) if !n.is_empty() && !a.is_empty() && seg.contains("as") => (n, a),
                    _ => (seg, seg),
                };
                let mut path = prefix.clone();
                if name != "self" && name != "*" {
                    path.push(name.to_string());
                }
                out.push((public, path, alias.to_string()));
                break;
            }
            prefix.push(seg.to_string());
            rest = &rest[seg_end + 2..];
        }
        prefix.truncate(depth);
    }
}

/// A use-tree list split at its top-level commas.
fn split_top(list: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut depth = 0;
    let mut item = String::new();
    for c in list.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(std::mem::take(&mut item));
                continue;
            }
            _ => {}
        }
        item.push(c);
    }
    if !item.is_empty() {
        items.push(item);
    }
    items
}

/// `a/b.rs` and `a/b/mod.rs` -> ["a","b"]; lib.rs, main.rs -> []; bin/x.rs is its own crate.
fn module_path(path: &str) -> Option<Vec<String>> {
    if path.starts_with("bin/") {
        return None;
    }
    let stem = path.strip_suffix(".rs")?;
    let mut parts: Vec<String> = stem.split('/').map(str::to_string).collect();
    if matches!(parts.last().map(String::as_str), Some("mod")) {
        parts.pop();
    }
    if parts.len() == 1 && (parts[0] == "lib" || parts[0] == "main") {
        parts.clear();
    }
    Some(parts)
}

/// A file's module as a directory: where `self::` and child modules live.
fn absolute_path(module: &[String], used: &[String]) -> Option<Vec<String>> {
    let (head, rest) = used.split_first()?;
    let mut base: Vec<String> = match head.as_str() {
        "crate" => Vec::new(),
        "self" => module.to_vec(),
        "super" => {
            let mut m = module.to_vec();
            m.pop()?;
            m
        }
        _ => return None,
    };
    let mut rest = rest.iter().peekable();
    while rest.peek().is_some_and(|s| s.as_str() == "super") {
        base.pop()?;
        rest.next();
    }
    base.extend(rest.cloned());
    Some(base)
}

/// Every `crate::a::b`, `super::x`, `self::y` path in `code`, as segments (the groups of `use`
/// declarations are read by [`use_trees`]).
fn used_paths(code: &str) -> Vec<Vec<String>> {
    let bytes = code.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        // `$crate::` in a macro names the crate that uses the macro, not this one.
        let at_word_start =
            i == 0 || !is_ident(bytes[i - 1]) && bytes[i - 1] != b':' && bytes[i - 1] != b'$';
        let head = ["crate::", "super::", "self::"]
            .into_iter()
            .find(|h| code[i..].starts_with(h));
        match head {
            Some(h) if at_word_start => {
                let mut segs = vec![h.trim_end_matches("::").to_string()];
                let mut j = i + h.len();
                loop {
                    let start = j;
                    while j < bytes.len() && is_ident(bytes[j]) {
                        j += 1;
                    }
                    // `crate::{...}`: a group, read with its `use` declaration.
                    if j == start {
                        break;
                    }
                    segs.push(code[start..j].to_string());
                    if code[j..].starts_with("::") {
                        j += 2;
                        continue;
                    }
                    out.push(segs);
                    break;
                }
                i = j.max(i + 1);
            }
            _ => i += 1,
        }
    }
    out
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The code with comments and the insides of string and char literals blanked out.
pub fn strip_comments_and_strings(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        if text[i..].starts_with("//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if text[i..].starts_with("/*") {
            let end = text[i + 2..].find("*/").map_or(b.len(), |e| i + 2 + e + 2);
            i = end;
        } else if b[i] == b'r'
            && (text[i + 1..].starts_with("#\"")
                || text[i + 1..].starts_with("##\"")
                || text[i + 1..].starts_with('"'))
            && (i == 0 || !is_ident(b[i - 1]))
        {
            let hashes = text[i + 1..].bytes().take_while(|c| *c == b'#').count();
            let close = format!("\"{}", "#".repeat(hashes));
            let start = i + 1 + hashes + 1;
            i = text[start..]
                .find(&close)
                .map_or(b.len(), |e| start + e + close.len());
            out.push_str("\"\"");
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' && i + 2 < b.len() && (b[i + 2] == b'\'' || b[i + 1] == b'\\') {
            // A char literal ('a', '\n'); a lifetime ('a) has no closing quote.
            let end = text[i + 1..].find('\'').map_or(b.len(), |e| i + 1 + e + 1);
            i = end;
            out.push_str("' '");
        } else {
            let c = text[i..].chars().next().unwrap_or(' ');
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// The code without its `#[cfg(test)] mod ... { ... }` blocks: a test module's `super::` is its
/// own file, and tests are no part of the layout.
pub fn without_test_modules(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        let after = rest[at + "#[cfg(test)]".len()..].trim_start();
        let is_mod = after.starts_with("mod ") || after.starts_with("pub mod ");
        let open = after.find('{');
        let semi = after.find(';');
        match (is_mod, open) {
            (true, Some(open)) if semi.is_none_or(|s| s > open) => {
                out.push_str(&rest[..at]);
                let block = &after[open..];
                let mut depth = 0usize;
                let mut end = block.len();
                for (i, c) in block.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = i + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                rest = &block[end..];
            }
            _ => {
                let skip = at + "#[cfg(test)]".len();
                out.push_str(&rest[..skip]);
                rest = &rest[skip..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The cycles of a directed graph: its strongly connected components of two or more nodes.
pub fn cycles(edges: &BTreeSet<(String, String)>) -> Vec<Vec<String>> {
    let nodes: BTreeSet<&str> = edges
        .iter()
        .flat_map(|(a, b)| [a.as_str(), b.as_str()])
        .collect();
    let reach = |from: &str| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_string()];
        while let Some(n) = todo.pop() {
            for (a, b) in edges {
                if *a == n && seen.insert(b.clone()) {
                    todo.push(b.clone());
                }
            }
        }
        seen
    };
    let reachable: BTreeMap<&str, BTreeSet<String>> =
        nodes.iter().map(|n| (*n, reach(n))).collect();
    let mut done = BTreeSet::new();
    let mut out = Vec::new();
    for n in &nodes {
        if done.contains(*n) || !reachable[n].contains(*n) {
            continue;
        }
        let component: Vec<String> = nodes
            .iter()
            .filter(|m| reachable[n].contains(**m) && reachable[**m].contains(*n))
            .map(|m| m.to_string())
            .collect();
        done.extend(component.iter().cloned());
        out.push(component);
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn krate(files: &[(&str, &str)]) -> Crate {
        Crate::new(files.iter().map(|(p, t)| (p.to_string(), t.to_string())))
    }

    #[test]
    fn paths_resolve_to_the_longest_file() {
        let c = krate(&[
            ("lib.rs", "mod a; mod b;"),
            ("a.rs", "use crate::b::Thing; fn f() { crate::c::d::go(); }"),
            (
                "b.rs",
                "use super::{a::X, c}; // crate::a is only named in a comment\n",
            ),
            ("c/mod.rs", "use self::d::Y; const S: &str = \"crate::b\";"),
            ("c/d.rs", "use super::super::VERSION;"),
        ]);
        let edges: Vec<(String, String)> = c.edges().into_iter().collect();
        let e = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(
            edges,
            vec![
                e("a.rs", "b.rs"),
                e("a.rs", "c/d.rs"),
                e("b.rs", "a.rs"),
                e("b.rs", "c/mod.rs"),
                e("c/d.rs", "lib.rs"),
                e("c/mod.rs", "c/d.rs"),
            ]
        );
        let cycles = cycles(&c.edges());
        assert_eq!(cycles, vec![vec!["a.rs".to_string(), "b.rs".into()]]);
    }

    #[test]
    fn a_chain_without_a_loop_has_no_cycle() {
        let c = krate(&[
            ("a.rs", "use crate::b;"),
            ("b.rs", "use crate::c;"),
            ("c.rs", ""),
        ]);
        assert!(cycles(&c.edges()).is_empty());
        let c = krate(&[
            ("a.rs", "use crate::b;"),
            ("b.rs", "use crate::c;"),
            ("c.rs", "use crate::a::x;"),
        ]);
        assert_eq!(cycles(&c.edges()).len(), 1);
        assert_eq!(cycles(&c.edges())[0].len(), 3);
    }

    #[test]
    fn test_modules_are_left_out() {
        let c = krate(&[
            (
                "a.rs",
                "use crate::b;\n#[cfg(test)]\nmod tests {\n use super::*;\n use crate::c;\n fn f() { if x { } }\n}\nuse crate::d;",
            ),
            ("b.rs", ""),
            ("c.rs", "use crate::a;"),
            ("d.rs", ""),
        ]);
        let targets: Vec<String> = c
            .edges()
            .into_iter()
            .filter(|(a, _)| a == "a.rs")
            .map(|(_, b)| b)
            .collect();
        assert_eq!(targets, vec!["b.rs".to_string(), "d.rs".into()]);
        assert!(cycles(&c.edges()).is_empty());
    }

    #[test]
    fn lifetimes_and_raw_strings_do_not_confuse_the_reader() {
        let code = "fn f<'a>(x: &'a str) -> char { let r = r#\"crate::x\"#; 'c' } use crate::y;";
        let stripped = strip_comments_and_strings(code);
        assert!(!stripped.contains("crate::x"), "{stripped}");
        assert!(stripped.contains("crate::y"), "{stripped}");
    }
}
