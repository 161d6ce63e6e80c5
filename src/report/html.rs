//! `report.html`: the whole report of a scenario in one self-contained page.
//!
//! The page is `summary.md` rendered to HTML (CommonMark with tables, by `pulldown-cmark`), with
//! each plot's SVG inlined where `summary.md` links its PNG, a provenance table at the top
//! (scenario, seed, perfcast version and commit, date) and the DejaVu Sans font the plots were
//! laid out with embedded as a `data:` URI. It names no external resource at all: no `http:` or
//! `https:` URL, no script or style from elsewhere, so it reads the same offline and on a machine
//! without fonts. Relative links to the report's own CSV, PNG and SVG files stay (they sit beside
//! it). A small inline script records, for the headless-browser test, how many plots rendered
//! with a nonzero size and whether the embedded font loaded (`data-*` attributes of `<body>`);
//! it changes nothing a reader sees.

use pulldown_cmark::{CowStr, Event, Options, Parser, Tag, TagEnd};
use std::fmt::Write as _;

/// The file name of the page inside a report directory.
pub const FILE_NAME: &str = "report.html";

/// The font family name the page gives the embedded font.
const FONT_FAMILY: &str = "perfcast-sans";

/// Who made the report, from what, when: the page's provenance table.
#[derive(Debug, Clone)]
pub struct Provenance {
    /// Scenario name.
    pub scenario: String,
    /// Base seed of the run.
    pub seed: u64,
    /// Studies in the scenario.
    pub studies: usize,
    /// Grid points over all studies.
    pub points: usize,
    /// UTC date and time the report was written (ISO 8601).
    pub date: String,
    /// Wall-clock evaluation time, seconds.
    pub elapsed_s: f64,
}

/// The line of a plot in `summary.md` that the page replaces with the plot itself.
pub fn placeholder(stem: &str) -> String {
    format!("<!--perfcast-plot:{stem}-->")
}

/// The perfcast version and the git commit it was built from (`unknown` outside a git checkout).
pub fn version() -> String {
    format!(
        "{} (commit {})",
        env!("CARGO_PKG_VERSION"),
        option_env!("PERFCAST_COMMIT").unwrap_or("unknown")
    )
}

/// Renders the page. `md` is the report's Markdown in which each plot is a paragraph holding
/// only [`placeholder`]`(stem)`; `plots` are (stem, SVG text) in the order they appear.
pub fn page(md: &str, plots: &[(String, String)], prov: &Provenance) -> String {
    let mut body = markdown_to_html(md);
    for (stem, svg) in plots {
        let figure = format!(
            "<figure class=\"plot\" id=\"plot-{id}\">\n{svg}\n<figcaption>{stem}: \
             <a href=\"{stem}.png\">PNG</a> · <a href=\"{stem}.svg\">SVG</a></figcaption>\n</figure>",
            id = escape(stem),
            svg = inline_svg(svg),
            stem = escape(stem),
        );
        body = body.replace(&placeholder(stem), &figure);
    }
    let title = format!("perfcast report: {}", prov.scenario);
    let mut s = String::with_capacity(body.len() + 1_100_000);
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>\n@font-face {{ font-family: \"{FONT_FAMILY}\"; \
         src: url(\"data:font/ttf;base64,",
        escape(&title)
    );
    base64_into(super::plot::FONT, &mut s);
    let _ = write!(
        s,
        "\") format(\"truetype\"); }}\n{CSS}</style>\n</head>\n<body>\n"
    );
    // The provenance table goes right under the title (the first heading), else first.
    let split = body.find("</h1>\n").map_or(0, |i| i + "</h1>\n".len());
    s.push_str(&body[..split]);
    let _ = writeln!(s, "<table class=\"provenance\">");
    let row = |s: &mut String, class: &str, k: &str, v: &str| {
        let _ = writeln!(
            s,
            "<tr{class}><th>{k}</th><td>{}</td></tr>",
            escape(v),
            class = if class.is_empty() {
                String::new()
            } else {
                format!(" class=\"{class}\"")
            }
        );
    };
    row(&mut s, "", "scenario", &prov.scenario);
    row(&mut s, "", "seed", &prov.seed.to_string());
    row(&mut s, "", "perfcast", &version());
    row(
        &mut s,
        "",
        "studies",
        &format!("{} studies, {} points", prov.studies, prov.points),
    );
    // The two rows that differ between two runs of the same scenario and seed.
    row(&mut s, "varies", "date (UTC)", &prov.date);
    row(
        &mut s,
        "varies",
        "evaluated in",
        &format!("{:.2} s", prov.elapsed_s),
    );
    let _ = writeln!(s, "</table>");
    s.push_str(&body[split..]);
    let _ = write!(s, "<script>\n{SCRIPT}</script>\n</body>\n</html>\n");
    s
}

/// The anchor GitHub and most Markdown renderers give `heading`: lower case, spaces to `-`,
/// other punctuation dropped.
pub(crate) fn anchor(heading: &str) -> String {
    heading
        .chars()
        .filter_map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '_' {
                Some(c.to_ascii_lowercase())
            } else if c == ' ' {
                Some('-')
            } else {
                None
            }
        })
        .collect()
}

