//! `mage_secrets._native`: the Python face of the mage-secrets library.
//!
//! Thin on purpose: every answer comes from the Rust library. What this file
//! adds is Mage's calling convention (`get_secret_value`'s signature, `None`
//! for a missing secret), a process-wide cache of open environments so that
//! a call after the first costs microseconds, and the mapping of library
//! errors to Python exceptions whose messages are the CLI's (none ever holds
//! a secret value).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use mage_secrets::template::RenderOptions;
use mage_secrets::{Environment, Error, Scope, Settings};
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

create_exception!(
    mage_secrets,
    MageSecretsError,
    PyException,
    "A mage-secrets failure; `exit_code` is the code the CLI would exit with (1: the thing asked for does not hold, 2: usage or the tool's environment)."
);
create_exception!(
    mage_secrets,
    SecretNotSetError,
    MageSecretsError,
    "A secret a template needs is not set in the environment."
);
create_exception!(
    mage_secrets,
    RenderError,
    MageSecretsError,
    "A template failed; the message lists every problem with its place."
);

/// The Python exception for a library error, with the message the CLI
/// prints (diagnostics first, as on its stderr) and its exit code.
fn to_py(py: Python<'_>, err: Error) -> PyErr {
    let mut message = String::new();
    if let Error::Render(diagnostics) = &err {
        for d in diagnostics {
            message.push_str(&d.to_string());
            message.push('\n');
            if let Some(snippet) = d.snippet() {
                message.push_str(&snippet);
                message.push('\n');
            }
            if let Some(help) = &d.help {
                message.push_str(&format!("  = help: {help}\n"));
            }
        }
    }
    message.push_str(&err.to_string());
    let exit_code = err.exit_code();
    let pyerr = match err {
        Error::SecretNotSet { .. } => SecretNotSetError::new_err(message),
        Error::Render(_) => RenderError::new_err(message),
        _ => MageSecretsError::new_err(message),
    };
    let _ = pyerr.value(py).setattr("exit_code", exit_code.code());
    pyerr
}

/// An open environment and the store's change counter when its cache was
/// last known to be current.
struct Handle {
    settings: Settings,
    env: Environment,
    counter: u64,
}

impl Handle {
    /// Opens an environment that exists; a reader never creates one.
    fn open(settings: Settings) -> mage_secrets::Result<Handle> {
        let env = Environment::open_existing(&settings)?;
        let counter = env.store_change_counter()?;
        Ok(Handle {
            settings,
            env,
            counter,
        })
    }

    /// The environment, with its cache dropped when another process changed
    /// the store since (and reopened when that change was a key rotation),
    /// so a long-running Mage server sees a `set` at once.
    fn current(&mut self) -> mage_secrets::Result<&Environment> {
        let now = self.env.store_change_counter()?;
        if now != self.counter {
            if self.env.key_rotated()? {
                self.env = Environment::open_existing(&self.settings)?;
            } else {
                self.env.clear_cache();
            }
            self.counter = self.env.store_change_counter()?;
        }
        Ok(&self.env)
    }
}

/// Environments opened from the process environment (`MAGE_DATA_DIR`,
/// `MAGE_SECRETS_DATABASE`, …), one per distinct setting seen, so a process
/// that switches data dirs gets each one's answers.
static FROM_PROCESS: Mutex<Vec<Handle>> = Mutex::new(Vec::new());

/// How many environments [`FROM_PROCESS`] keeps open at once.
const MAX_PROCESS_ENVIRONMENTS: usize = 8;

fn with_process_environment<T>(
    f: impl FnOnce(&Environment) -> mage_secrets::Result<T>,
) -> mage_secrets::Result<T> {
    let settings = Settings::from_env()?;
    let mut handles = FROM_PROCESS.lock().unwrap_or_else(|p| p.into_inner());
    let index = match handles.iter().position(|h| h.settings == settings) {
        Some(i) => i,
        None => {
            if handles.len() == MAX_PROCESS_ENVIRONMENTS {
                // The one opened longest ago goes.
                handles.remove(0);
            }
            handles.push(Handle::open(settings)?);
            handles.len() - 1
        }
    };
    f(handles[index].current()?)
}

