//! Jinja2's builtins, exactly: the filters, tests and globals Mage's
//! `jinja2.Template` has, the Python methods templates call on strings,
//! dicts and lists, and Jinja2's results where minijinja's differ. What
//! minijinja has and Jinja2 lacks (`split`, `lines`, `bool`, `chain`, `zip`,
//! `startingwith`, …) is removed, so a template that renders here renders in
//! Mage. Each piece below names the Jinja2 behaviour it reproduces; the
//! conformance matrix (`tests/jinja2/`) compares every one with real Jinja2.
//!
//! Well-kept code is used where it exists: minijinja-contrib's `pycompat`
//! (Python methods), `truncate`, `wordcount`, `wordwrap`, `filesizeformat`,
//! `striptags`, `cycler`, `joiner`, `lipsum`, `random`; minijinja's
//! `urlencode` and printf-style `format`.

use minijinja::value::{Kwargs, Rest, Value, ValueKind, ValueOrKwargs};
use minijinja::{Environment, Error, ErrorKind, State};

use super::python::PyGenerator;

mod dumps;
mod filters;
mod globals;
mod urlize;

use dumps::{pprint, tojson};
use filters::{
    attr, center, dictsort, escape, float, forceescape, indent, int, items, string, urlencode,
    xmlattr,
};
pub use globals::range_repr;
use globals::{cycler, is_callable, is_sequence, lipsum, python_method, range};
use urlize::urlize;

/// Jinja2 3.1's builtin filters (`jinja2.defaults.DEFAULT_FILTERS`).
pub const FILTERS: &[&str] = &[
    "abs",
    "attr",
    "batch",
    "capitalize",
    "center",
    "count",
    "d",
    "default",
    "dictsort",
    "e",
    "escape",
    "filesizeformat",
    "first",
    "float",
    "forceescape",
    "format",
    "groupby",
    "indent",
    "int",
    "items",
    "join",
    "last",
    "length",
    "list",
    "lower",
    "map",
    "max",
    "min",
    "pprint",
    "random",
    "reject",
    "rejectattr",
    "replace",
    "reverse",
    "round",
    "safe",
    "select",
    "selectattr",
    "slice",
    "sort",
    "string",
    "striptags",
    "sum",
    "title",
    "tojson",
    "trim",
    "truncate",
    "unique",
    "upper",
    "urlencode",
    "urlize",
    "wordcount",
    "wordwrap",
    "xmlattr",
];

/// Jinja2 3.1's builtin tests (`jinja2.defaults.DEFAULT_TESTS`).
pub const TESTS: &[&str] = &[
    "!=",
    "<",
    "<=",
    "==",
    ">",
    ">=",
    "boolean",
    "callable",
    "defined",
    "divisibleby",
    "eq",
    "equalto",
    "escaped",
    "even",
    "false",
    "filter",
    "float",
    "ge",
    "greaterthan",
    "gt",
    "in",
    "integer",
    "iterable",
    "le",
    "lessthan",
    "lower",
    "lt",
    "mapping",
    "ne",
    "none",
    "number",
    "odd",
    "sameas",
    "sequence",
    "string",
    "test",
    "true",
    "undefined",
    "upper",
];

/// Jinja2 3.1's global functions (`jinja2.defaults.DEFAULT_NAMESPACE`).
pub const GLOBALS: &[&str] = &["range", "dict", "lipsum", "cycler", "joiner", "namespace"];

/// minijinja filters Jinja2 does not have (Mage fails with
/// `TemplateAssertionError`), and what to write in Jinja2 instead.
const FOREIGN_FILTERS: &[(&str, &str)] = &[
    ("split", "Python's method: `x.split(',')`"),
    ("lines", "Python's method: `x.splitlines()`"),
    ("bool", "a test or a comparison: `x is true`, `x == 'yes'`"),
    ("chain", "`+` on lists: `a + b`"),
    (
        "zip",
        "a loop over `range(a | length)` with `a[i]` and `b[i]`",
    ),
    ("pluralize", "a condition: `'s' if n != 1 else ''`"),
];

/// minijinja tests Jinja2 does not have, and the Jinja2 spelling.
const FOREIGN_TESTS: &[(&str, &str)] = &[
    ("startingwith", "Python's method: `x.startswith('a')`"),
    ("endingwith", "Python's method: `x.endswith('a')`"),
    ("int", "`is integer`"),
    ("safe", "`is escaped`"),
];

