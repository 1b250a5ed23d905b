//! Link discovery for the crawl: a small HTML attribute scanner (enough to
//! find `href`/`src` values; not a full HTML parser) and same-origin URL
//! resolution against the page they came from.

/// `href`/`src` values of an HTML document in document order, with the
/// document's `<base href>` (when present) applied by [`resolve_link`]'s caller.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PageLinks {
    pub base: Option<String>,
    pub links: Vec<String>,
}

/// Scans `html` for tags and collects `href` and `src` attribute values.
/// Comments are skipped, and so is the text of `<script>`/`<style>` elements
/// (their own `src` still counts).
pub fn extract_links(html: &str) -> PageLinks {
    let mut out = PageLinks::default();
    let bytes = html.as_bytes();
    let mut i = 0;
    while let Some(off) = html[i..].find('<') {
        i += off;
        if html[i..].starts_with("<!--") {
            i = html[i + 4..]
                .find("-->")
                .map_or(bytes.len(), |e| i + 4 + e + 3);
            continue;
        }
        let Some((tag, end)) = parse_tag(html, i) else {
            i += 1;
            continue;
        };
        i = end;
        if tag.closing {
            continue;
        }
        for (name, value) in &tag.attrs {
            if name == "href" && tag.name == "base" {
                out.base.get_or_insert_with(|| value.clone());
            } else if name == "href" || name == "src" {
                out.links.push(value.clone());
            }
        }
        if tag.name == "script" || tag.name == "style" {
            // Raw text: skip to the matching end tag.
            let close = format!("</{}", tag.name);
            i = find_ascii_ci(html, i, &close).unwrap_or(bytes.len());
        }
    }
    out
}

struct Tag {
    name: String,
    closing: bool,
    attrs: Vec<(String, String)>,
}

/// Parses the tag starting at `html[start] == '<'`; returns it and the index
/// after its `>`. `None` when this `<` does not open a tag.
fn parse_tag(html: &str, start: usize) -> Option<(Tag, usize)> {
    let b = html.as_bytes();
    let mut i = start + 1;
    let closing = b.get(i) == Some(&b'/');
    if closing {
        i += 1;
    }
    let name_start = i;
    while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'-') {
        i += 1;
    }
    if i == name_start {
        return None;
    }
    let name = html[name_start..i].to_ascii_lowercase();
    let mut attrs = Vec::new();
    loop {
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
            i += 1;
        }
        if i >= b.len() {
            return Some((
                Tag {
                    name,
                    closing,
                    attrs,
                },
                b.len(),
            ));
        }
        if b[i] == b'>' {
            return Some((
                Tag {
                    name,
                    closing,
                    attrs,
                },
                i + 1,
            ));
        }
        let an_start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && !matches!(b[i], b'=' | b'>' | b'/') {
            i += 1;
        }
        let attr = html[an_start..i].to_ascii_lowercase();
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if b.get(i) != Some(&b'=') {
            if i == an_start {
                i += 1; // a stray character: step over it
            }
            attrs.push((attr, String::new()));
            continue;
        }
        i += 1;
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let value = match b.get(i) {
            Some(&q @ (b'"' | b'\'')) => {
                let vs = i + 1;
                let ve = html[vs..].find(q as char).map_or(b.len(), |e| vs + e);
                i = (ve + 1).min(b.len());
                &html[vs..ve]
            }
            _ => {
                let vs = i;
                while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'>' {
                    i += 1;
                }
                &html[vs..i]
            }
        };
        attrs.push((attr, decode_entities(value)));
    }
}

fn find_ascii_ci(hay: &str, from: usize, needle: &str) -> Option<usize> {
    let h = hay.as_bytes();
    let n = needle.as_bytes();
    (from..h.len().saturating_sub(n.len() - 1)).find(|&i| h[i..i + n.len()].eq_ignore_ascii_case(n))
}

/// The few entities that show up in URLs.
fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    s.replace("&amp;", "&")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
}

/// Where a page was served from, for the same-origin check: links may name
/// the probe's host port or, when the app builds absolute URLs from its own
/// view, the container port.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    pub host: &'a str,
    pub host_port: u16,
    pub container_port: u16,
}

impl Origin<'_> {
    fn matches(&self, authority: &str) -> bool {
        let authority = authority.rsplit('@').next().unwrap_or(authority);
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !p.contains(']') => match p.parse::<u16>() {
                Ok(p) => (h, p),
                Err(_) => return false,
            },
            _ => (authority, 80),
        };
        let host = host.to_ascii_lowercase();
        let local = matches!(
            host.as_str(),
            "localhost" | "127.0.0.1" | "0.0.0.0" | "[::1]"
        );
        (local || host == self.host.to_ascii_lowercase())
            && (port == self.host_port || port == self.container_port)
    }
}

