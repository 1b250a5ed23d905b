//! Link discovery for the crawl: an HTML page is parsed with html5ever
//! (through `scraper`), its `href`/`src` values and `<base href>` collected,
//! and links are resolved with the `url` crate (WHATWG URL rules) against
//! the page's URL as the app sees it (`http[s]://localhost:<container
//! port>/...`). A link is followed when it lands on a published port of
//! this run: a relative link, or an absolute `http`/`https` URL naming a
//! local host (or the probe's host) with the container port or the host
//! port of an endpoint.

use scraper::{Html, Selector};
use url::Url;

use super::spec::Endpoint;

/// `href`/`src` values of an HTML document in document order, and its
/// `<base href>` (when present), which the caller applies with
/// [`page_base`].
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PageLinks {
    pub base: Option<String>,
    pub links: Vec<String>,
}

/// Parses `html` and collects its links (see [`links_of`]).
pub fn extract_links(html: &str) -> PageLinks {
    links_of(&Html::parse_document(html))
}

/// The `href` and `src` attribute values of every element in document order
/// (`href` first when an element has both), and the first `<base href>`.
/// Comments and the text of `<script>`/`<style>` are not markup, so links
/// written there are not found; entities in values are decoded.
pub fn links_of(doc: &Html) -> PageLinks {
    let any = Selector::parse("[href], [src]").expect("a valid selector");
    let mut out = PageLinks::default();
    for el in doc.select(&any) {
        let e = el.value();
        if e.name() == "base" {
            if let Some(h) = e.attr("href") {
                out.base.get_or_insert_with(|| h.to_string());
            }
            continue;
        }
        out.links.extend(
            [e.attr("href"), e.attr("src")]
                .into_iter()
                .flatten()
                .map(str::to_string),
        );
    }
    out
}

/// A same-origin request target: which endpoint (by container port) and the
/// path with its query.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target {
    pub port: u16,
    pub path: String,
}

/// The URL of `path` (path and query) on `ep` as the app sees it: the
/// scheme the port speaks, `localhost` and the container port, like the
/// `Host` header the probe sends. `None` when `path` is not a valid path.
pub fn page_url(ep: &Endpoint, tls: bool, path: &str) -> Option<Url> {
    let scheme = if tls { "https" } else { "http" };
    Url::parse(&format!("{scheme}://localhost:{}{path}", ep.container_port)).ok()
}

/// The URL relative links of a page resolve against: its `<base href>`
/// resolved against the page's own URL, or the page's URL.
pub fn page_base(page: &Url, base_href: Option<&str>) -> Url {
    base_href
        .and_then(|b| page.join(b.trim()).ok())
        .unwrap_or_else(|| page.clone())
}

/// Resolves `link` found on a page whose base URL is `base` into a request
/// target on one of `endpoints`, or `None` for other origins, other schemes,
/// fragment-only and empty links. The fragment is dropped and `.`/`..`
/// segments removed.
pub fn resolve_link(endpoints: &[Endpoint], base: &Url, link: &str) -> Option<Target> {
    let link = link.trim();
    if link.is_empty() || link.starts_with('#') {
        return None;
    }
    let url = base.join(link).ok()?;
    same_origin(endpoints, &url)
}

