//! The layering rules of ARCHITECTURE.md, checked on the source: the module import graph has no
//! circles, techniques never import each other, and at most a few imports run from the shared
//! layer up to a technique (each one listed here, so a new one is a deliberate change).
//!
//! The graph is built from the text of `src/**/*.rs` (non-test code, i.e. everything before the
//! first `#[cfg(test)]`): every `crate::…`, `super::…` and `self::…` path, `use` groups expanded.
//! A node is a top-level module or one of its direct submodules (`freeze`, `freeze::policy`).
//! A parent's edges to its own submodules (declaring and re-exporting them) are structural and not
//! counted; every other edge is.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Layer of each top-level module: 0 shared, 1 technique, 2 above the techniques.
fn layer(top: &str) -> Option<u8> {
    match top {
        "error" | "check" | "collective" | "des" | "sweep" | "catalog" | "measure" | "validate"
        | "report" | "scenario" | "dnn" | "progress" | "output" | "units" => Some(0),
        "specdec" | "gradcomp" | "embcache" | "freeze" => Some(1),
        "studies" | "techniques" | "cli" => Some(2),
        _ => None,
    }
}

/// Imports from the shared layer up to a technique that are accepted (at most three).
const ALLOWED_UPWARD: &[(&str, &str)] = &[];

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `src/freeze/policy.rs` → `["freeze", "policy"]`; `src/lib.rs` → `[]`.
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap();
    let mut segs: Vec<String> = rel
        .iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    let last = segs.pop().unwrap();
    let stem = last.trim_end_matches(".rs");
    if !matches!(stem, "lib" | "main" | "mod") {
        segs.push(stem.to_string());
    }
    segs
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Parses a path body after a `crate::`/`super::`/`self::` prefix: `a::b::{c, d::e}` → every
/// expanded path (segments).
fn parse_paths(s: &[char], i: &mut usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let mut cur = prefix;
    loop {
        while *i < s.len() && s[*i].is_whitespace() {
            *i += 1;
        }
        if *i < s.len() && s[*i] == '{' {
            *i += 1;
            loop {
                parse_paths(s, i, cur.clone(), out);
                while *i < s.len() && s[*i].is_whitespace() {
                    *i += 1;
                }
                if *i < s.len() && s[*i] == ',' {
                    *i += 1;
                    continue;
                }
                if *i < s.len() && s[*i] == '}' {
                    *i += 1;
                }
                return;
            }
        }
        let start = *i;
        while *i < s.len() && is_ident(s[*i]) {
            *i += 1;
        }
        if *i == start {
            out.push(cur);
            return;
        }
        cur.push(s[start..*i].iter().collect());
        if s.get(*i) == Some(&':') && s.get(*i + 1) == Some(&':') {
            *i += 2;
        } else {
            out.push(cur);
            return;
        }
    }
}

/// Every absolute module path a file's non-test code refers to.
fn references(text: &str, me: &[String]) -> Vec<Vec<String>> {
    let code: String = text
        .split("#[cfg(test)]")
        .next()
        .unwrap()
        .lines()
        .map(|l| {
            let t = l.trim_start();
            if t.starts_with("//") {
                ""
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let s: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        let boundary = i == 0 || !is_ident(s[i - 1]);
        let rest = |k: &str| s[i..].iter().take(k.len()).copied().eq(k.chars());
        if boundary && rest("crate::") {
            i += "crate::".len();
            parse_paths(&s, &mut i, Vec::new(), &mut out);
        } else if boundary && (rest("super::") || rest("self::")) {
            // The module a `self::` names is the file's own; `super::` its parent.
            let mut base: Vec<String> = me.to_vec();
            loop {
                if s[i..].iter().take(7).copied().eq("super::".chars()) {
                    base.pop();
                    i += 7;
                } else if s[i..].iter().take(6).copied().eq("self::".chars()) {
                    i += 6;
                } else {
                    break;
                }
            }
            parse_paths(&s, &mut i, base, &mut out);
        } else {
            i += 1;
        }
    }
    out
}

struct Graph {
    nodes: BTreeSet<Vec<String>>,
    edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
}

fn node_of(nodes: &BTreeSet<Vec<String>>, path: &[String]) -> Option<Vec<String>> {
    (1..=path.len().min(2))
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|p| nodes.contains(p))
}

fn build() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rs_files(&src, &mut files);
    let mods: Vec<(PathBuf, Vec<String>)> = files
        .into_iter()
        .map(|f| {
            let m = module_path(&src, &f);
            (f, m)
        })
        .filter(|(_, m)| !m.is_empty())
        .collect();
    let nodes: BTreeSet<Vec<String>> = mods
        .iter()
        .map(|(_, m)| m[..m.len().min(2)].to_vec())
        .collect();
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for (file, m) in &mods {
        let from = m[..m.len().min(2)].to_vec();
        let text = std::fs::read_to_string(file).unwrap();
        for r in references(&text, m) {
            let Some(to) = node_of(&nodes, &r) else {
                continue;
            };
            // Self-edges and a parent's edges to its own submodules are structural.
            if to == from || to.starts_with(&from) {
                continue;
            }
            edges.entry(from.clone()).or_default().insert(to);
        }
    }
    Graph { nodes, edges }
}

