//! HTML forms found by the crawl, and their submission as a browser would
//! send it: a GET form becomes the action's query string, a POST form an
//! `application/x-www-form-urlencoded`, `multipart/form-data` (when the form
//! says so) or `text/plain` body. Apps parse each content type with a
//! different module, and a parser nothing exercised is missing from the
//! slim image.
//!
//! Field values are what a user who accepts every default and fills every
//! empty field would send: `value` attributes, the selected (or first)
//! `<option>`, checked boxes and radios (a required group gets its first
//! choice), `<textarea>` text, a small placeholder by input type for empty
//! fields, a small text file for `type=file`, and the first submit button's
//! own name and value. Multipart boundaries are derived from the content, so
//! an original and a slim run send identical bytes.

use scraper::{ElementRef, Html, Selector};
use sha2::{Digest, Sha256};
use url::Url;
use url::form_urlencoded;

use super::links::{Target, same_origin};
use super::spec::Endpoint;

/// How a POST form encodes its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enctype {
    UrlEncoded,
    Multipart,
    TextPlain,
}

impl Enctype {
    fn parse(s: Option<&str>) -> Enctype {
        match s.map(|s| s.trim().to_ascii_lowercase()).as_deref() {
            Some("multipart/form-data") => Enctype::Multipart,
            Some("text/plain") => Enctype::TextPlain,
            _ => Enctype::UrlEncoded,
        }
    }
}

/// A value a form sends for one name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldValue {
    Text(String),
    /// An `<input type=file>`: the file the probe "chooses".
    File {
        filename: String,
        content_type: String,
        data: String,
    },
}

/// A form as the submitter would send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Form {
    /// `GET` or `POST`.
    pub method: String,
    /// The action as written (`None` or empty: the page itself).
    pub action: Option<String>,
    pub enctype: Enctype,
    /// Names and values in document order (a name may repeat).
    pub fields: Vec<(String, FieldValue)>,
}

/// The file sent for `<input type=file>`.
pub const PROBE_FILE_NAME: &str = "slimd-probe.txt";
const PROBE_FILE_DATA: &str = "slimd probe upload\n";

fn sel(s: &str) -> Selector {
    Selector::parse(s).expect("a valid selector")
}

/// The forms of a parsed page that a browser could submit (`method=dialog`
/// forms are not sent anywhere and are left out), in document order.
pub fn forms_of(doc: &Html) -> Vec<Form> {
    let forms: Vec<ElementRef<'_>> = doc.select(&sel("form")).collect();
    let controls: Vec<ElementRef<'_>> = doc
        .select(&sel("input, select, textarea, button"))
        .collect();
    let mut out = Vec::new();
    for form in &forms {
        let owned: Vec<ElementRef<'_>> = controls
            .iter()
            .copied()
            .filter(|c| owner(c, &forms).is_some_and(|f| f == *form))
            .collect();
        if let Some(f) = build_form(form, &owned) {
            out.push(f);
        }
    }
    out
}