/// Markdown → HTML, headings with the anchors `summary.md`'s links use.
fn markdown_to_html(md: &str) -> String {
    let events: Vec<Event> = Parser::new_ext(md, Options::ENABLE_TABLES).collect();
    let mut out = Vec::with_capacity(events.len());
    for (i, e) in events.iter().enumerate() {
        match e {
            Event::Start(Tag::Heading {
                level,
                id: None,
                classes,
                attrs,
            }) => {
                let mut text = String::new();
                for e in &events[i + 1..] {
                    match e {
                        Event::End(TagEnd::Heading(_)) => break,
                        Event::Text(t) | Event::Code(t) => text.push_str(t),
                        _ => {}
                    }
                }
                out.push(Event::Start(Tag::Heading {
                    level: *level,
                    id: Some(CowStr::from(anchor(&text))),
                    classes: classes.clone(),
                    attrs: attrs.clone(),
                }));
            }
            e => out.push(e.clone()),
        }
    }
    let mut html = String::with_capacity(md.len() * 2);
    pulldown_cmark::html::push_html(&mut html, out.into_iter());
    html
}

/// An SVG document as an element of the page: without the XML prolog and without the namespace
/// attribute (implied in HTML, and a URL the page should not contain).
fn inline_svg(svg: &str) -> String {
    let svg = svg.trim();
    let svg = match svg.find("<svg") {
        Some(i) => &svg[i..],
        None => svg,
    };
    svg.replacen(" xmlns=\"http://www.w3.org/2000/svg\"", "", 1)
        .replacen(" xmlns:xlink=\"http://www.w3.org/1999/xlink\"", "", 1)
}

/// Escapes text for HTML content and attribute values.
fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// Standard base64 (RFC 4648, with padding) of `bytes`, appended to `out`.
fn base64_into(bytes: &[u8], out: &mut String) {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    out.reserve(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for k in 0..4 {
            if k <= c.len() {
                out.push(A[(n >> (18 - 6 * k)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
}

const CSS: &str = "\
body { font-family: \"perfcast-sans\", sans-serif; max-width: 1200px; margin: 1.5em auto; \
padding: 0 1em; color: #1a1a1a; line-height: 1.45; }
svg text { font-family: \"perfcast-sans\", sans-serif; }
h1 { font-size: 1.7em; } h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.8em 0; display: block; overflow-x: auto; \
font-size: 0.88em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: right; white-space: nowrap; }
th { background: #f2f2f2; } td:first-child, th:first-child { text-align: left; }
table.provenance th, table.provenance td { text-align: left; }
code { background: #f4f4f4; padding: 0 0.2em; }
figure.plot { margin: 1em 0; }
figure.plot svg { display: block; max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.85em; color: #555; }
";

/// Marks on `<body>`, once the page and its font loaded: `data-plots` (inline `<svg>` elements),
/// `data-plots-rendered` (those with a nonzero size and text), `data-font` (`loaded` when the
/// embedded font is in use), `data-external` (resources fetched other than `data:` URIs).
const SCRIPT: &str = "\
addEventListener('load', function () {
  document.fonts.ready.then(function () {
    var svgs = Array.prototype.slice.call(document.querySelectorAll('svg'));
    var ok = svgs.filter(function (s) {
      var r = s.getBoundingClientRect();
      return r.width > 0 && r.height > 0 && s.querySelectorAll('text').length > 0;
    });
    var ext = performance.getEntriesByType('resource').filter(function (e) {
      return e.name.indexOf('data:') !== 0;
    });
    var b = document.body;
    b.setAttribute('data-plots', String(svgs.length));
    b.setAttribute('data-plots-rendered', String(ok.length));
    b.setAttribute('data-font', document.fonts.check('14px \"perfcast-sans\"') ? 'loaded' : 'missing');
    b.setAttribute('data-external', String(ext.length));
  });
});
";

#[cfg(test)]
mod tests {
    use super::*;

    fn prov() -> Provenance {
        Provenance {
            scenario: "demo <1>".into(),
            seed: 7,
            studies: 1,
            points: 3,
            date: "2026-11-30T00:00:00Z".into(),
            elapsed_s: 0.5,
        }
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            let mut s = String::new();
            base64_into(i.as_bytes(), &mut s);
            assert_eq!(s, o, "{i:?}");
        }
    }

    #[test]
    fn page_inlines_plots_tables_anchors_and_no_urls() {
        let md = format!(
            "# perfcast report: demo\n\n## study-a\n\nsee [errors](#measured-error-specdec)\n\n\
             | a | b |\n| --- | --- |\n| 1 | 2 GB |\n\n{}\n\n### Measured error: specdec\n\ntext\n",
            placeholder("study-a-plot")
        );
        let svg = "<?xml version=\"1.0\"?>\n<svg width=\"10\" height=\"10\" viewBox=\"0 0 10 10\" \
                   xmlns=\"http://www.w3.org/2000/svg\">\n<text x=\"1\" y=\"1\">t</text>\n</svg>";
        let p = page(&md, &[("study-a-plot".into(), svg.into())], &prov());
        assert!(p.starts_with("<!DOCTYPE html>"));
        let (h1, prov_table) = (
            p.find("<h1").unwrap(),
            p.find("class=\"provenance\"").unwrap(),
        );
        assert!(
            h1 < prov_table && prov_table < p.find("<h2").unwrap(),
            "provenance under the title"
        );
        assert!(p.contains("<table>") && p.contains("<td>2 GB</td>"), "{p}");
        assert!(p.contains("<figure class=\"plot\" id=\"plot-study-a-plot\">\n<svg width"));
        assert!(!p.contains("perfcast-plot:"), "placeholder left");
        assert!(p.contains("<h3 id=\"measured-error-specdec\">"), "anchor");
        assert!(
            p.contains("<td>demo &lt;1&gt;</td>"),
            "escaped scenario name"
        );
        assert!(
            p.contains("data:font/ttf;base64,AAEAAA"),
            "embedded TrueType font"
        );
        assert!(!p.contains("http:") && !p.contains("https:") && !p.contains("<?xml"));
        assert_eq!(p.matches("class=\"varies\"").count(), 2);
    }
}
