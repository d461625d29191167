//! Printing values the way Jinja2 prints Python objects, so that rendered
//! output matches Mage's byte for byte: `None`, `True`/`False`, Python's
//! float repr, `repr()` for lists, dicts and tuples, and the views
//! (`dict_items([…])`) Python's dict methods return. Values Python prints
//! as an object address (a generator from `map` or `select`) cannot be
//! reproduced: printing one is an error that names it.

use std::sync::Arc;

use minijinja::value::{Enumerator, Object, ObjectRepr, Value, ValueKind};

/// A Python tuple: iterates like a list, prints as `('a', 2)`.
#[derive(Debug, Clone)]
pub struct PyTuple(pub Vec<Value>);

impl PyTuple {
    pub fn value(items: Vec<Value>) -> Value {
        Value::from_object(PyTuple(items))
    }
}

impl Object for PyTuple {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Seq
    }
    /// As Python prints it, wherever minijinja prints a value itself
    /// (`%s`, `str.format`, `join`): `(1, 2)`.
    fn render(self: &Arc<Self>, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut text = String::new();
        write_value(&mut text, &Value::from_dyn_object(self.clone()))
            .map_err(|_| std::fmt::Error)?;
        f.write_str(&text)
    }
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        seq_item(&self.0, key)
    }
    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Seq(self.0.len())
    }
}

/// What Python's `dict.keys()`, `.values()` and `.items()` return: iterates
/// like a list, prints as `dict_keys(['a'])`.
#[derive(Debug, Clone)]
pub struct PyView {
    pub kind: &'static str,
    pub items: Vec<Value>,
}

impl Object for PyView {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Seq
    }
    fn render(self: &Arc<Self>, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut text = String::new();
        write_value(&mut text, &Value::from_dyn_object(self.clone()))
            .map_err(|_| std::fmt::Error)?;
        f.write_str(&text)
    }
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        seq_item(&self.items, key)
    }
    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Seq(self.items.len())
    }
}

/// A Python generator or iterator (what Jinja2's `map`, `select`, `items`,
/// … return): iterates like a list, but Python prints it as
/// `<generator object … at 0x…>`, which cannot be reproduced.
#[derive(Debug, Clone)]
pub struct PyGenerator {
    /// The filter that made it.
    pub origin: &'static str,
    pub items: Vec<Value>,
}

impl Object for PyGenerator {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Iterable
    }
    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(self.items.clone())
    }
    fn is_true(self: &Arc<Self>) -> bool {
        true // a Python generator is always true, even when empty
    }
}

fn seq_item(items: &[Value], key: &Value) -> Option<Value> {
    let i = i64::try_from(key.clone()).ok()?;
    let i = if i < 0 { items.len() as i64 + i } else { i };
    items.get(usize::try_from(i).ok()?).cloned()
}

/// A value Jinja2 prints as something this crate cannot reproduce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unprintable(pub String);

impl std::fmt::Display for Unprintable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Appends `value` as Jinja2's `{{ value }}` would print it.
pub fn write_value(out: &mut String, value: &Value) -> Result<(), Unprintable> {
    match value.kind() {
        ValueKind::Undefined => Ok(()),
        ValueKind::String => {
            out.push_str(value.as_str().unwrap_or_default());
            Ok(())
        }
        _ => write_repr(out, value, false),
    }
}

/// Python's `repr()` of `value`.
pub fn repr(value: &Value) -> Result<String, Unprintable> {
    let mut out = String::new();
    write_repr(&mut out, value, true)?;
    Ok(out)
}

fn write_items(out: &mut String, items: &[Value]) -> Result<(), Unprintable> {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_repr(out, item, true)?;
    }
    Ok(())
}

