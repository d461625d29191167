//! Mage's template functions: `mage_secret_var`, `env_var` and
//! `json_value`, with Mage's meaning. Lookups go through the render's
//! [`RenderScope`], which knows the file's scope chain and records every
//! missing value so that one run can report them all.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use minijinja::value::{Kwargs, Object, Value};
use minijinja::{Error as TemplateError, ErrorKind, State};

use zeroize::Zeroizing;

use crate::secret::SecretValue;
use crate::secret::{self, Scope};
use crate::template::analysis::{Function, Literal, SimpleCall};

/// Where templates get secret values from.
pub trait SecretSource: Send + Sync {
    /// The value of `name` through `chain`, most specific scope first.
    fn lookup(&self, chain: &[Scope], name: &str) -> crate::Result<Option<Arc<SecretValue>>>;
    /// The environment uuid, for messages.
    fn environment(&self) -> &str;
}

/// Where templates get process environment variables from.
pub trait EnvVars: Send + Sync {
    fn get(&self, name: &str) -> Option<String>;
}

/// The real process environment, each name read once and remembered for
/// the engine's life (each `std::env::var` takes the process's environment
/// lock and scans it: twice per file in a tree with two `env_var` calls a
/// file). Only the names templates ask for are copied, and the copies are
/// wiped when it goes. An engine lives for one render, or for a whole
/// `watch` session: a value the process itself sets after a name's first
/// lookup is not seen (no one else can change a process's environment).
#[derive(Default)]
pub struct ProcessEnv {
    read: RwLock<HashMap<String, Option<Zeroizing<String>>>>,
}

impl EnvVars for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        let known = |read: &HashMap<String, Option<Zeroizing<String>>>| {
            read.get(name).map(|v| v.as_ref().map(|v| v.to_string()))
        };
        if let Some(value) = known(&self.read.read().unwrap_or_else(|p| p.into_inner())) {
            return value;
        }
        let mut read = self.read.write().unwrap_or_else(|p| p.into_inner());
        if let Some(value) = known(&read) {
            return value;
        }
        let value = std::env::var(name).ok();
        read.insert(name.to_string(), value.clone().map(Zeroizing::new));
        value
    }
}

/// A value a render could not find.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Missing {
    Secret(String),
    EnvVar(String),
    /// A name that cannot be a secret's (Mage's rule).
    InvalidName(String),
    /// `json_value` over a secret's JSON with a path that is not there.
    JsonPath {
        secret: Option<String>,
        path: String,
    },
    /// A name computed from a secret's value, which `check` without the
    /// key cannot know (the secret it came from).
    Unverifiable(String),
}

/// Marks a stand-in value (see [`placeholder`]): a private-use character no
/// secret name has.
pub const PLACEHOLDER_MARK: char = '\u{E000}';

/// The stand-in for a present secret's value when its key is not at hand:
/// names computed from it are recognised as value-dependent.
pub fn placeholder(name: &str) -> String {
    format!("{PLACEHOLDER_MARK}{name}{PLACEHOLDER_MARK}")
}

/// The secret a stand-in value (or a text holding one) came from.
fn placeholder_source(text: &str) -> Option<String> {
    let start = text.find(PLACEHOLDER_MARK)? + PLACEHOLDER_MARK.len_utf8();
    let len = text[start..].find(PLACEHOLDER_MARK)?;
    Some(text[start..start + len].to_string())
}

/// The per-render state the functions see: which scopes a file searches,
/// and what was missing or used.
#[derive(Debug)]
pub struct RenderScope {
    pub chain: Vec<Scope>,
    state: Mutex<ScopeRecord>,
}

#[derive(Debug, Default)]
struct ScopeRecord {
    missing: Vec<Missing>,
    used: Vec<(String, Arc<SecretValue>)>,
    failure: Option<crate::Error>,
}

impl Object for RenderScope {}

/// The context variable that carries the [`RenderScope`].
pub const SCOPE_VAR: &str = "__mage_secrets_scope__";

impl RenderScope {
    pub fn new(chain: Vec<Scope>) -> Arc<RenderScope> {
        Arc::new(RenderScope {
            chain,
            state: Mutex::new(ScopeRecord::default()),
        })
    }

