//! Jinja2's filters where minijinja's differ or are missing: each says the
//! Python behaviour it reproduces.

use minijinja::value::{Rest, Value, ValueKind, ValueOrKwargs};
use minijinja::Error;

use super::{collect, generator, invalid, is_dict, positional};
use crate::template::python::{self, PyTuple};

/// Jinja2's `int(default=0, base=10)`: Python's `int()`, then
/// `int(float())`, then the default.
pub(super) fn int(
    value: &Value,
    default: Option<Value>,
    base: Option<u32>,
) -> Result<Value, Error> {
    let default = default.unwrap_or(Value::from(0));
    let base = base.unwrap_or(10);
    match value.kind() {
        ValueKind::Number if value.is_integer() => return Ok(value.clone()),
        ValueKind::Number => {
            let f = f64::try_from(value.clone())?;
            return Ok(if f.is_finite() {
                Value::from(f.trunc() as i128)
            } else {
                default
            });
        }
        ValueKind::Bool => return Ok(Value::from(i64::from(value.is_true()))),
        ValueKind::String => {}
        _ => return Ok(default),
    }
    let s = value.as_str().unwrap_or_default().trim().replace('_', "");
    let (sign, digits) = match s.strip_prefix('-') {
        Some(d) => (-1i128, d.to_string()),
        None => (1, s.trim_start_matches('+').to_string()),
    };
    let lower = digits.to_ascii_lowercase();
    let (radix, body) = match (base, lower.get(..2)) {
        (16 | 0, Some("0x")) => (16, &lower[2..]),
        (8 | 0, Some("0o")) => (8, &lower[2..]),
        (2 | 0, Some("0b")) => (2, &lower[2..]),
        (0, _) => (10, lower.as_str()),
        (b, _) => (b, lower.as_str()),
    };
    if (2..=36).contains(&radix) {
        if let Ok(i) = i128::from_str_radix(body, radix) {
            return Ok(Value::from(sign * i));
        }
    }
    match s.parse::<f64>() {
        Ok(f) if f.is_finite() => Ok(Value::from(f.trunc() as i128)),
        _ => Ok(default),
    }
}

/// Jinja2's `float(default=0.0)`: Python's `float()`, else the default.
pub(super) fn float(value: &Value, default: Option<Value>) -> Result<Value, Error> {
    let default = default.unwrap_or(Value::from(0.0));
    Ok(match value.kind() {
        ValueKind::Number | ValueKind::Bool => {
            Value::from(f64::try_from(value.clone()).unwrap_or(0.0))
        }
        ValueKind::String => {
            let s = value.as_str().unwrap_or_default().trim().replace('_', "");
            match s.to_ascii_lowercase().as_str() {
                "inf" | "+inf" | "infinity" => Value::from(f64::INFINITY),
                "-inf" | "-infinity" => Value::from(f64::NEG_INFINITY),
                "nan" | "+nan" | "-nan" => Value::from(f64::NAN),
                _ => s.parse::<f64>().map(Value::from).unwrap_or(default),
            }
        }
        _ => default,
    })
}

/// Jinja2's `indent(width=4, first=False, blank=False)`; `width` may be a
/// string to indent with.
pub(super) fn indent(
    value: &Value,
    width: Option<Value>,
    first: Option<bool>,
    blank: Option<bool>,
) -> Result<Value, Error> {
    let mut s = String::new();
    python::write_value(&mut s, value).map_err(|e| invalid(e.0))?;
    let pad = match width {
        None => "    ".to_string(),
        Some(w) => match w.as_str() {
            Some(text) => text.to_string(),
            None => {
                let n = usize::try_from(i64::try_from(w)?.max(0)).unwrap_or(0);
                crate::template::fits_output(n)?;
                " ".repeat(n)
            }
        },
    };
    s.push('\n'); // Jinja2 adds it so that splitlines keeps a last empty line
    let lines = splitlines(&s);
    crate::template::fits_output(
        pad.len()
            .saturating_mul(lines.len() + 1)
            .saturating_add(s.len()),
    )?;
    let mut out = if blank.unwrap_or(false) {
        lines.join(&format!("\n{pad}"))
    } else {
        let mut out = lines.first().copied().unwrap_or_default().to_string();
        for line in lines.iter().skip(1) {
            out.push('\n');
            if !line.is_empty() {
                out.push_str(&pad);
            }
            out.push_str(line);
        }
        out
    };
    if first.unwrap_or(false) {
        out.insert_str(0, &pad);
    }
    Ok(Value::from(out))
}

