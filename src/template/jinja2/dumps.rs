//! `tojson` and `pprint`: Python's `json.dumps` as Jinja2 calls it, and
//! `pprint.pformat`.

use minijinja::value::{Kwargs, Value, ValueKind};
use minijinja::Error;

use super::{collect, invalid, is_dict, is_list, range_repr};
use crate::template::python::{self, PyTuple};

/// Jinja2's `tojson`: `json.dumps(value, sort_keys=True)` (ASCII with
/// `\uXXXX` escapes, `", "` and `": "` separators, or `","` with `indent`),
/// then `<`, `>`, `&` and `'` escaped as `\u003c`, `\u003e`, `\u0026`, `\u0027`.
pub(super) fn tojson(value: &Value, indent: Option<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let indent = match kwargs.get::<Option<Value>>("indent")? {
        Some(i) => Some(i),
        None => indent,
    };
    kwargs.assert_all_used()?;
    let indent = match indent {
        None => None,
        Some(i) if i.is_none() => None,
        Some(i) => match i.as_str() {
            Some(s) => Some(s.to_string()),
            None => Some(" ".repeat(usize::try_from(i64::try_from(i)?.max(0)).unwrap_or(0))),
        },
    };
    let mut out = String::new();
    write_json(&mut out, value, indent.as_deref(), 0)?;
    Ok(Value::from_safe_string(out))
}

pub(super) fn write_json(
    out: &mut String,
    value: &Value,
    indent: Option<&str>,
    depth: usize,
) -> Result<(), Error> {
    let newline = |out: &mut String, depth: usize| {
        if let Some(ind) = indent {
            out.push('\n');
            for _ in 0..depth {
                out.push_str(ind);
            }
        }
    };
    let item_sep = if indent.is_some() { "," } else { ", " };
    match value.kind() {
        ValueKind::Undefined => {
            return Err(invalid(
                "tojson: Object of type Undefined is not JSON serializable",
            ))
        }
        ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if value.is_true() { "true" } else { "false" }),
        ValueKind::Number => {
            if value.is_integer() {
                out.push_str(&value.to_string());
            } else {
                let f = f64::try_from(value.clone())?;
                out.push_str(&match python::float_repr(f).as_str() {
                    "nan" => "NaN".to_string(),
                    "inf" => "Infinity".to_string(),
                    "-inf" => "-Infinity".to_string(),
                    s => s.to_string(),
                });
            }
        }
        ValueKind::String => write_json_str(out, value.as_str().unwrap_or_default()),
        ValueKind::Seq | ValueKind::Iterable => {
            let items = collect(value)?;
            out.push('[');
            if !items.is_empty() {
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(item_sep);
                    }
                    newline(out, depth + 1);
                    write_json(out, item, indent, depth + 1)?;
                }
                newline(out, depth);
            }
            out.push(']');
        }
        ValueKind::Map => {
            let mut keys = collect(value)?;
            // sort_keys=True: Python compares keys of one type only.
            if keys.iter().any(|k| k.kind() != keys[0].kind()) {
                return Err(invalid(
                    "tojson: keys of different types cannot be sorted (Python raises TypeError)",
                ));
            }
            keys.sort();
            out.push('{');
            if !keys.is_empty() {
                for (i, key) in keys.iter().enumerate() {
                    if i > 0 {
                        out.push_str(item_sep);
                    }
                    newline(out, depth + 1);
                    let text = match key.kind() {
                        ValueKind::String => key.as_str().unwrap_or_default().to_string(),
                        ValueKind::None => "null".into(),
                        ValueKind::Bool => if key.is_true() { "true" } else { "false" }.into(),
                        ValueKind::Number => {
                            let mut s = String::new();
                            write_json(&mut s, key, None, 0)?;
                            s
                        }
                        _ => {
                            return Err(invalid(
                                "tojson: keys must be str, int, float, bool or None",
                            ))
                        }
                    };
                    write_json_str(out, &text);
                    out.push_str(": ");
                    write_json(out, &value.get_item(key)?, indent, depth + 1)?;
                }
                newline(out, depth);
            }
            out.push('}');
        }
        kind => {
            return Err(invalid(format!(
                "tojson: a {kind} is not JSON serializable"
            )))
        }
    }
    Ok(())
}

pub(super) fn write_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\'' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if c.is_ascii() && !c.is_ascii_control() => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
}

/// Jinja2's `pprint`: Python's `pprint.pformat` (width 80, dicts sorted by
/// key, containers that do not fit broken one item per line).
pub(super) fn pprint(value: &Value) -> Result<Value, Error> {
    let mut out = String::new();
    pformat(&mut out, value, 0, 0)?;
    Ok(Value::from(out))
}

pub(super) const PPRINT_WIDTH: usize = 80;

pub(super) fn sorted_repr(value: &Value) -> Result<String, Error> {
    // repr with dicts sorted by key, as pprint shows them.
    if is_dict(value) {
        let mut keys = collect(value)?;
        keys.sort();
        let mut parts = Vec::new();
        for k in keys {
            parts.push(format!(
                "{}: {}",
                sorted_repr(&k)?,
                sorted_repr(&value.get_item(&k)?)?
            ));
        }
        return Ok(format!("{{{}}}", parts.join(", ")));
    }
    if is_list(value) {
        let parts = collect(value)?
            .iter()
            .map(sorted_repr)
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(format!("[{}]", parts.join(", ")));
    }
    if let Some(r) = range_repr(value) {
        return Ok(r);
    }
    python::repr(value).map_err(|e| invalid(e.0))
}

pub(super) fn pformat(
    out: &mut String,
    value: &Value,
    indent: usize,
    allowance: usize,
) -> Result<(), Error> {
    let rep = sorted_repr(value)?;
    if rep.chars().count() <= PPRINT_WIDTH.saturating_sub(indent + allowance) {
        out.push_str(&rep);
        return Ok(());
    }
    let is_map = is_dict(value);
    let is_list = is_list(value);
    let is_tuple = value.downcast_object_ref::<PyTuple>().is_some();
    if is_map {
        let mut keys = collect(value)?;
        keys.sort();
        out.push('{');
        let n = keys.len();
        for (i, k) in keys.iter().enumerate() {
            let krep = sorted_repr(k)?;
            out.push_str(&krep);
            out.push_str(": ");
            let last = i + 1 == n;
            pformat(
                out,
                &value.get_item(k)?,
                indent + 1 + krep.chars().count() + 2,
                if last { allowance + 1 } else { 1 },
            )?;
            if !last {
                out.push_str(",\n");
                out.push_str(&" ".repeat(indent + 1));
            }
        }
        out.push('}');
        return Ok(());
    }
    if is_list || is_tuple {
        let items = collect(value)?;
        out.push(if is_list { '[' } else { '(' });
        let n = items.len();
        for (i, item) in items.iter().enumerate() {
            let last = i + 1 == n;
            pformat(out, item, indent + 1, if last { allowance + 1 } else { 1 })?;
            if !last {
                out.push_str(",\n");
                out.push_str(&" ".repeat(indent + 1));
            }
        }
        if is_tuple && n == 1 {
            out.push(',');
        }
        out.push(if is_list { ']' } else { ')' });
        return Ok(());
    }
    if value.kind() == ValueKind::String && rep.chars().count() > PPRINT_WIDTH {
        return Err(invalid(
            "pprint of a string too long for one line (Python splits it into parts) is not reproduced",
        ));
    }
    out.push_str(&rep);
    Ok(())
}