    fn record(&self) -> std::sync::MutexGuard<'_, ScopeRecord> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Missing values, in the order they were asked for, without repeats.
    pub fn missing(&self) -> Vec<Missing> {
        let mut out: Vec<Missing> = Vec::new();
        for m in &self.record().missing {
            if !out.contains(m) {
                out.push(m.clone());
            }
        }
        out
    }

    /// Secrets substituted, by name.
    pub fn used(&self) -> Vec<(String, Arc<SecretValue>)> {
        self.record().used.clone()
    }

    /// The secrets used so far, taken out (the render is over).
    pub fn take_used(&self) -> Vec<(String, Arc<SecretValue>)> {
        std::mem::take(&mut self.record().used)
    }

    /// Records a store failure that stops the render.
    pub(crate) fn fail(&self, e: crate::Error) {
        self.record().failure.get_or_insert(e);
    }

    /// A store failure (I/O, tampered row) that stopped a lookup.
    pub fn take_failure(&self) -> Option<crate::Error> {
        self.record().failure.take()
    }
}

fn scope_of(state: &State) -> Result<Arc<RenderScope>, TemplateError> {
    state
        .lookup(SCOPE_VAR)
        .and_then(|v| v.downcast_object::<RenderScope>())
        .ok_or_else(|| TemplateError::new(ErrorKind::InvalidOperation, "no render scope"))
}

/// `mage_secret_var(name)`: the secret's value, or none (recorded as missing).
pub fn mage_secret_var(
    source: Arc<dyn SecretSource>,
) -> impl Fn(&State, Option<Value>, Kwargs) -> Result<Value, TemplateError> + Send + Sync + 'static
{
    move |state: &State, name: Option<Value>, kwargs: Kwargs| {
        // Mage's helper is `get_secret_value(name, …)`: the name may be given
        // by keyword. Its other keyword arguments (entity, pipeline_uuid…)
        // only its own store understands; they are accepted and ignored.
        let name = match (name, kwargs.get::<Option<Value>>("name")?) {
            (Some(_), Some(_)) => {
                return Err(TemplateError::new(
                    ErrorKind::TooManyArguments,
                    "mage_secret_var got the name twice (by position and as name=)",
                ))
            }
            (Some(n), None) | (None, Some(n)) => n,
            (None, None) => return Err(TemplateError::from(ErrorKind::MissingArgument)),
        };
        let scope = scope_of(state)?;
        if let Some(from) = name.as_str().and_then(placeholder_source) {
            scope
                .record()
                .missing
                .push(Missing::Unverifiable(from.clone()));
            return Ok(Value::from(placeholder(&from)));
        }
        let Some(name) = name.as_str() else {
            return Err(TemplateError::new(
                ErrorKind::InvalidOperation,
                format!(
                    "mage_secret_var expects a name (a string), got {}",
                    name.kind()
                ),
            ));
        };
        if secret::validate_name(name).is_err() {
            scope
                .record()
                .missing
                .push(Missing::InvalidName(name.to_string()));
            return Ok(Value::from(()));
        }
        match source.lookup(&scope.chain, name) {
            Ok(Some(value)) => {
                let out = Value::from(value.as_str());
                scope.record().used.push((name.to_string(), value));
                Ok(out)
            }
            Ok(None) => {
                scope
                    .record()
                    .missing
                    .push(Missing::Secret(name.to_string()));
                Ok(Value::from(()))
            }
            Err(e) => {
                let message = e.to_string();
                scope.record().failure.get_or_insert(e);
                Err(TemplateError::new(ErrorKind::InvalidOperation, message))
            }
        }
    }
}

/// What a literal call prints.
pub(crate) enum Printed {
    Secret(Arc<SecretValue>),
    Text(Zeroizing<String>),
}

impl Printed {
    pub(crate) fn as_str(&self) -> &str {
        match self {
            Printed::Secret(v) => v.as_str(),
            Printed::Text(t) => t,
        }
    }

    fn none() -> Printed {
        Printed::Text(Zeroizing::new("None".into()))
    }
}

