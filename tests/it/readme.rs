//! The README's examples are real output: every ```` ```console ```` block of `README.md` is run
//! here against the built binary and compared with what it shows.
//!
//! Rules (also stated in the README, above its examples):
//! - A line starting with `$ perfcast ` is a command, run from the repository root; the lines
//!   after it, up to the next command or the block's end, are its expected stdout. It must exit 0.
//! - `...` inside a line stands for any text (left-out columns, long notes); a line that is only
//!   `...` stands for any number of lines. Runs of spaces compare equal to one space, so a table
//!   whose columns were cut keeps matching.
//! - Expected output that starts with `{` is a selection of a JSON object's fields: each
//!   `"key": value` shown must be in the output with that value. A number matches when the
//!   output's value rounds to it at the digits shown (`0.511` matches 0.5109999…); a string may
//!   use `...`.
//! - A block that must not run (a command with effects, or one too slow for the tests) is
//!   fenced as ```` ```sh ````, not `console`.

use std::path::PathBuf;

/// One command of a console block and its expected stdout lines.
#[derive(Debug)]
struct Example {
    /// Line of the command in README.md (1-based).
    line: usize,
    command: String,
    expected: Vec<String>,
}

fn examples(readme: &str) -> Vec<Example> {
    let mut out: Vec<Example> = Vec::new();
    let mut in_console = false;
    let mut in_other = false;
    for (i, l) in readme.lines().enumerate() {
        let t = l.trim_end();
        if in_console || in_other {
            if t.starts_with("```") {
                in_console = false;
                in_other = false;
            } else if in_console {
                if let Some(cmd) = t.strip_prefix("$ ") {
                    out.push(Example {
                        line: i + 1,
                        command: cmd.to_string(),
                        expected: vec![],
                    });
                } else if let Some(e) = out.last_mut() {
                    e.expected.push(t.to_string());
                }
            }
        } else if t == "```console" {
            in_console = true;
        } else if t.starts_with("```") {
            in_other = true;
        }
    }
    out
}

/// Splits a command line into words: whitespace-separated, single and double quotes group,
/// `#` outside quotes starts a comment.
fn words(cmd: &str) -> Vec<String> {
    let mut v = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut any = false;
    for c in cmd.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => cur.push(c),
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                any = true;
            }
            None if c == '#' && cur.is_empty() && !any => break,
            None if c.is_whitespace() => {
                if any || !cur.is_empty() {
                    v.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            None => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        v.push(cur);
    }
    v
}

/// Collapses runs of whitespace to one space and trims.
fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether `text` matches `pattern`, where `...` in the pattern stands for any text.
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split("...").collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for p in &parts[1..parts.len() - 1] {
        match rest.find(p) {
            Some(i) => rest = &rest[i + p.len()..],
            None => return false,
        }
    }
    true
}

/// Whether the output lines match the expected lines (a line `...` matches any run of lines).
fn lines_match(expected: &[String], actual: &[String]) -> bool {
    match expected.split_first() {
        None => actual.is_empty(),
        Some((e, rest)) if e == "..." => {
            (0..=actual.len()).any(|k| lines_match(rest, &actual[k..]))
        }
        Some((e, rest)) => {
            !actual.is_empty() && glob(e, &actual[0]) && lines_match(rest, &actual[1..])
        }
    }
}

/// The `"key": value` pairs shown in a JSON selection (values as written).
fn json_fields(shown: &str) -> Vec<(String, String)> {
    let mut v = Vec::new();
    let mut i = 0;
    while let Some(k0) = shown[i..].find('"').map(|k| k + i) {
        let Some(k1) = shown[k0 + 1..].find('"').map(|k| k + k0 + 1) else {
            break;
        };
        let after = shown[k1 + 1..].trim_start();
        if !after.starts_with(':') {
            i = k1 + 1;
            continue;
        }
        let key = shown[k0 + 1..k1].to_string();
        let vstart = shown.len() - after.len() + 1;
        let val = shown[vstart..].trim_start();
        let vs = shown.len() - val.len();
        let end = if let Some(body) = val.strip_prefix('"') {
            // A string value: up to its closing quote (no escaped quotes in the README).
            vs + body.find('"').map_or(val.len(), |c| c + 2)
        } else {
            vs + val
                .find(|c: char| c == ',' || c == '}' || c.is_whitespace())
                .unwrap_or(val.len())
        };
        v.push((key, shown[vs..end].to_string()));
        i = end.max(k1 + 1);
    }
    v
}

