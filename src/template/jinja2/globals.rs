//! Jinja2's globals and Python's methods where minijinja's differ: `range`
//! (prints `range(0, 3)`), `cycler` (with `current` and `reset()`), `lipsum`
//! with positional arguments, the `callable` and `sequence` tests, and
//! Python methods (minijinja-contrib's `pycompat`, plus dict views, tuples
//! and `str.zfill`).

use std::sync::Arc;

use minijinja::value::{
    Enumerator, Kwargs, Object, ObjectRepr, Rest, Value, ValueKind, ValueOrKwargs,
};
use minijinja::{Error, ErrorKind, State};

use super::{collect, invalid, positional};
use crate::template::python::{PyGenerator, PyTuple, PyView};

/// Jinja2's `cycler(*items)`: `next()`, `reset()` and `current`.
#[derive(Debug)]
pub(super) struct Cycler {
    items: Vec<Value>,
    pos: std::sync::atomic::AtomicUsize,
}

impl Object for Cycler {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        match key.as_str()? {
            "current" => {
                let pos = self.pos.load(std::sync::atomic::Ordering::Relaxed);
                self.items.get(pos).cloned()
            }
            "items" => Some(Value::from(self.items.clone())),
            _ => None,
        }
    }
    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        use std::sync::atomic::Ordering::Relaxed;
        let () = minijinja::value::from_args(args)?;
        match method {
            "next" | "__next__" => {
                let pos = self.pos.load(Relaxed);
                self.pos.store((pos + 1) % self.items.len(), Relaxed);
                Ok(self.items[pos].clone())
            }
            "reset" => {
                self.pos.store(0, Relaxed);
                Ok(Value::from(()))
            }
            _ => Err(Error::from(ErrorKind::UnknownMethod)),
        }
    }
}

pub(super) fn cycler(items: Rest<Value>) -> Result<Value, Error> {
    if items.0.is_empty() {
        return Err(invalid("at least one item has to be provided"));
    }
    Ok(Value::from_object(Cycler {
        items: items.0,
        pos: Default::default(),
    }))
}

/// Jinja2's `lipsum(n=5, html=True, min=20, max=100)`: minijinja-contrib's.
pub(super) fn lipsum(state: &mut State, args: Rest<ValueOrKwargs>) -> Result<Value, Error> {
    let kwargs = positional(&["n", "html", "min", "max"], args)?;
    let n: Option<usize> = kwargs.get("n")?;
    let rest: Vec<(String, Value)> = ["html", "min", "max"]
        .iter()
        .filter_map(|k| Some((k.to_string(), kwargs.get::<Option<Value>>(k).ok()??)))
        .collect();
    minijinja_contrib::globals::lipsum(state, n, Kwargs::from_iter(rest))
}

/// Python's `range()`: iterates like a list, prints as `range(0, 3)`.
#[derive(Debug)]
pub(super) struct PyRange {
    start: i64,
    stop: i64,
    step: i64,
    items: Vec<Value>,
}

impl Object for PyRange {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Seq
    }
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let i = i64::try_from(key.clone()).ok()?;
        let i = if i < 0 {
            self.items.len() as i64 + i
        } else {
            i
        };
        self.items.get(usize::try_from(i).ok()?).cloned()
    }
    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Seq(self.items.len())
    }
    fn render(self: &Arc<Self>, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.step == 1 {
            write!(f, "range({}, {})", self.start, self.stop)
        } else {
            write!(f, "range({}, {}, {})", self.start, self.stop, self.step)
        }
    }
}

/// Whether a value is a `range()` (printed by [`python`] through `render`).
pub fn range_repr(value: &Value) -> Option<String> {
    value.downcast_object_ref::<PyRange>()?;
    Some(value.to_string())
}

/// Jinja2's `range` global (Python's `range`, capped like Jinja2's sandbox
/// is not: minijinja's cap of 100,000 items stays, as a loud error).
pub(super) fn range(lower: i64, upper: Option<i64>, step: Option<i64>) -> Result<Value, Error> {
    let (start, stop) = match upper {
        Some(u) => (lower, u),
        None => (0, lower),
    };
    let step = step.unwrap_or(1);
    let list = minijinja::functions::range(
        isize::try_from(lower).map_err(|_| invalid("range bound too large"))?,
        upper
            .map(isize::try_from)
            .transpose()
            .map_err(|_| invalid("range bound too large"))?,
        Some(isize::try_from(step).map_err(|_| invalid("range step too large"))?),
    )?;
    Ok(Value::from_object(PyRange {
        start,
        stop,
        step,
        items: collect(&list)?,
    }))
}

/// Jinja2's `callable` test: functions, macros and methods.
pub(super) fn is_callable(value: &Value) -> bool {
    value
        .as_object()
        .is_some_and(|o| matches!(o.repr(), ObjectRepr::Plain) && value.kind() == ValueKind::Plain)
        && !value.is_undefined()
}

/// Jinja2's `sequence` test: anything with a length and items (strings and
/// dicts too), not a generator.
pub(super) fn is_sequence(value: &Value) -> bool {
    value.downcast_object_ref::<PyGenerator>().is_none()
        && matches!(
            value.kind(),
            ValueKind::String | ValueKind::Seq | ValueKind::Map
        )
}

/// Python methods on strings, dicts and lists: minijinja-contrib's
/// `pycompat`, with dict views and tuples as Python has them
/// (`d.items()` prints `dict_items([('a', 1)])`), and `str.zfill`.
pub(super) fn python_method(
    state: &mut State,
    value: &Value,
    method: &str,
    args: &[Value],
) -> Result<Value, Error> {
    match (value.kind(), method) {
        (ValueKind::Map, "items" | "keys" | "values") => {
            let () = minijinja::value::from_args(args)?;
            let mut items = Vec::new();
            for key in value.try_iter()? {
                let item = value.get_item(&key)?;
                items.push(match method {
                    "items" => PyTuple::value(vec![key, item]),
                    "keys" => key,
                    _ => item,
                });
            }
            Ok(Value::from_object(PyView {
                kind: match method {
                    "items" => "dict_items",
                    "keys" => "dict_keys",
                    _ => "dict_values",
                },
                items,
            }))
        }
        (ValueKind::String, "zfill") => {
            let (width,): (i64,) = minijinja::value::from_args(args)?;
            let s = value.as_str().unwrap_or_default();
            let len = s.chars().count() as i64;
            if width <= len {
                return Ok(value.clone());
            }
            crate::template::fits_output(usize::try_from(width).unwrap_or(usize::MAX))?;
            let fill = "0".repeat((width - len) as usize);
            Ok(Value::from(match s.strip_prefix(['+', '-']) {
                Some(rest) => format!("{}{fill}{rest}", &s[..1]),
                None => format!("{fill}{s}"),
            }))
        }
        (ValueKind::String, "format") => {
            crate::template::format_widths_fit(value.as_str().unwrap_or_default(), false)?;
            minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args)
        }
        (ValueKind::String, "center" | "ljust" | "rjust") => {
            if let Some(width) = args.first().and_then(|w| i64::try_from(w.clone()).ok()) {
                crate::template::fits_output(usize::try_from(width).unwrap_or(0))?;
            }
            minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args)
        }
        _ => minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args),
    }
}