/// The scope chain of Mage's `get_secret_value` arguments. Without
/// `entity`: the pipeline's scope first when `pipeline_uuid` is given, then
/// global. With an explicit `entity`, Mage's meaning: `global` (and `any`,
/// `project`: one data dir is one environment here) is the global scope
/// alone, whatever `pipeline_uuid` says; `pipeline` is that pipeline's
/// scope alone.
fn mage_chain(
    entity: Option<&Bound<'_, PyAny>>,
    pipeline_uuid: Option<&str>,
) -> mage_secrets::Result<Vec<Scope>> {
    let entity = match entity {
        None => None,
        Some(e) if e.is_none() => None,
        // Mage's `Entity` is a string enum; plain strings work too.
        Some(e) => Some(
            e.getattr("value")
                .unwrap_or_else(|_| e.clone())
                .str()
                .map(|s| s.to_string().to_ascii_lowercase())
                .unwrap_or_default(),
        ),
    };
    // A pipeline uuid the store cannot hold has no scope: nothing is set
    // there (Mage answers None for any uuid).
    let pipeline = |p: Option<&str>| Scope::from_pipeline(p).ok();
    match entity.as_deref() {
        None => Ok(match pipeline(pipeline_uuid) {
            Some(scope) => scope.chain(),
            None => vec![Scope::Global],
        }),
        Some("global" | "project" | "any") => Ok(vec![Scope::Global]),
        Some("pipeline") => match pipeline_uuid {
            Some(p) => Ok(pipeline(Some(p)).into_iter().collect()),
            None => Err(Error::Usage(
                "get_secret_value: entity pipeline needs pipeline_uuid=".into(),
            )),
        },
        Some(other) => Err(Error::Usage(format!(
            "get_secret_value: entity '{other}' is not one of global, project, pipeline, any"
        ))),
    }
}

/// The value, `None` when it is not set. A name the store cannot hold is
/// not set, as in Mage (which takes any name and answers `None`).
fn lookup(env: &Environment, chain: &[Scope], name: &str) -> mage_secrets::Result<Option<String>> {
    if mage_secrets::secret::validate_name(name).is_err() {
        return Ok(None);
    }
    Ok(env
        .lookup(chain, name)?
        .map(|r| r.value.as_str().to_string()))
}

/// Mage's "not found" line, printed as Mage prints it unless
/// `suppress_warning=True`.
fn warn_missing(py: Python<'_>, name: &str, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<()> {
    let suppress = match kwargs {
        Some(k) => match k.get_item("suppress_warning")? {
            Some(v) => v.is_truthy()?,
            None => false,
        },
        None => false,
    };
    if !suppress {
        py.import("builtins")?.getattr("print")?.call1((format!(
            "WARNING: Could not find secret value for secret {name}."
        ),))?;
    }
    Ok(())
}

fn value_or_none<'py>(
    py: Python<'py>,
    name: &str,
    value: Option<String>,
    kwargs: Option<&Bound<'py, PyDict>>,
) -> PyResult<Option<Bound<'py, PyString>>> {
    match value {
        Some(v) => Ok(Some(PyString::new(py, &v))),
        None => {
            warn_missing(py, name, kwargs)?;
            Ok(None)
        }
    }
}

fn render_options(lenient: bool) -> RenderOptions {
    RenderOptions {
        lenient,
        ..RenderOptions::default()
    }
}

/// `render_project`'s result: relative path -> rendered text.
fn project_dict<'py>(
    py: Python<'py>,
    env: &Environment,
    path: &Path,
    lenient: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let options = render_options(lenient);
    let files = py
        .detach(|| env.render_project(path, &options))
        .map_err(|e| to_py(py, e))?;
    let dict = PyDict::new(py);
    for file in files {
        dict.set_item(file.path.display().to_string(), file.contents.as_str())?;
    }
    Ok(dict)
}