/// Python's `str.splitlines()`: lines without their ends, split at every
/// line boundary Python knows.
pub(super) fn splitlines(s: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let boundary = matches!(
            c,
            '\n' | '\r'
                | '\u{b}'
                | '\u{c}'
                | '\u{1c}'
                | '\u{1d}'
                | '\u{1e}'
                | '\u{85}'
                | '\u{2028}'
                | '\u{2029}'
        );
        if !boundary {
            continue;
        }
        lines.push(&s[start..i]);
        start = i + c.len_utf8();
        if c == '\r' {
            if let Some((j, '\n')) = chars.peek().copied() {
                chars.next();
                start = j + 1;
            }
        }
    }
    if start < s.len() {
        lines.push(&s[start..]);
    }
    lines
}

/// Jinja2's `urlencode`: a string is quoted with `/` safe; a dict or a list
/// of pairs becomes `k=v&…` with everything quoted and spaces as `+`.
pub(super) fn urlencode(value: &Value) -> Result<Value, Error> {
    fn quote(v: &Value, for_qs: bool) -> Result<String, Error> {
        let mut s = String::new();
        python::write_value(&mut s, v).map_err(|e| invalid(e.0))?;
        if v.is_none() {
            s = "None".into();
        }
        let mut out = String::with_capacity(s.len());
        for b in s.bytes() {
            if b.is_ascii_alphanumeric()
                || matches!(b, b'_' | b'.' | b'-' | b'~')
                || (b == b'/' && !for_qs)
            {
                out.push(b as char);
            } else if b == b' ' && for_qs {
                out.push('+');
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        Ok(out)
    }
    let pairs: Vec<(Value, Value)> = match value.kind() {
        ValueKind::Map => value
            .try_iter()?
            .map(|k| {
                let v = value.get_item(&k)?;
                Ok((k, v))
            })
            .collect::<Result<_, Error>>()?,
        ValueKind::Seq | ValueKind::Iterable => value
            .try_iter()?
            .map(|pair| {
                let items = collect(&pair)?;
                match items.as_slice() {
                    [k, v] => Ok((k.clone(), v.clone())),
                    _ => Err(invalid("urlencode: a list must hold (key, value) pairs")),
                }
            })
            .collect::<Result<_, Error>>()?,
        _ => return Ok(Value::from(quote(value, false)?)),
    };
    let parts = pairs
        .iter()
        .map(|(k, v)| Ok(format!("{}={}", quote(k, true)?, quote(v, true)?)))
        .collect::<Result<Vec<_>, Error>>()?;
    Ok(Value::from(parts.join("&")))
}

/// Jinja2's `dictsort`: a list of `(key, value)` tuples.
pub(super) fn dictsort(value: &Value, args: Rest<ValueOrKwargs>) -> Result<Value, Error> {
    let kwargs = positional(&["case_sensitive", "by", "reverse"], args)?;
    let sorted = minijinja::filters::dictsort(value, kwargs)?;
    Ok(Value::from(tuples(&sorted)?))
}

/// Jinja2's `items`: a generator of `(key, value)` tuples.
pub(super) fn items(value: &Value) -> Result<Value, Error> {
    let pairs = minijinja::filters::items(value)?;
    Ok(generator("items", tuples(&pairs)?))
}

pub(super) fn tuples(pairs: &Value) -> Result<Vec<Value>, Error> {
    pairs
        .try_iter()?
        .map(|pair| Ok(PyTuple::value(collect(&pair)?)))
        .collect()
}

/// Jinja2's `attr`: `getattr(obj, name)`. A dict's keys are not attributes
/// (Jinja2 gives undefined); a dict method would print as a bound method,
/// which cannot be reproduced.
pub(super) fn attr(value: &Value, name: &Value) -> Result<Value, Error> {
    match value.kind() {
        ValueKind::Map if is_dict(value) => Ok(Value::UNDEFINED),
        ValueKind::String | ValueKind::Seq | ValueKind::Number | ValueKind::Bool => {
            // Python attributes of these are methods; their repr is an address.
            Err(invalid(format!(
                "`attr('{}')` on a {} gives a Python method object, which cannot be printed or used here",
                name.as_str().unwrap_or("?"),
                value.kind()
            )))
        }
        _ => Ok(value.get_attr(name.as_str().unwrap_or_default())?),
    }
}

/// markupsafe's `escape`: `&<>"'` as `&amp;` `&lt;` `&gt;` `&#34;` `&#39;`;
/// text already escaped (markup) is left alone.
pub(super) fn escape(value: &Value) -> Value {
    if value.is_safe() {
        return value.clone();
    }
    forceescape(value)
}

/// Jinja2's `forceescape`: escapes even markup.
pub(super) fn forceescape(value: &Value) -> Value {
    let mut text = String::new();
    if python::write_value(&mut text, value).is_err() {
        text = value.to_string();
    }
    Value::from_safe_string(html_escape(&text))
}

pub(super) fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Jinja2's `string`: Python's `str()` (`None`, `True`, `[1, 'a']`).
pub(super) fn string(value: &Value) -> Result<Value, Error> {
    let mut out = String::new();
    python::write_value(&mut out, value).map_err(|e| invalid(e.0))?;
    Ok(Value::from(out))
}

/// Jinja2's `center`: Python's `str.center(width)`, which puts the odd
/// space on the left when the width is odd.
pub(super) fn center(value: &Value, width: Option<i64>) -> Result<Value, Error> {
    let mut s = String::new();
    python::write_value(&mut s, value).map_err(|e| invalid(e.0))?;
    let width = width.unwrap_or(80);
    let len = s.chars().count() as i64;
    if width <= len {
        return Ok(Value::from(s));
    }
    crate::template::fits_output(usize::try_from(width).unwrap_or(usize::MAX))?;
    let marg = width - len;
    let left = marg / 2 + (marg & width & 1);
    Ok(Value::from(format!(
        "{}{s}{}",
        " ".repeat(left as usize),
        " ".repeat((marg - left) as usize)
    )))
}

/// Jinja2's `xmlattr`: ` key="value"` pairs, escaped, `None` and undefined
/// values left out; keys with spaces, `/`, `>` or `=` are refused as Jinja2
/// refuses them.
pub(super) fn xmlattr(value: &Value, autospace: Option<bool>) -> Result<Value, Error> {
    let mut parts = Vec::new();
    for key in value.try_iter()? {
        let item = value.get_item(&key)?;
        if item.is_none() || item.is_undefined() {
            continue;
        }
        let mut k = String::new();
        python::write_value(&mut k, &key).map_err(|e| invalid(e.0))?;
        if k.chars()
            .any(|c| c.is_whitespace() || matches!(c, '/' | '>' | '='))
        {
            return Err(invalid(format!(
                "Invalid character in attribute name: '{k}'"
            )));
        }
        let mut v = String::new();
        python::write_value(&mut v, &item).map_err(|e| invalid(e.0))?;
        let v = if item.is_safe() { v } else { html_escape(&v) };
        parts.push(format!("{}=\"{v}\"", html_escape(&k)));
    }
    let mut out = parts.join(" ");
    if autospace.unwrap_or(true) && !out.is_empty() {
        out.insert(0, ' ');
    }
    Ok(Value::from_safe_string(out))
}