/// The form a control belongs to: the one its `form` attribute names, or
/// its nearest `<form>` ancestor.
fn owner<'a>(control: &ElementRef<'a>, forms: &[ElementRef<'a>]) -> Option<ElementRef<'a>> {
    if let Some(id) = control.value().attr("form") {
        return forms
            .iter()
            .find(|f| f.value().attr("id") == Some(id))
            .copied();
    }
    control
        .ancestors()
        .filter_map(ElementRef::wrap)
        .find(|a| a.value().name() == "form")
}

fn disabled(control: &ElementRef<'_>) -> bool {
    control.value().attr("disabled").is_some()
        || control
            .ancestors()
            .filter_map(ElementRef::wrap)
            .any(|a| a.value().name() == "fieldset" && a.value().attr("disabled").is_some())
}

fn build_form(form: &ElementRef<'_>, controls: &[ElementRef<'_>]) -> Option<Form> {
    let f = form.value();
    let mut method = f.attr("method").map(|m| m.trim().to_ascii_lowercase());
    let mut action = f.attr("action").map(str::to_string);
    let mut enctype = f.attr("enctype");
    let mut fields = Vec::new();
    let mut submitter_seen = false;
    // Radio groups: (name, one is checked, the first value, one is required).
    let mut radios: Vec<(String, bool, String, bool)> = Vec::new();
    for c in controls {
        if disabled(c) {
            continue;
        }
        let e = c.value();
        let name = e.attr("name").unwrap_or("").to_string();
        match e.name() {
            "input" => {
                let ty = e.attr("type").unwrap_or("text").trim().to_ascii_lowercase();
                match ty.as_str() {
                    "submit" | "image" => {
                        if submitter_seen {
                            continue;
                        }
                        submitter_seen = true;
                        override_from_submitter(c, &mut method, &mut action, &mut enctype);
                        if ty == "image" {
                            let prefix = if name.is_empty() {
                                String::new()
                            } else {
                                format!("{name}.")
                            };
                            fields.push((format!("{prefix}x"), FieldValue::Text("0".into())));
                            fields.push((format!("{prefix}y"), FieldValue::Text("0".into())));
                        } else if !name.is_empty() {
                            let v = e.attr("value").unwrap_or("Submit");
                            fields.push((name, FieldValue::Text(v.into())));
                        }
                    }
                    "button" | "reset" => {}
                    _ if name.is_empty() => {}
                    "checkbox" => {
                        if e.attr("checked").is_some() || e.attr("required").is_some() {
                            let v = e.attr("value").unwrap_or("on");
                            fields.push((name, FieldValue::Text(v.into())));
                        }
                    }
                    "radio" => {
                        let v = e.attr("value").unwrap_or("on").to_string();
                        let checked = e.attr("checked").is_some();
                        let required = e.attr("required").is_some();
                        match radios.iter_mut().find(|g| g.0 == name) {
                            Some(g) => {
                                g.3 |= required;
                                if checked && !g.1 {
                                    g.1 = true;
                                    fields.push((name, FieldValue::Text(v)));
                                }
                            }
                            None => {
                                if checked {
                                    fields.push((name.clone(), FieldValue::Text(v.clone())));
                                }
                                radios.push((name, checked, v, required));
                            }
                        }
                    }
                    "file" => fields.push((
                        name,
                        FieldValue::File {
                            filename: PROBE_FILE_NAME.into(),
                            content_type: "text/plain".into(),
                            data: PROBE_FILE_DATA.into(),
                        },
                    )),
                    "hidden" => {
                        let v = if name.eq_ignore_ascii_case("_charset_") {
                            "UTF-8"
                        } else {
                            e.attr("value").unwrap_or("")
                        };
                        fields.push((name, FieldValue::Text(v.into())));
                    }
                    _ => {
                        let v = e.attr("value").unwrap_or("");
                        let v = if v.is_empty() {
                            placeholder(&ty, c)
                        } else {
                            v.to_string()
                        };
                        fields.push((name, FieldValue::Text(fit_length(v, c))));
                    }
                }
            }
            "button" => {
                let ty = e
                    .attr("type")
                    .unwrap_or("submit")
                    .trim()
                    .to_ascii_lowercase();
                if ty != "submit" || submitter_seen {
                    continue;
                }
                submitter_seen = true;
                override_from_submitter(c, &mut method, &mut action, &mut enctype);
                if !name.is_empty() {
                    let v = e.attr("value").unwrap_or("");
                    fields.push((name, FieldValue::Text(v.into())));
                }
            }
            "select" if !name.is_empty() => {
                let options: Vec<ElementRef<'_>> = c
                    .select(&sel("option"))
                    .filter(|o| o.value().attr("disabled").is_none())
                    .collect();
                let value = |o: &ElementRef<'_>| match o.value().attr("value") {
                    Some(v) => v.to_string(),
                    None => collapse_whitespace(&o.text().collect::<String>()),
                };
                let selected: Vec<&ElementRef<'_>> = options
                    .iter()
                    .filter(|o| o.value().attr("selected").is_some())
                    .collect();
                if e.attr("multiple").is_some() {
                    for o in selected {
                        fields.push((name.clone(), FieldValue::Text(value(o))));
                    }
                } else if let Some(o) = selected.last().copied().or(options.first()) {
                    fields.push((name, FieldValue::Text(value(o))));
                }
            }
            "textarea" if !name.is_empty() => {
                let text: String = c.text().collect();
                let text = if text.is_empty() {
                    "probe text".to_string()
                } else {
                    text
                };
                fields.push((name, FieldValue::Text(fit_length(text, c))));
            }
            _ => {}
        }
    }
    // A required radio group with nothing checked: a user picks the first.
    for (name, checked, first, required) in radios {
        if !checked && required {
            fields.push((name, FieldValue::Text(first)));
        }
    }
    let method = match method.as_deref() {
        Some("post") => "POST",
        Some("dialog") => return None,
        _ => "GET",
    };
    Some(Form {
        method: method.into(),
        action,
        enctype: Enctype::parse(enctype),
        fields,
    })
}