/// One profile of an io_config (a project folder's `io_config.yaml`, or
/// the file given), loaded as Mage's `ConfigFileLoader` loads it: the text
/// is rendered here, then parsed by PyYAML's `full_load` (in
/// `mage_secrets._io_config`), so values are typed exactly as Mage types
/// them.
fn io_config<'py>(
    py: Python<'py>,
    env: &Environment,
    path: &Path,
    profile: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let (file, text) = py
        .detach(|| env.render_io_config(path))
        .map_err(|e| to_py(py, e))?;
    let source = std::fs::read_to_string(&file).unwrap_or_default();
    py.import("mage_secrets._io_config")?.call_method1(
        "load",
        (file.display().to_string(), text.as_str(), source, profile),
    )
}

/// Mage's `get_secret_value`: the secret's value, or `None` when it is not
/// set. With `pipeline_uuid`, the pipeline's scope is searched first, then
/// global. The environment is the one the CLI would use from this process's
/// environment variables.
#[pyfunction]
#[pyo3(signature = (name, entity=None, pipeline_uuid=None, project_uuid=None, repo_name=None, **kwargs))]
fn get_secret_value<'py>(
    py: Python<'py>,
    name: &str,
    entity: Option<&Bound<'py, PyAny>>,
    pipeline_uuid: Option<&str>,
    project_uuid: Option<&Bound<'py, PyAny>>,
    repo_name: Option<&Bound<'py, PyAny>>,
    kwargs: Option<&Bound<'py, PyDict>>,
) -> PyResult<Option<Bound<'py, PyString>>> {
    // Mage's project and repository arguments choose among Mage's own key
    // folders; one data dir is one environment here.
    let _ = (project_uuid, repo_name);
    let chain = mage_chain(entity, pipeline_uuid).map_err(|e| to_py(py, e))?;
    // The store may be a server: other Python threads run meanwhile.
    let value = py
        .detach(|| with_process_environment(|env| lookup(env, &chain, name)))
        .map_err(|e| to_py(py, e))?;
    value_or_none(py, name, value, kwargs)
}

/// Renders a template text in the process's environment (strict: a missing
/// secret is an error, unless `lenient`).
#[pyfunction]
#[pyo3(signature = (template, pipeline=None, lenient=false))]
fn render_str(
    py: Python<'_>,
    template: &str,
    pipeline: Option<String>,
    lenient: bool,
) -> PyResult<String> {
    let options = render_options(lenient);
    with_process_environment(|env| {
        env.render_str_in_pipeline(template, pipeline.as_deref(), &options)
    })
    .map_err(|e| to_py(py, e))
}

/// Renders every YAML file of a project in memory: {relative path: text}.
#[pyfunction]
#[pyo3(signature = (path, lenient=false))]
fn render_project<'py>(
    py: Python<'py>,
    path: PathBuf,
    lenient: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let env = with_process_environment(|env| Ok(env.clone())).map_err(|e| to_py(py, e))?;
    project_dict(py, &env, &path, lenient)
}

/// One profile of a project's `io_config.yaml`, rendered and parsed.
#[pyfunction]
#[pyo3(signature = (path, profile="default"))]
fn load_io_config<'py>(
    py: Python<'py>,
    path: PathBuf,
    profile: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let env = with_process_environment(|env| Ok(env.clone())).map_err(|e| to_py(py, e))?;
    io_config(py, &env, &path, profile)
}

/// An environment named explicitly: `Environment(data_dir=..., database=...)`.
/// What is not given is resolved as the CLI resolves it (`MAGE_DATA_DIR`,
/// `MAGE_SECRETS_DATABASE`, `~/.mage_data`).
#[pyclass(name = "Environment", module = "mage_secrets", frozen)]
struct PyEnvironment {
    handle: Mutex<Handle>,
    uuid: String,
    data_dir: String,
    database: String,
}