/// Whether a JSON value matches how the README shows it.
fn json_value_matches(shown: &str, actual: &serde_json::Value) -> bool {
    if let Some(s) = shown.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        return actual.as_str().is_some_and(|a| glob(s, a));
    }
    match (shown.parse::<f64>(), actual.as_f64()) {
        (Ok(want), Some(got)) => {
            let decimals = shown.split_once('.').map_or(0, |(_, d)| {
                d.chars().take_while(char::is_ascii_digit).count()
            });
            let tol = 0.5 * 10f64.powi(-(decimals as i32)) * (1.0 + 1e-9);
            if decimals == 0 && actual.is_i64() {
                got == want
            } else {
                (got - want).abs() <= tol
            }
        }
        _ => serde_json::from_str::<serde_json::Value>(shown).is_ok_and(|v| &v == actual),
    }
}

/// Checks one example; returns a description of the mismatch.
fn check(root: &std::path::Path, e: &Example) -> Result<(), String> {
    let w = words(&e.command);
    let Some(("perfcast", args)) = w.split_first().map(|(c, a)| (c.as_str(), a)) else {
        return Err("a console example must run `perfcast`".into());
    };
    let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("perfcast"))
        .args(args)
        .current_dir(root)
        .output()
        .map_err(|x| x.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(format!(
            "exit {:?}: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let shown = e.expected.join("\n");
    if shown.trim_start().starts_with('{') {
        let v: serde_json::Value =
            serde_json::from_str(&stdout).map_err(|x| format!("output is not JSON ({x})"))?;
        let fields = json_fields(&shown);
        if fields.is_empty() {
            return Err("no \"key\": value shown".into());
        }
        let bad: Vec<String> = fields
            .iter()
            .filter(|(k, s)| !v.get(k).is_some_and(|a| json_value_matches(s, a)))
            .map(|(k, s)| format!("{k}: README shows {s}, output has {}", v[k.as_str()]))
            .collect();
        return if bad.is_empty() {
            Ok(())
        } else {
            Err(bad.join("\n"))
        };
    }
    let exp: Vec<String> = e
        .expected
        .iter()
        .map(|l| squash(l))
        .filter(|l| !l.is_empty())
        .collect();
    let act: Vec<String> = stdout
        .lines()
        .map(squash)
        .filter(|l| !l.is_empty())
        .collect();
    if lines_match(&exp, &act) {
        Ok(())
    } else {
        Err(format!(
            "README shows:\n{}\noutput:\n{stdout}",
            e.expected.join("\n")
        ))
    }
}

#[test]
fn readme_console_examples_are_real_output() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let ex = examples(&readme);
    assert!(ex.len() >= 10, "found only {} console examples", ex.len());
    let failures: Vec<String> = ex
        .iter()
        .filter_map(|e| {
            check(&root, e)
                .err()
                .map(|m| format!("README.md:{}: $ {}\n{m}", e.line, e.command))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} README examples are stale:\n\n{}",
        failures.len(),
        ex.len(),
        failures.join("\n\n")
    );
}

#[test]
fn readme_matcher_rules() {
    assert!(glob("a ... c", "a b b c"));
    assert!(glob("lru,sim,...,0.5", "lru,sim,,36,0.5"));
    assert!(!glob("a ... c", "a b d"));
    assert!(!glob("abc", "abcd"));
    let l = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(lines_match(
        &l(&["h", "...", "z"]),
        &l(&["h", "x", "y", "z"])
    ));
    assert!(!lines_match(&l(&["h", "z"]), &l(&["h", "x", "z"])));
    assert_eq!(
        words("perfcast a 'b c' \"d\" # note"),
        vec!["perfcast", "a", "b c", "d"]
    );
    let f = json_fields("{ ..., \"gamma\": 3, \"note\": \"x, ...\", \"ok\": true, ... }");
    assert_eq!(
        f,
        vec![
            ("gamma".into(), "3".into()),
            ("note".into(), "\"x, ...\"".into()),
            ("ok".into(), "true".into())
        ]
    );
    let j = serde_json::json!(0.5109999999999998);
    assert!(json_value_matches("0.511", &j));
    assert!(!json_value_matches("0.512", &j));
    assert!(!json_value_matches("3", &serde_json::json!(4)));
    assert!(json_value_matches(
        "\"x, ...\"",
        &serde_json::json!("x, y z")
    ));
}