/// `formaction`, `formmethod` and `formenctype` of the button that submits.
fn override_from_submitter<'a>(
    submitter: &ElementRef<'a>,
    method: &mut Option<String>,
    action: &mut Option<String>,
    enctype: &mut Option<&'a str>,
) {
    let e = submitter.value();
    if let Some(m) = e.attr("formmethod") {
        *method = Some(m.trim().to_ascii_lowercase());
    }
    if let Some(a) = e.attr("formaction") {
        *action = Some(a.to_string());
    }
    if let Some(t) = e.attr("formenctype") {
        *enctype = Some(t);
    }
}

/// A value for an empty field of this input type, as a user would type.
fn placeholder(ty: &str, input: &ElementRef<'_>) -> String {
    let num = |name| {
        input
            .value()
            .attr(name)
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    let show = |x: f64| {
        if x.fract() == 0.0 && x.abs() < 1e15 {
            format!("{}", x as i64)
        } else {
            format!("{x}")
        }
    };
    match ty {
        "email" => "probe@example.com".into(),
        "url" => "http://example.com/".into(),
        "tel" => "5550100".into(),
        "password" => "probe-password".into(),
        "date" => "2024-01-01".into(),
        "time" => "12:00".into(),
        "datetime-local" => "2024-01-01T12:00".into(),
        "month" => "2024-01".into(),
        "week" => "2024-W01".into(),
        "color" => "#000000".into(),
        "number" => {
            let v = num("min").unwrap_or(1.0);
            show(num("max").map_or(v, |m| v.min(m)))
        }
        "range" => {
            // A browser's default: the middle of the range.
            let (lo, hi) = (num("min").unwrap_or(0.0), num("max").unwrap_or(100.0));
            show(if hi < lo {
                lo
            } else {
                (lo + (hi - lo) / 2.0).floor()
            })
        }
        _ => "probe".into(),
    }
}

/// Pads to `minlength` and cuts to `maxlength` (in characters).
fn fit_length(mut v: String, control: &ElementRef<'_>) -> String {
    let attr = |n| {
        control
            .value()
            .attr(n)
            .and_then(|v| v.trim().parse::<usize>().ok())
    };
    if let Some(min) = attr("minlength") {
        let have = v.chars().count();
        if have < min {
            v.extend(std::iter::repeat_n('x', min - have));
        }
    }
    if let Some(max) = attr("maxlength")
        && let Some((i, _)) = v.char_indices().nth(max)
    {
        v.truncate(i);
    }
    v
}

fn collapse_whitespace(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// What submitting a form sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormRequest {
    pub method: String,
    pub target: Target,
    /// `Content-Type` of the body (POST only).
    pub content_type: Option<String>,
    pub body: Option<String>,
}

/// Why a form was not submitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormSkip {
    #[error("its action {0:?} is not on a published port of the app")]
    OtherOrigin(String),
    #[error("its body would be {0} bytes (limit {1})")]
    TooLarge(usize, usize),
}

