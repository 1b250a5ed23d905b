//! Variable interpolation in Compose files, as the Compose specification
//! defines it: `$VAR`, `${VAR}`, `${VAR:-default}` (unset or empty),
//! `${VAR-default}` (unset), `${VAR:?message}` / `${VAR?message}` (an error
//! naming the variable), `${VAR:+replacement}` / `${VAR+replacement}`, and
//! `$$` for a literal `$`. Defaults may themselves hold variables.
//!
//! No maintained Rust crate implements this grammar (shell-expansion crates
//! lack `$$`, `?` and `+`), so it is written here, with its tests.

use std::collections::BTreeMap;

/// Why a string could not be interpolated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InterpolationError {
    #[error("required variable {name} is not set{}", if message.is_empty() { String::new() } else { format!(": {message}") })]
    Required { name: String, message: String },
    #[error("unterminated ${{...}} in {text:?}")]
    Unterminated { text: String },
    #[error("invalid interpolation format {text:?}")]
    Invalid { text: String },
}

/// The variables a Compose file sees: the caller's environment over `.env`.
pub type Variables = BTreeMap<String, String>;

/// Interpolates `text` with `vars`.
pub fn interpolate(text: &str, vars: &Variables) -> Result<String, InterpolationError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(r) = after.strip_prefix('{') {
            let end = closing_brace(r).ok_or_else(|| InterpolationError::Unterminated {
                text: text.to_string(),
            })?;
            out.push_str(&braced(&r[..end], vars, text)?);
            rest = &r[end + 1..];
        } else {
            let n = name_len(after);
            if n == 0 {
                // A lone `$` (e.g. at the end) stays as it is, as Compose does.
                out.push('$');
                rest = after;
            } else {
                out.push_str(vars.get(&after[..n]).map(String::as_str).unwrap_or(""));
                rest = &after[n..];
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The names `text` refers to (for the client to send their values).
pub fn referenced_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix('$') {
            rest = r;
            continue;
        }
        let body = after.strip_prefix('{').unwrap_or(after);
        let n = name_len(body);
        if n > 0 {
            names.push(body[..n].to_string());
        }
        rest = &body[n..];
    }
    names.sort();
    names.dedup();
    names
}

/// Length of the variable name at the start of `s` (`[A-Za-z_][A-Za-z0-9_]*`).
fn name_len(s: &str) -> usize {
    let b = s.as_bytes();
    if b.is_empty() || !(b[0].is_ascii_alphabetic() || b[0] == b'_') {
        return 0;
    }
    b.iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
        .count()
}

/// The index of the `}` closing a `${`, nested `${...}` in defaults included.
fn closing_brace(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'$' if b.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

/// The inside of one `${...}`.
fn braced(inner: &str, vars: &Variables, whole: &str) -> Result<String, InterpolationError> {
    let n = name_len(inner);
    if n == 0 {
        return Err(InterpolationError::Invalid {
            text: whole.to_string(),
        });
    }
    let name = &inner[..n];
    let op = &inner[n..];
    let value = vars.get(name);
    let set = value.is_some();
    let non_empty = value.is_some_and(|v| !v.is_empty());
    let value = value.cloned().unwrap_or_default();
    let (colon, op) = match op.strip_prefix(':') {
        Some(o) => (true, o),
        None => (false, op),
    };
    let present = if colon { non_empty } else { set };
    let Some(kind) = op.chars().next() else {
        return if colon {
            Err(InterpolationError::Invalid {
                text: whole.to_string(),
            })
        } else {
            Ok(value)
        };
    };
    let arg = &op[1..];
    match kind {
        '-' if present => Ok(value),
        '-' => interpolate(arg, vars),
        '+' if present => interpolate(arg, vars),
        '+' => Ok(String::new()),
        '?' if present => Ok(value),
        '?' => Err(InterpolationError::Required {
            name: name.to_string(),
            message: interpolate(arg, vars)?,
        }),
        _ => Err(InterpolationError::Invalid {
            text: whole.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Variables {
        Variables::from([
            ("TAG".into(), "1.2".into()),
            ("EMPTY".into(), String::new()),
            ("PORT".into(), "8000".into()),
        ])
    }

    #[test]
    fn plain_and_braced() {
        let v = vars();
        assert_eq!(interpolate("app:$TAG", &v).unwrap(), "app:1.2");
        assert_eq!(interpolate("app:${TAG}-x", &v).unwrap(), "app:1.2-x");
        assert_eq!(interpolate("$UNSET/x", &v).unwrap(), "/x");
        assert_eq!(interpolate("no vars", &v).unwrap(), "no vars");
        assert_eq!(interpolate("cost $", &v).unwrap(), "cost $");
    }

    #[test]
    fn escapes() {
        let v = vars();
        assert_eq!(interpolate("$$TAG", &v).unwrap(), "$TAG");
        assert_eq!(interpolate("a$$$TAG", &v).unwrap(), "a$1.2");
    }

    #[test]
    fn defaults_and_alternatives() {
        let v = vars();
        assert_eq!(interpolate("${EMPTY:-d}", &v).unwrap(), "d");
        assert_eq!(interpolate("${EMPTY-d}", &v).unwrap(), "");
        assert_eq!(interpolate("${UNSET-d}", &v).unwrap(), "d");
        assert_eq!(interpolate("${UNSET:-${PORT}}", &v).unwrap(), "8000");
        assert_eq!(interpolate("${TAG:+yes}", &v).unwrap(), "yes");
        assert_eq!(interpolate("${EMPTY:+yes}", &v).unwrap(), "");
        assert_eq!(interpolate("${EMPTY+yes}", &v).unwrap(), "yes");
        assert_eq!(interpolate("${UNSET+yes}", &v).unwrap(), "");
    }

    #[test]
    fn required_and_malformed() {
        let v = vars();
        assert_eq!(
            interpolate("${UNSET:?set it}", &v).unwrap_err(),
            InterpolationError::Required {
                name: "UNSET".into(),
                message: "set it".into()
            }
        );
        assert!(interpolate("${EMPTY?x}", &v).is_ok());
        assert!(matches!(
            interpolate("${TAG", &v),
            Err(InterpolationError::Unterminated { .. })
        ));
        assert!(matches!(
            interpolate("${1X}", &v),
            Err(InterpolationError::Invalid { .. })
        ));
        assert!(matches!(
            interpolate("${TAG:}", &v),
            Err(InterpolationError::Invalid { .. })
        ));
    }

    #[test]
    fn names_referenced() {
        assert_eq!(
            referenced_names("$A ${B:-$C} $$D ${E}"),
            vec!["A", "B", "C", "E"]
        );
    }
}