/// Strongly connected components with more than one node (Tarjan).
fn cycles(g: &Graph) -> Vec<Vec<Vec<String>>> {
    struct St<'a> {
        g: &'a Graph,
        index: BTreeMap<&'a Vec<String>, usize>,
        low: BTreeMap<&'a Vec<String>, usize>,
        stack: Vec<&'a Vec<String>>,
        on: BTreeSet<&'a Vec<String>>,
        next: usize,
        out: Vec<Vec<Vec<String>>>,
    }
    fn visit<'a>(st: &mut St<'a>, v: &'a Vec<String>) {
        st.index.insert(v, st.next);
        st.low.insert(v, st.next);
        st.next += 1;
        st.stack.push(v);
        st.on.insert(v);
        if let Some(ws) = st.g.edges.get(v) {
            for w in ws {
                if !st.index.contains_key(w) {
                    visit(st, w);
                    let l = st.low[w].min(st.low[v]);
                    st.low.insert(v, l);
                } else if st.on.contains(w) {
                    let l = st.index[w].min(st.low[v]);
                    st.low.insert(v, l);
                }
            }
        }
        if st.low[v] == st.index[v] {
            let mut comp = Vec::new();
            loop {
                let w = st.stack.pop().unwrap();
                st.on.remove(w);
                comp.push(w.clone());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                st.out.push(comp);
            }
        }
    }
    let mut st = St {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in &g.nodes {
        if !st.index.contains_key(v) {
            visit(&mut st, v);
        }
    }
    st.out
}

fn name(p: &[String]) -> String {
    p.join("::")
}

#[test]
fn parser_expands_use_groups_and_relative_paths() {
    let me = vec!["freeze".to_string(), "policy".to_string()];
    let refs = references(
        "use crate::{check::{a, b}, error::Result};\nuse super::gradnorm::X;\n// crate::ignored\nfn f() { self::g(); }\n#[cfg(test)]\nmod tests { use crate::specdec; }",
        &me,
    );
    let names: Vec<String> = refs.iter().map(|r| r.join("::")).collect();
    assert_eq!(
        names,
        vec![
            "check::a",
            "check::b",
            "error::Result",
            "freeze::gradnorm::X",
            "freeze::policy::g"
        ]
    );
}

#[test]
fn import_graph_has_no_circles_and_respects_layers() {
    let g = build();
    let cyc = cycles(&g);
    let mut upward = Vec::new();
    let mut cross = Vec::new();
    let mut unknown = BTreeSet::new();
    for (from, tos) in &g.edges {
        for to in tos {
            let (Some(lf), Some(lt)) = (layer(&from[0]), layer(&to[0])) else {
                for p in [from, to] {
                    if layer(&p[0]).is_none() {
                        unknown.insert(p[0].clone());
                    }
                }
                continue;
            };
            if lt > lf {
                upward.push((name(from), name(to)));
            } else if lf == 1 && lt == 1 && from[0] != to[0] {
                cross.push((name(from), name(to)));
            }
        }
    }
    let report = format!(
        "{} nodes, {} edges; circles: {:?}; upward imports: {:?}; technique→technique: {:?}; modules without a layer: {:?}",
        g.nodes.len(),
        g.edges.values().map(BTreeSet::len).sum::<usize>(),
        cyc.iter()
            .map(|c| c.iter().map(|p| name(p)).collect::<Vec<_>>())
            .collect::<Vec<_>>(),
        upward,
        cross,
        unknown
    );
    eprintln!("{report}");
    assert!(cyc.is_empty(), "{report}");
    assert!(unknown.is_empty(), "{report}");
    assert!(cross.is_empty(), "{report}");
    let not_allowed: Vec<_> = upward
        .iter()
        .filter(|(f, t)| !ALLOWED_UPWARD.iter().any(|(a, b)| a == f && b == t))
        .collect();
    assert!(ALLOWED_UPWARD.len() <= 3);
    assert!(not_allowed.is_empty(), "{report}");
}