/// The request a browser sends for `form` found on the page at `page` whose
/// base URL is `base`; `None` when the action leaves the app's ports or
/// the body exceeds `max_body`.
pub fn submission(
    form: &Form,
    page: &Url,
    base: &Url,
    endpoints: &[Endpoint],
    max_body: usize,
) -> Result<FormRequest, FormSkip> {
    let mut url = match form.action.as_deref().map(str::trim) {
        None | Some("") => page.clone(),
        Some(a) => base
            .join(a)
            .map_err(|_| FormSkip::OtherOrigin(a.to_string()))?,
    };
    url.set_fragment(None);
    let text_fields = || {
        form.fields.iter().map(|(n, v)| match v {
            FieldValue::Text(t) => (n.as_str(), normalize_newlines(t)),
            // Without multipart a browser sends the file's name only.
            FieldValue::File { filename, .. } => (n.as_str(), filename.clone()),
        })
    };
    let (content_type, body) = if form.method == "GET" {
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(text_fields())
            .finish();
        url.set_query(Some(&query));
        (None, None)
    } else {
        match form.enctype {
            Enctype::UrlEncoded => (
                Some("application/x-www-form-urlencoded".to_string()),
                Some(
                    form_urlencoded::Serializer::new(String::new())
                        .extend_pairs(text_fields())
                        .finish(),
                ),
            ),
            Enctype::TextPlain => {
                let body: String = text_fields().map(|(n, v)| format!("{n}={v}\r\n")).collect();
                (Some("text/plain".to_string()), Some(body))
            }
            Enctype::Multipart => {
                let (boundary, body) = multipart(&form.fields);
                (
                    Some(format!("multipart/form-data; boundary={boundary}")),
                    Some(body),
                )
            }
        }
    };
    let len = body.as_ref().map_or(url.as_str().len(), String::len);
    if len > max_body {
        return Err(FormSkip::TooLarge(len, max_body));
    }
    let target =
        same_origin(endpoints, &url).ok_or_else(|| FormSkip::OtherOrigin(url.to_string()))?;
    Ok(FormRequest {
        method: form.method.clone(),
        target,
        content_type,
        body,
    })
}

/// Line breaks as a browser submits them: CRLF.
fn normalize_newlines(s: &str) -> String {
    s.replace("\r\n", "\n")
        .replace('\r', "\n")
        .replace('\n', "\r\n")
}