impl PyEnvironment {
    fn env(&self) -> mage_secrets::Result<Environment> {
        let mut handle = self.handle.lock().unwrap_or_else(|p| p.into_inner());
        handle.current().cloned()
    }
}

#[pymethods]
impl PyEnvironment {
    #[new]
    #[pyo3(signature = (data_dir=None, database=None))]
    fn new(py: Python<'_>, data_dir: Option<PathBuf>, database: Option<String>) -> PyResult<Self> {
        let settings = Settings::resolve(data_dir, database).map_err(|e| to_py(py, e))?;
        let handle = Handle::open(settings).map_err(|e| to_py(py, e))?;
        let info_database = handle
            .settings
            .database_location()
            .map(|d| d.describe())
            .unwrap_or_default();
        Ok(PyEnvironment {
            uuid: handle.env.uuid().to_string(),
            data_dir: handle.settings.data_dir.display().to_string(),
            database: info_database,
            handle: Mutex::new(handle),
        })
    }

    /// The environment's uuid.
    #[getter]
    fn uuid(&self) -> &str {
        &self.uuid
    }

    #[getter]
    fn data_dir(&self) -> &str {
        &self.data_dir
    }

    /// The database, without any password.
    #[getter]
    fn database(&self) -> &str {
        &self.database
    }

    fn __repr__(&self) -> String {
        format!(
            "Environment(data_dir={:?}, uuid={:?}, database={:?})",
            self.data_dir, self.uuid, self.database
        )
    }

    /// Mage's `get_secret_value` in this environment.
    #[pyo3(signature = (name, entity=None, pipeline_uuid=None, project_uuid=None, repo_name=None, **kwargs))]
    #[allow(clippy::too_many_arguments)]
    fn get_secret_value<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        entity: Option<&Bound<'py, PyAny>>,
        pipeline_uuid: Option<&str>,
        project_uuid: Option<&Bound<'py, PyAny>>,
        repo_name: Option<&Bound<'py, PyAny>>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Option<Bound<'py, PyString>>> {
        let _ = (project_uuid, repo_name);
        let chain = mage_chain(entity, pipeline_uuid).map_err(|e| to_py(py, e))?;
        let value = py
            .detach(|| lookup(&self.env()?, &chain, name))
            .map_err(|e| to_py(py, e))?;
        value_or_none(py, name, value, kwargs)
    }

    #[pyo3(signature = (template, pipeline=None, lenient=false))]
    fn render_str(
        &self,
        py: Python<'_>,
        template: &str,
        pipeline: Option<String>,
        lenient: bool,
    ) -> PyResult<String> {
        let options = render_options(lenient);
        self.env()
            .and_then(|env| env.render_str_in_pipeline(template, pipeline.as_deref(), &options))
            .map_err(|e| to_py(py, e))
    }

    #[pyo3(signature = (path, lenient=false))]
    fn render_project<'py>(
        &self,
        py: Python<'py>,
        path: PathBuf,
        lenient: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        let env = self.env().map_err(|e| to_py(py, e))?;
        project_dict(py, &env, &path, lenient)
    }

    #[pyo3(signature = (path, profile="default"))]
    fn load_io_config<'py>(
        &self,
        py: Python<'py>,
        path: PathBuf,
        profile: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let env = self.env().map_err(|e| to_py(py, e))?;
        io_config(py, &env, &path, profile)
    }
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("MageSecretsError", py.get_type::<MageSecretsError>())?;
    m.add("SecretNotSetError", py.get_type::<SecretNotSetError>())?;
    m.add("RenderError", py.get_type::<RenderError>())?;
    m.add_class::<PyEnvironment>()?;
    m.add_function(wrap_pyfunction!(get_secret_value, m)?)?;
    m.add_function(wrap_pyfunction!(render_str, m)?)?;
    m.add_function(wrap_pyfunction!(render_project, m)?)?;
    m.add_function(wrap_pyfunction!(load_io_config, m)?)?;
    Ok(())
}