/// The Jinja2 spelling of a filter minijinja has and Jinja2 lacks.
pub fn foreign_filter(name: &str) -> Option<&'static str> {
    FOREIGN_FILTERS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, hint)| *hint)
}

/// The Jinja2 spelling of a test minijinja has and Jinja2 lacks.
pub fn foreign_test(name: &str) -> Option<&'static str> {
    FOREIGN_TESTS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, hint)| *hint)
}

/// Makes `env`'s builtins Jinja2's.
pub fn install(env: &mut Environment<'static>) {
    minijinja_contrib::add_to_environment(env);
    env.set_unknown_method_callback(python_method);
    for (name, _) in FOREIGN_FILTERS {
        env.remove_filter(name);
    }
    for (name, _) in FOREIGN_TESTS {
        env.remove_test(name);
    }
    // minijinja's `debug` feature adds a `debug()` global; `now` and
    // `randrange` come with contrib features. Jinja2 has none of them.
    for name in ["debug", "now", "randrange"] {
        env.remove_global(name);
    }
    env.add_function("range", range);
    env.add_function("cycler", cycler);
    env.add_function("lipsum", lipsum);
    env.add_test("callable", is_callable);
    env.add_test("sequence", is_sequence);

    env.add_filter("int", int);
    env.add_filter("float", float);
    env.add_filter("indent", |value: &Value, args: Rest<ValueOrKwargs>| {
        let kwargs = positional(&["width", "first", "blank"], args)?;
        indent(
            value,
            kwargs.get("width")?,
            kwargs.get("first")?,
            kwargs.get("blank")?,
        )
    });
    env.add_filter("urlencode", urlencode);
    env.add_filter(
        "truncate",
        |state: &mut State, value: &Value, args: Rest<ValueOrKwargs>| {
            let kwargs = positional(&["length", "killwords", "end", "leeway"], args)?;
            minijinja_contrib::filters::truncate(state, value, kwargs)
        },
    );
    env.add_filter("wordwrap", |value: &Value, args: Rest<ValueOrKwargs>| {
        let kwargs = positional(
            &[
                "width",
                "break_long_words",
                "wrapstring",
                "break_on_hyphens",
            ],
            args,
        )?;
        minijinja_contrib::filters::wordwrap(value, kwargs)
    });

    env.add_filter("tojson", tojson);
    env.add_filter("pprint", pprint);
    env.add_filter("attr", attr);
    env.add_filter("dictsort", dictsort);
    env.add_filter("items", items);
    env.add_filter("escape", escape);
    env.add_filter("e", escape);
    env.add_filter("forceescape", forceescape);
    env.add_filter("center", center);
    env.add_filter("xmlattr", xmlattr);
    env.add_filter("urlize", urlize);
    env.add_filter("string", string);

    // Jinja2's `map`, `select`, `reject`, `selectattr`, `rejectattr` and
    // `unique` are generators, and `reverse` of a list is an iterator.
    env.add_filter(
        "map",
        |state: &mut State, value: Value, args: Rest<ValueOrKwargs>| {
            minijinja::filters::map(state, value, args).map(|v| generator("map", v))
        },
    );
    env.add_filter(
        "select",
        |state: &mut State, value: Value, test: Option<String>, args: Rest<ValueOrKwargs>| {
            minijinja::filters::select(state, value, test.map(Into::into), args)
                .map(|v| generator("select", v))
        },
    );
    env.add_filter(
        "reject",
        |state: &mut State, value: Value, test: Option<String>, args: Rest<ValueOrKwargs>| {
            minijinja::filters::reject(state, value, test.map(Into::into), args)
                .map(|v| generator("reject", v))
        },
    );
    env.add_filter(
        "selectattr",
        |state: &mut State,
         value: Value,
         attr: String,
         test: Option<String>,
         args: Rest<ValueOrKwargs>| {
            minijinja::filters::selectattr(state, value, attr.into(), test.map(Into::into), args)
                .map(|v| generator("selectattr", v))
        },
    );
    env.add_filter(
        "rejectattr",
        |state: &mut State,
         value: Value,
         attr: String,
         test: Option<String>,
         args: Rest<ValueOrKwargs>| {
            minijinja::filters::rejectattr(state, value, attr.into(), test.map(Into::into), args)
                .map(|v| generator("rejectattr", v))
        },
    );
    env.add_filter("unique", |state: &State, value: Value, kwargs: Kwargs| {
        let out = minijinja::filters::unique(state, value, kwargs)?;
        Ok::<_, Error>(generator("unique", collect(&out)?))
    });
    env.add_filter(
        "batch",
        |state: &State, value: Value, count: usize, fill: Option<Value>| {
            let out = minijinja::filters::batch(state, value, count, fill)?;
            Ok::<_, Error>(generator("batch", collect(&out)?))
        },
    );
    env.add_filter(
        "slice",
        |state: &State, value: Value, count: usize, fill: Option<Value>| {
            let out = minijinja::filters::slice(state, value, count, fill)?;
            Ok::<_, Error>(generator("slice", collect(&out)?))
        },
    );
    env.add_filter("reverse", |value: &Value| {
        let out = minijinja::filters::reverse(value)?;
        if value.kind() == ValueKind::String {
            Ok::<_, Error>(out)
        } else {
            Ok(generator("reverse", collect(&out)?))
        }
    });
}