/// A `multipart/form-data` body and its boundary. The boundary is derived
/// from the fields (the same form gives the same bytes in every run) and
/// checked against them.
pub fn multipart(fields: &[(String, FieldValue)]) -> (String, String) {
    let mut h = Sha256::new();
    for (n, v) in fields {
        h.update(n.as_bytes());
        h.update([0]);
        match v {
            FieldValue::Text(t) => h.update(t.as_bytes()),
            FieldValue::File { filename, data, .. } => {
                h.update(filename.as_bytes());
                h.update(data.as_bytes());
            }
        }
        h.update([0]);
    }
    let mut seed = h.finalize().to_vec();
    let boundary = loop {
        let b = format!("----slimdProbeBoundary{}", hex::encode(&seed[..8]));
        let clash = fields.iter().any(|(n, v)| {
            n.contains(&b)
                || match v {
                    FieldValue::Text(t) => t.contains(&b),
                    FieldValue::File { filename, data, .. } => {
                        filename.contains(&b) || data.contains(&b)
                    }
                }
        });
        if !clash {
            break b;
        }
        seed = Sha256::digest(&seed).to_vec();
    };
    let quote = |s: &str| {
        s.replace('"', "%22")
            .replace('\r', "%0D")
            .replace('\n', "%0A")
    };
    let mut body = String::new();
    for (n, v) in fields {
        body.push_str(&format!("--{boundary}\r\n"));
        match v {
            FieldValue::Text(t) => {
                body.push_str(&format!(
                    "Content-Disposition: form-data; name=\"{}\"\r\n\r\n{}\r\n",
                    quote(n),
                    normalize_newlines(t)
                ));
            }
            FieldValue::File {
                filename,
                content_type,
                data,
            } => {
                body.push_str(&format!(
                    "Content-Disposition: form-data; name=\"{}\"; filename=\"{}\"\r\nContent-Type: {content_type}\r\n\r\n{data}\r\n",
                    quote(n),
                    quote(filename)
                ));
            }
        }
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    (boundary, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eps() -> Vec<Endpoint> {
        vec![
            Endpoint::new("127.0.0.1", 32768, 8080),
            Endpoint::new("127.0.0.1", 32769, 8443),
        ]
    }

    fn forms(html: &str) -> Vec<Form> {
        forms_of(&Html::parse_document(html))
    }

    fn text(fields: &[(String, FieldValue)]) -> Vec<(&str, &str)> {
        fields
            .iter()
            .map(|(n, v)| match v {
                FieldValue::Text(t) => (n.as_str(), t.as_str()),
                FieldValue::File { filename, .. } => (n.as_str(), filename.as_str()),
            })
            .collect()
    }

    fn page() -> Url {
        Url::parse("http://localhost:8080/contact/index.html?lang=en").unwrap()
    }

    #[test]
    fn fills_fields_like_a_user_accepting_defaults() {
        let f = forms(
            r#"<form method=POST action="/feedback">
                 <input name=name>
                 <input type=email name=email>
                 <input type=number name=n min=5 max=9>
                 <input type=range name=r min=0 max=10>
                 <input type=date name=d>
                 <input type=url name=u value="http://x/">
                 <input type=hidden name=token value="abc">
                 <input type=hidden name=_charset_>
                 <input type=checkbox name=news value=yes checked>
                 <input type=checkbox name=spam>
                 <input type=checkbox name=terms required>
                 <input type=radio name=size value=s>
                 <input type=radio name=size value=m checked>
                 <input type=radio name=color value=red required>
                 <input type=radio name=color value=blue>
                 <input type=radio name=opt value=a>
                 <select name=rating><option>1</option><option value=two selected>Two</option></select>
                 <select name=first><option disabled>x</option><option>  plain   text </option></select>
                 <select name=many multiple><option selected>a</option><option>b</option><option selected>c</option></select>
                 <textarea name=comment>Hello
there</textarea>
                 <textarea name=empty maxlength=3></textarea>
                 <input name=short minlength=8>
                 <input name=off disabled value=x>
                 <fieldset disabled><input name=fs value=x></fieldset>
                 <input name=plain value=1>
                 <input value=no-name>
                 <input type=reset name=reset>
                 <input type=button name=b value=b>
                 <button name=go value=send>Send</button>
                 <button name=second value=no>Second</button>
               </form>"#,
        );
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].method, "POST");
        assert_eq!(f[0].action.as_deref(), Some("/feedback"));
        assert_eq!(f[0].enctype, Enctype::UrlEncoded);
        assert_eq!(
            text(&f[0].fields),
            vec![
                ("name", "probe"),
                ("email", "probe@example.com"),
                ("n", "5"),
                ("r", "5"),
                ("d", "2024-01-01"),
                ("u", "http://x/"),
                ("token", "abc"),
                ("_charset_", "UTF-8"),
                ("news", "yes"),
                ("terms", "on"),
                ("size", "m"),
                ("rating", "two"),
                ("first", "plain text"),
                ("many", "a"),
                ("many", "c"),
                ("comment", "Hello\nthere"),
                ("empty", "pro"),
                ("short", "probexxx"),
                ("plain", "1"),
                ("go", "send"),
                ("color", "red"),
            ]
        );
    }

    #[test]
    fn form_attribute_submitter_overrides_and_dialogs() {
        let f = forms(
            r#"<form id=f1 action=/a><input name=inside></form>
               <input name=outside form=f1 value=o>
               <form><input name=own><button formaction="/b" formmethod=post formenctype="multipart/form-data">B</button></form>
               <form method=dialog><input name=x></form>
               <form method=bogus><input type=image name=pic></form>"#,
        );
        assert_eq!(f.len(), 3);
        assert_eq!(
            text(&f[0].fields),
            vec![("inside", "probe"), ("outside", "o")]
        );
        assert_eq!(f[1].method, "POST");
        assert_eq!(f[1].action.as_deref(), Some("/b"));
        assert_eq!(f[1].enctype, Enctype::Multipart);
        assert_eq!(f[2].method, "GET");
        assert_eq!(text(&f[2].fields), vec![("pic.x", "0"), ("pic.y", "0")]);
    }

    #[test]
    fn get_forms_replace_the_query() {
        let f = &forms(
            r#"<form action="search?old=1#frag"><input name=q value="a b&c"><input name=n value=1></form>"#,
        )[0];
        let r = submission(f, &page(), &page(), &eps(), 1 << 16).unwrap();
        assert_eq!(r.method, "GET");
        assert_eq!(
            r.target,
            Target {
                port: 8080,
                path: "/contact/search?q=a+b%26c&n=1".into()
            }
        );
        assert_eq!(r.body, None);
        // No action: the page itself (its query replaced).
        let f = &forms("<form><input name=q value=x></form>")[0];
        let r = submission(f, &page(), &page(), &eps(), 1 << 16).unwrap();
        assert_eq!(r.target.path, "/contact/index.html?q=x");
    }

    #[test]
    fn post_urlencoded_and_text_plain() {
        let f = &forms(
            "<form method=post><input name='a b' value='1+2=3'><textarea name=t>x\ny</textarea>\
             <input type=file name=up></form>",
        )[0];
        let r = submission(f, &page(), &page(), &eps(), 1 << 16).unwrap();
        assert_eq!(
            r.target.path, "/contact/index.html?lang=en",
            "POST keeps the query"
        );
        assert_eq!(
            r.content_type.as_deref(),
            Some("application/x-www-form-urlencoded")
        );
        assert_eq!(
            r.body.as_deref(),
            Some("a+b=1%2B2%3D3&t=x%0D%0Ay&up=slimd-probe.txt")
        );
        let f =
            &forms("<form method=post enctype=text/plain action=/p><input name=a value=1></form>")
                [0];
        let r = submission(f, &page(), &page(), &eps(), 1 << 16).unwrap();
        assert_eq!(r.content_type.as_deref(), Some("text/plain"));
        assert_eq!(r.body.as_deref(), Some("a=1\r\n"));
    }

    #[test]
    fn multipart_bodies_are_deterministic_and_well_formed() {
        let f = &forms(
            r#"<form method=post action="/upload" enctype="multipart/form-data">
                 <input name=title value="My &quot;doc&quot;">
                 <input type=file name=doc>
               </form>"#,
        )[0];
        let r1 = submission(f, &page(), &page(), &eps(), 1 << 16).unwrap();
        let r2 = submission(f, &page(), &page(), &eps(), 1 << 16).unwrap();
        assert_eq!(r1, r2, "same form, same bytes");
        let ct = r1.content_type.unwrap();
        let boundary = ct.strip_prefix("multipart/form-data; boundary=").unwrap();
        let want = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nMy \"doc\"\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"doc\"; filename=\"slimd-probe.txt\"\r\n\
             Content-Type: text/plain\r\n\r\nslimd probe upload\n\r\n--{boundary}--\r\n"
        );
        assert_eq!(r1.body.unwrap(), want);
        assert_eq!(r1.target.path, "/upload");

        // Different content, different boundary; never one found in the content.
        let fields = vec![("a".to_string(), FieldValue::Text("x".into()))];
        let (b1, _) = multipart(&fields);
        let clash = vec![("a".to_string(), FieldValue::Text(b1.clone()))];
        let (b2, body) = multipart(&clash);
        assert_ne!(b1, b2);
        assert_eq!(body.matches(&b2).count(), 2);
    }

    #[test]
    fn other_origins_and_big_bodies_are_skipped() {
        let f = &forms("<form method=post action='http://example.com/x'><input name=a></form>")[0];
        assert!(matches!(
            submission(f, &page(), &page(), &eps(), 1 << 16),
            Err(FormSkip::OtherOrigin(_))
        ));
        // An HTTPS action on another published port is same-origin.
        let f =
            &forms("<form method=post action='https://localhost:8443/s'><input name=a></form>")[0];
        let r = submission(f, &page(), &page(), &eps(), 1 << 16).unwrap();
        assert_eq!(r.target.port, 8443);
        let f = &forms("<form method=post><input name=a value=0123456789></form>")[0];
        assert_eq!(
            submission(f, &page(), &page(), &eps(), 5),
            Err(FormSkip::TooLarge(12, 5))
        );
    }

    #[test]
    fn base_href_applies_to_actions_but_not_to_an_empty_one() {
        let base = Url::parse("http://localhost:8080/app/").unwrap();
        let f = &forms("<form action=save><input name=a value=1></form>")[0];
        let r = submission(f, &page(), &base, &eps(), 1 << 16).unwrap();
        assert_eq!(r.target.path, "/app/save?a=1");
        let f = &forms("<form action=''><input name=a value=1></form>")[0];
        let r = submission(f, &page(), &base, &eps(), 1 << 16).unwrap();
        assert_eq!(r.target.path, "/contact/index.html?a=1");
    }
}