/// The endpoint and path of an absolute URL, when it points at a published
/// port of this run.
pub fn same_origin(endpoints: &[Endpoint], url: &Url) -> Option<Target> {
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    let host = url.host_str()?.to_ascii_lowercase();
    let port = url.port_or_known_default()?;
    let local = matches!(
        host.as_str(),
        "localhost" | "127.0.0.1" | "0.0.0.0" | "[::1]"
    );
    // The app's own view (container port) first, then the probe's.
    let ep = endpoints
        .iter()
        .filter(|e| local || host == e.host.to_ascii_lowercase())
        .find(|e| e.container_port == port)
        .or_else(|| {
            endpoints
                .iter()
                .filter(|e| local || host == e.host.to_ascii_lowercase())
                .find(|e| e.host_port == port)
        })?;
    let mut path = url.path().to_string();
    if let Some(q) = url.query() {
        path.push('?');
        path.push_str(q);
    }
    Some(Target {
        port: ep.container_port,
        path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints() -> Vec<Endpoint> {
        vec![
            Endpoint::new("127.0.0.1", 32768, 8080),
            Endpoint::new("127.0.0.1", 32769, 8443),
        ]
    }

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
    fn broken_html_does_not_panic_and_keeps_what_is_recoverable() {
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
            "\u{0}<a href=\u{0}>",
        ] {
            let _ = extract_links(s);
        }
        // Unclosed elements and unquoted values, as browsers read them.
        let l = extract_links("<p><a href=/one>one<p><a href=two?x=1&y=2 class=c>two");
        assert_eq!(l.links, vec!["/one", "two?x=1&y=2"]);
        // Entities the old scanner did not know are decoded too.
        let l = extract_links(r#"<a href="/s?q=caf&eacute;&#38;n=1">"#);
        assert_eq!(l.links, vec!["/s?q=café&n=1"]);
    }

    #[test]
    fn resolves_relative_and_same_origin_links() {
        let eps = endpoints();
        let r = |page: &str, link: &str| {
            let base = page_url(&eps[0], false, page).unwrap();
            resolve_link(&eps, &base, link).map(|t| {
                assert_eq!(t.port, 8080, "{link}");
                t.path
            })
        };
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
        assert_eq!(r("/", "mailto:a@b"), None);
        assert_eq!(r("/", "javascript:void(0)"), None);
        assert_eq!(r("/", "#top"), None);
        assert_eq!(r("/", "  "), None);
        assert_eq!(r("/a/b", "c:d/e"), None);
        assert_eq!(r("/a/b", "c/d:e").as_deref(), Some("/a/c/d:e"));
        // Characters a request line cannot carry are percent-encoded.
        assert_eq!(r("/", "/a b?q=x y").as_deref(), Some("/a%20b?q=x%20y"));
        // Dot segments, as the old normalizer removed them.
        assert_eq!(r("/", "/a/./b/../c").as_deref(), Some("/a/c"));
        assert_eq!(r("/", "/../../x").as_deref(), Some("/x"));
        assert_eq!(r("/", "/a/b/..").as_deref(), Some("/a/"));
        assert_eq!(r("/", "/a/..?q=../x").as_deref(), Some("/?q=../x"));
    }

    #[test]
    fn https_links_to_a_published_port_land_on_that_port() {
        let eps = endpoints();
        let base = page_url(&eps[0], false, "/").unwrap();
        let t = |link| resolve_link(&eps, &base, link);
        // Another published port, by the app's view or the probe's.
        assert_eq!(
            t("https://localhost:8443/secure?x=1"),
            Some(Target {
                port: 8443,
                path: "/secure?x=1".into()
            })
        );
        assert_eq!(t("https://127.0.0.1:32769/").map(|t| t.port), Some(8443));
        // The same port named with https (the scheme is the port's own).
        assert_eq!(t("https://localhost:8080/a").map(|t| t.port), Some(8080));
        // https on its default port is not published here.
        assert_eq!(t("https://localhost/"), None);
        // Relative links on an HTTPS page stay on that port.
        let secure = page_url(&eps[1], true, "/dir/page").unwrap();
        assert_eq!(
            resolve_link(&eps, &secure, "next"),
            Some(Target {
                port: 8443,
                path: "/dir/next".into()
            })
        );
    }

    #[test]
    fn base_href_changes_where_relative_links_go() {
        let eps = endpoints();
        let page = page_url(&eps[0], false, "/docs/index.html").unwrap();
        let base = page_base(&page, Some("/app/"));
        assert_eq!(
            resolve_link(&eps, &base, "x").map(|t| t.path).as_deref(),
            Some("/app/x")
        );
        // A base on another origin takes relative links with it.
        let base = page_base(&page, Some("https://cdn.example.com/"));
        assert_eq!(resolve_link(&eps, &base, "x"), None);
        // A broken base is ignored.
        let base = page_base(&page, Some("http://[::"));
        assert_eq!(
            resolve_link(&eps, &base, "y").map(|t| t.path).as_deref(),
            Some("/docs/y")
        );
    }
}