/// Python's call convention for a function written with keyword arguments
/// only: positional arguments take `names` in order.
fn positional(names: &[&str], args: Rest<ValueOrKwargs>) -> Result<Kwargs, Error> {
    let values = args.into_values();
    let (pos, kwargs): (&[Value], Kwargs) = minijinja::value::from_args(&values)?;
    if pos.len() > names.len() {
        return Err(Error::from(ErrorKind::TooManyArguments));
    }
    let mut pairs: Vec<(String, Value)> = names
        .iter()
        .zip(pos)
        .map(|(n, v)| (n.to_string(), v.clone()))
        .collect();
    let keys: Vec<String> = kwargs.args().map(str::to_string).collect();
    for key in keys {
        if pairs.iter().any(|(k, _)| *k == key) {
            return Err(invalid(format!("got multiple values for argument '{key}'")));
        }
        let v: Value = kwargs.get(&key)?;
        pairs.push((key, v));
    }
    Ok(Kwargs::from_iter(pairs))
}

fn generator(origin: &'static str, items: Vec<Value>) -> Value {
    Value::from_object(PyGenerator { origin, items })
}

fn collect(value: &Value) -> Result<Vec<Value>, Error> {
    value.try_iter().map(Iterator::collect)
}

fn invalid(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, message.into())
}

/// Whether `value` is a dict (a map literal, `dict()`, JSON): minijinja
/// keeps those as an `IndexMap` (feature `preserve_order`). Other maps are
/// objects such as `namespace()`.
pub fn is_dict(value: &Value) -> bool {
    value
        .downcast_object_ref::<indexmap::IndexMap<Value, Value>>()
        .is_some()
}

/// Whether `value` is a list (a literal or a filter's result).
fn is_list(value: &Value) -> bool {
    value.downcast_object_ref::<Vec<Value>>().is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreign_names_are_not_jinja2s() {
        for (name, _) in FOREIGN_FILTERS {
            assert!(!FILTERS.contains(name), "{name}");
        }
        for (name, _) in FOREIGN_TESTS {
            assert!(!TESTS.contains(name), "{name}");
        }
    }

    #[test]
    fn center_puts_the_odd_space_like_python() {
        let c = |s: &str, w| center(&Value::from(s), Some(w)).unwrap().to_string();
        assert_eq!(c("ab", 5), "  ab ");
        assert_eq!(c("abc", 6), " abc  ");
        assert_eq!(c("abc", 2), "abc");
    }

    #[test]
    fn tojson_escapes_like_jinja2() {
        let v = Value::from(minijinja::value::Serde(
            serde_json::json!({"b": "ä<&'>", "a": [1, 2.5, null]}),
        ));
        let out = tojson(&v, None, Kwargs::from_iter(Vec::<(&str, Value)>::new())).unwrap();
        assert_eq!(
            out.to_string(),
            r#"{"a": [1, 2.5, null], "b": "\u00e4\u003c\u0026\u0027\u003e"}"#
        );
    }
}