/// Evaluates a literal call of ours to the text Jinja2 would print,
/// recording what was missing or used, exactly as the functions below do.
pub(crate) fn eval_simple(
    call: &SimpleCall,
    scope: &RenderScope,
    secrets: &dyn SecretSource,
    vars: &dyn EnvVars,
) -> crate::Result<Printed> {
    match call.function {
        Function::SecretVar => {
            if secret::validate_name(&call.name).is_err() {
                scope
                    .record()
                    .missing
                    .push(Missing::InvalidName(call.name.clone()));
                return Ok(Printed::none());
            }
            match secrets.lookup(&scope.chain, &call.name)? {
                Some(value) => {
                    scope.record().used.push((call.name.clone(), value.clone()));
                    Ok(Printed::Secret(value))
                }
                None => {
                    scope
                        .record()
                        .missing
                        .push(Missing::Secret(call.name.clone()));
                    Ok(Printed::none())
                }
            }
        }
        Function::EnvVar => Ok(match (vars.get(&call.name), &call.default) {
            (Some(v), _) => Printed::Text(Zeroizing::new(v)),
            (None, Some(Literal::Str(d))) => Printed::Text(Zeroizing::new(d.clone())),
            (None, Some(Literal::Int(i))) => Printed::Text(Zeroizing::new(i.to_string())),
            (None, None) => {
                scope
                    .record()
                    .missing
                    .push(Missing::EnvVar(call.name.clone()));
                Printed::none()
            }
        }),
    }
}

/// `env_var(name, default=None)`: Python's `os.getenv`.
pub fn env_var(
    vars: Arc<dyn EnvVars>,
) -> impl Fn(&State, String, Option<Value>, Kwargs) -> Result<Value, TemplateError> + Send + Sync + 'static
{
    move |state: &State, name: String, default: Option<Value>, kwargs: Kwargs| {
        let default = match kwargs.get::<Option<Value>>("default")? {
            Some(d) => Some(d),
            None => default,
        };
        kwargs.assert_all_used()?;
        if let Some(from) = placeholder_source(&name) {
            let scope = scope_of(state)?;
            scope
                .record()
                .missing
                .push(Missing::Unverifiable(from.clone()));
            return Ok(Value::from(placeholder(&from)));
        }
        match vars.get(&name) {
            Some(v) => Ok(Value::from(v)),
            // `none` is Python's default: no default at all.
            None => match default.filter(|d| !d.is_none()) {
                Some(d) => Ok(d),
                None => {
                    scope_of(state)?
                        .record()
                        .missing
                        .push(Missing::EnvVar(name));
                    Ok(Value::from(()))
                }
            },
        }
    }
}

/// `json_value(text, path)`: Mage's helper. Parses `text` as JSON (on
/// failure returns `text`), then follows a dotted `path` with `key[i]`
/// indexing, raising where Python would.
pub fn json_value(text: Value, path: Value) -> Result<Value, TemplateError> {
    json_dig(text, path).map(|(v, _)| v)
}

/// `json_value` as templates call it: a path that is not in a secret's JSON
/// is recorded as missing (strict renders fail on it, naming the secret and
/// the path; Mage renders `None`).
pub fn json_value_recorded(
    state: &State,
    text: Value,
    path: Value,
) -> Result<Value, TemplateError> {
    if text.as_str().and_then(placeholder_source).is_some() {
        // A stand-in value: the path cannot be followed without the key.
        return Ok(text);
    }
    let (value, missing) = json_dig(text.clone(), path.clone())?;
    if missing {
        let scope = scope_of(state)?;
        let secret = text.as_str().and_then(|t| {
            scope
                .used()
                .into_iter()
                .find(|(_, v)| v.as_str() == t)
                .map(|(n, _)| n)
        });
        let path = path
            .as_str()
            .map_or_else(|| path.to_string(), str::to_string);
        scope
            .record()
            .missing
            .push(Missing::JsonPath { secret, path });
    }
    Ok(value)
}

/// Follows `path` in `text`: the value, and whether a key was not there.
fn json_dig(text: Value, path: Value) -> Result<(Value, bool), TemplateError> {
    let Some(s) = text.as_str() else {
        // `not None` / non-strings: json.loads fails or is skipped → returned as is.
        return Ok((text, false));
    };
    if s.is_empty() {
        return Ok((text, false));
    }
    let Ok(json) = serde_json::from_str::<serde_json::Value>(s) else {
        return Ok((text, false));
    };
    let keys: Vec<String> = match path.as_str() {
        Some(p) => p.split('.').map(|k| k.trim().to_string()).collect(),
        None => path
            .try_iter()
            .map_err(|_| json_error("path must be a string"))?
            .map(|k| k.to_string().trim().to_string())
            .collect(),
    };
    let mut current = json;
    let mut missing = false;
    for key in keys {
        let looked_up = split_index(&key).is_none() && truthy(&current);
        let present = match &current {
            serde_json::Value::Object(map) => map.contains_key(&key),
            _ => true,
        };
        missing |= looked_up && !present;
        current = dig_step(current, &key)?;
    }
    Ok((Value::from(minijinja::value::Serde(&current)), missing))
}