/// Resolves `link` found on the page at `page` (a path with optional query)
/// into a same-origin path+query, or `None` for other origins, other schemes,
/// fragments-only and empty links. The fragment is dropped and `.`/`..`
/// segments removed.
pub fn resolve_link(origin: &Origin<'_>, page: &str, link: &str) -> Option<String> {
    let link = link.trim();
    let link = link.split('#').next().unwrap_or("");
    if link.is_empty() {
        return None;
    }
    let rest = if let Some(r) = strip_prefix_ci(link, "http://") {
        Some(r)
    } else if has_scheme(link) {
        return None;
    } else {
        link.strip_prefix("//")
    };
    let target = match rest {
        Some(r) => {
            let (authority, path) = match r.find(['/', '?']) {
                Some(p) => (&r[..p], &r[p..]),
                None => (r, "/"),
            };
            if !origin.matches(authority) {
                return None;
            }
            if path.starts_with('?') {
                format!("/{path}")
            } else {
                path.to_string()
            }
        }
        None if link.starts_with('/') => link.to_string(),
        None if link.starts_with('?') => {
            format!("{}{link}", page.split('?').next().unwrap_or("/"))
        }
        None => {
            let page_path = page.split('?').next().unwrap_or("/");
            let dir = &page_path[..page_path.rfind('/').map_or(0, |i| i + 1)];
            let dir = if dir.is_empty() { "/" } else { dir };
            format!("{dir}{link}")
        }
    };
    Some(normalize_path(&target))
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    (s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix))
        .then(|| &s[prefix.len()..])
}

/// `mailto:`, `javascript:`, `https:` ...: a scheme before any `/`, `?`.
fn has_scheme(link: &str) -> bool {
    match link.find(':') {
        Some(c) => {
            let scheme = &link[..c];
            !scheme.is_empty()
                && scheme.as_bytes()[0].is_ascii_alphabetic()
                && scheme
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        }
        None => false,
    }
}

/// Removes `.` and `..` segments of the path part; keeps the query as is.
pub fn normalize_path(target: &str) -> String {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let mut segs: Vec<&str> = Vec::new();
    let parts: Vec<&str> = path.split('/').skip(1).collect();
    for (i, seg) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        match *seg {
            "." => {
                if last {
                    segs.push("");
                }
            }
            ".." => {
                segs.pop();
                if last {
                    segs.push("");
                }
            }
            s => segs.push(s),
        }
    }
    let mut out = format!("/{}", segs.join("/"));
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGIN: Origin<'static> = Origin {
        host: "127.0.0.1",
        host_port: 32768,
        container_port: 8080,
    };

    #[test]
    fn finds_href_and_src_in_order_and_skips_comments_and_script_text() {
        let html = r#"<!DOCTYPE html><html><head>
            <link rel=stylesheet href="/static/app.css">
            <script src='/static/app.js'>var x = "<a href='/not-a-link'>";</script>
            <style>a[href="/nope"] {}</style>
            </head><body>
            <!-- <a href="/commented"> -->
            <A HREF=about.html>About</A>
            <img alt="x > y" src="img/logo.png?v=1&amp;w=2"/>
            <a href = "/items?id=1#top">one</a>
            <a name=anchor>no href</a>
            </body></html>"#;
        let links = extract_links(html);
        assert_eq!(
            links.links,
            vec![
                "/static/app.css",
                "/static/app.js",
                "about.html",
                "img/logo.png?v=1&w=2",
                "/items?id=1#top"
            ]
        );
        assert_eq!(links.base, None);
    }

    #[test]
    fn base_href_is_reported_separately() {
        let links = extract_links(r#"<base href="/app/"><a href="x">x</a>"#);
        assert_eq!(links.base.as_deref(), Some("/app/"));
        assert_eq!(links.links, vec!["x"]);
    }

    #[test]
    fn broken_html_does_not_panic() {
        for s in [
            "<",
            "<a",
            "<a href=",
            "<a href='x",
            "<<>>",
            "<!-- x",
            "<script>",
            "< a>",
            "<a =x>",
        ] {
            let _ = extract_links(s);
        }
    }

    #[test]
    fn resolves_relative_and_same_origin_links() {
        let r = |page, link| resolve_link(&ORIGIN, page, link);
        assert_eq!(r("/", "about.html").as_deref(), Some("/about.html"));
        assert_eq!(r("/docs/a.html", "b.html").as_deref(), Some("/docs/b.html"));
        assert_eq!(r("/docs/a.html", "../c.html").as_deref(), Some("/c.html"));
        assert_eq!(r("/docs/a.html", "./").as_deref(), Some("/docs/"));
        assert_eq!(
            r("/docs/a.html?x=1", "?page=2").as_deref(),
            Some("/docs/a.html?page=2")
        );
        assert_eq!(r("/", "/x/../y#frag").as_deref(), Some("/y"));
        assert_eq!(r("/", "http://127.0.0.1:32768/p").as_deref(), Some("/p"));
        assert_eq!(
            r("/", "http://localhost:8080/q?a=b").as_deref(),
            Some("/q?a=b")
        );
        assert_eq!(r("/", "//localhost:8080").as_deref(), Some("/"));
        assert_eq!(r("/", "HTTP://LOCALHOST:8080/Up").as_deref(), Some("/Up"));
        assert_eq!(r("/", "http://example.com/"), None);
        assert_eq!(r("/", "http://localhost:9999/"), None);
        assert_eq!(r("/", "http://localhost/"), None);
        assert_eq!(r("/", "https://localhost:8080/"), None);
        assert_eq!(r("/", "mailto:a@b"), None);
        assert_eq!(r("/", "javascript:void(0)"), None);
        assert_eq!(r("/", "#top"), None);
        assert_eq!(r("/", "  "), None);
        assert_eq!(r("/a/b", "c:d/e"), None);
        assert_eq!(r("/a/b", "c/d:e").as_deref(), Some("/a/c/d:e"));
    }

    #[test]
    fn normalizes_dot_segments() {
        assert_eq!(normalize_path("/a/./b/../c"), "/a/c");
        assert_eq!(normalize_path("/../../x"), "/x");
        assert_eq!(normalize_path("/a/b/.."), "/a/");
        assert_eq!(normalize_path("/a/..?q=../x"), "/?q=../x");
    }
}