fn write_repr(out: &mut String, value: &Value, nested: bool) -> Result<(), Unprintable> {
    if let Some(t) = value.downcast_object_ref::<PyTuple>() {
        out.push('(');
        write_items(out, &t.0)?;
        if t.0.len() == 1 {
            out.push(',');
        }
        out.push(')');
        return Ok(());
    }
    if let Some(v) = value.downcast_object_ref::<PyView>() {
        out.push_str(v.kind);
        out.push_str("([");
        write_items(out, &v.items)?;
        out.push_str("])");
        return Ok(());
    }
    if let Some(r) = super::jinja2::range_repr(value) {
        out.push_str(&r);
        return Ok(());
    }
    if let Some(g) = value.downcast_object_ref::<PyGenerator>() {
        return Err(Unprintable(format!(
            "the result of `{}` is a Python generator, which Jinja2 prints as `<generator object …>`: add `| list` (or `| join`) before printing it",
            g.origin
        )));
    }
    if value.kind() == ValueKind::Map && !super::jinja2::is_dict(value) {
        return Err(Unprintable(
            "this object (a namespace()?) prints as `<… object>` in Jinja2, which is not reproduced: print its attributes".into(),
        ));
    }
    match value.kind() {
        ValueKind::Undefined | ValueKind::None => out.push_str("None"),
        ValueKind::Bool => out.push_str(if value.is_true() { "True" } else { "False" }),
        ValueKind::String => {
            let s = value.as_str().unwrap_or_default();
            if nested {
                write_str_repr(out, s);
            } else {
                out.push_str(s);
            }
        }
        ValueKind::Number => {
            if value.is_integer() {
                out.push_str(&value.to_string());
            } else {
                match f64::try_from(value.clone()) {
                    Ok(f) => out.push_str(&float_repr(f)),
                    Err(_) => out.push_str(&value.to_string()),
                }
            }
        }
        // minijinja's lazy sequences (`a + b`) are lists in Python.
        ValueKind::Seq | ValueKind::Iterable => {
            out.push('[');
            if let Ok(iter) = value.try_iter() {
                for (i, item) in iter.enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write_repr(out, &item, true)?;
                }
            }
            out.push(']');
        }
        ValueKind::Map => {
            out.push('{');
            if let Ok(iter) = value.try_iter() {
                for (i, key) in iter.enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write_repr(out, &key, true)?;
                    out.push_str(": ");
                    let item = value.get_item(&key).unwrap_or_default();
                    write_repr(out, &item, true)?;
                }
            }
            out.push('}');
        }
        ValueKind::Bytes => {
            return Err(Unprintable(
                "bytes print as Python's b'…' in Jinja2, which is not reproduced".into(),
            ))
        }
        kind => {
            return Err(Unprintable(format!(
                "this value ({kind}) prints as a Python object in Jinja2 (`<… object at 0x…>`), which cannot be reproduced: print its items or attributes instead"
            )))
        }
    }
    Ok(())
}

/// Python's `repr(str)`.
fn write_str_repr(out: &mut String, s: &str) {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || (0x7f..0xa0).contains(&(c as u32)) => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}

/// Python's `repr(float)`: shortest round-trip digits, scientific notation
/// below 1e-4 and from 1e16 on.
pub fn float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    // `{:e}` gives the shortest round-trip digits: "1.2345e-5".
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').expect("LowerExp has an exponent");
    let exp: i32 = exp.parse().expect("integer exponent");
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if negative { "-" } else { "" };
    if !(-4..16).contains(&exp) {
        let mut m = digits[..1].to_string();
        if digits.len() > 1 {
            m.push('.');
            m.push_str(&digits[1..]);
        }
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{m}e{esign}{:02}", exp.abs());
    }
    let point = exp + 1; // digits before the decimal point
    let body = if point <= 0 {
        format!("0.{}{}", "0".repeat((-point) as usize), digits)
    } else if (point as usize) >= digits.len() {
        format!("{}{}.0", digits, "0".repeat(point as usize - digits.len()))
    } else {
        format!(
            "{}.{}",
            &digits[..point as usize],
            &digits[point as usize..]
        )
    };
    format!("{sign}{body}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(v: Value) -> String {
        let mut s = String::new();
        write_value(&mut s, &v).unwrap();
        s
    }

    #[test]
    fn scalars_print_like_python() {
        assert_eq!(show(Value::from(())), "None");
        assert_eq!(show(Value::UNDEFINED), "");
        assert_eq!(show(Value::from(true)), "True");
        assert_eq!(show(Value::from(false)), "False");
        assert_eq!(show(Value::from(42)), "42");
        assert_eq!(show(Value::from("it's")), "it's");
    }

    #[test]
    fn floats_match_python_repr() {
        for (f, want) in [
            (1.0, "1.0"),
            (0.1, "0.1"),
            (1.5, "1.5"),
            (-2.25, "-2.25"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (123456.789, "123456.789"),
            (1.2345678901234567e20, "1.2345678901234567e+20"),
            (f64::INFINITY, "inf"),
        ] {
            assert_eq!(float_repr(f), want, "{f}");
        }
    }

    #[test]
    fn containers_print_like_python_repr() {
        let v = Value::from(minijinja::value::Serde(serde_json::json!({
            "a": [1, "x", null, true, 2.5],
            "b": {"it's": "q\"uote"}
        })));
        assert_eq!(
            show(v),
            "{'a': [1, 'x', None, True, 2.5], 'b': {\"it's\": 'q\"uote'}}"
        );
    }
}