fn json_error(detail: impl Into<String>) -> TemplateError {
    TemplateError::new(
        ErrorKind::InvalidOperation,
        format!("json_value: {}", detail.into()),
    )
}

/// Splits `name[3]` into (`name`, 3) the way `re.split(r"\[(\d+)\]$")` does.
fn split_index(key: &str) -> Option<(&str, usize)> {
    let inner = key.strip_suffix(']')?;
    let open = inner.rfind('[')?;
    let digits = &inner[open + 1..];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((&inner[..open], digits.parse().ok()?))
}

fn truthy(v: &serde_json::Value) -> bool {
    use serde_json::Value as J;
    match v {
        J::Null => false,
        J::Bool(b) => *b,
        J::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        J::String(s) => !s.is_empty(),
        J::Array(a) => !a.is_empty(),
        J::Object(o) => !o.is_empty(),
    }
}

fn dig_step(obj: serde_json::Value, key: &str) -> Result<serde_json::Value, TemplateError> {
    use serde_json::Value as J;
    if let Some((name, index)) = split_index(key) {
        if name.is_empty() {
            // Python: `key, index = filter(...)` has one value to unpack.
            return Err(json_error(format!(
                "cannot index with '{key}' (write it as name[{index}])"
            )));
        }
        let J::Object(map) = obj else {
            return Err(json_error(format!(
                "cannot look up '{name}' in a non-object"
            )));
        };
        let inner = map
            .get(name)
            .ok_or_else(|| json_error(format!("key '{name}' not found")))?;
        return match inner {
            J::Array(items) => items
                .get(index)
                .cloned()
                .ok_or_else(|| json_error(format!("index {index} out of range for '{name}'"))),
            _ => Err(json_error(format!("'{name}' is not a list"))),
        };
    }
    if !truthy(&obj) {
        return Ok(obj);
    }
    match obj {
        J::Object(map) => Ok(map.get(key).cloned().unwrap_or(J::Null)),
        _ => Err(json_error(format!(
            "cannot look up '{key}' in a non-object"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jv(text: &str, path: &str) -> Result<String, String> {
        json_value(Value::from(text), Value::from(path))
            .map(|v| {
                let mut s = String::new();
                crate::template::python::write_value(&mut s, &v).unwrap();
                s
            })
            .map_err(|e| e.to_string())
    }

    #[test]
    fn json_value_follows_mages_dig() {
        let doc =
            r#"{"user": "u", "hosts": ["a", "b"], "nested": {"port": 5432, "list": [{"x": 1}]}}"#;
        assert_eq!(jv(doc, "user").unwrap(), "u");
        assert_eq!(jv(doc, "hosts[1]").unwrap(), "b");
        assert_eq!(jv(doc, "nested.port").unwrap(), "5432");
        assert_eq!(jv(doc, "nested.list[0].x").unwrap(), "1");
        assert_eq!(jv(doc, " nested . port ").unwrap(), "5432");
        assert_eq!(jv(doc, "missing").unwrap(), "None");
        assert_eq!(
            jv(doc, "missing.deeper").unwrap(),
            "None",
            "None is falsy: returned as is"
        );
        assert_eq!(
            jv(doc, "nested").unwrap(),
            "{'port': 5432, 'list': [{'x': 1}]}"
        );
        assert_eq!(jv("not json", "a").unwrap(), "not json");
        assert_eq!(jv("", "a").unwrap(), "");
        assert!(jv(doc, "hosts[5]").is_err());
        assert!(jv(doc, "nope[0]").is_err());
        assert!(jv(doc, "user.x").is_err());
    }

    #[test]
    fn index_suffixes_split_like_the_regex() {
        assert_eq!(split_index("a[0]"), Some(("a", 0)));
        assert_eq!(split_index("a[0][12]"), Some(("a[0]", 12)));
        assert_eq!(split_index("[3]"), Some(("", 3)));
        assert_eq!(split_index("a[x]"), None);
        assert_eq!(split_index("a"), None);
    }
}
