//! Each thread's own copy of the values it looked up. A render's workers
//! look a value up once per reference: through the shared cache, every
//! lookup took its lock and every use counted on the value's shared
//! reference count, one cache line both cores wrote (measured: a fifth of
//! a two-core render's extra work over one core). A thread's copy is its
//! own; it is dropped when the environment's values may have changed (its
//! generation moved) or another environment is read, and goes (wiped) with
//! the thread. Only the workers of [`crate::parallel`] keep copies: they
//! end with their work, while a caller's thread (a server's, the Python
//! package's) may outlive the environment by far. Where every row was
//! read (a render), the thread also holds that read's list of rows: a name
//! a scope has no row for is passed over at once, and nothing is kept for
//! it (most scopes of most names: a pipeline scope holds few secrets).

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::{Cache, Environment, Preloaded};
use crate::error::Result;
use crate::secret::{Scope, SecretValue};

/// Numbers the environments a process opens, so that a thread's copy is
/// never taken for another's (an address can be reused).
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

pub(super) fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

#[derive(Default)]
struct Local {
    /// The environment's id and generation these values are of.
    of: Option<(u64, u64)>,
    /// Every row of the environment, when they were read at once.
    rows: Option<Arc<Preloaded>>,
    values: Cache,
}

/// What a thread's copy knows of a name in a scope.
enum Held {
    Known(Option<Arc<SecretValue>>),
    /// Not among the rows read at once: not set.
    Unset,
    Unknown,
}

thread_local! {
    static LOCAL: RefCell<Local> = RefCell::default();
}

impl Environment {
    /// The value of `name` through `chain`, most specific scope first, from
    /// this thread's copy (filled through [`Environment::lookup`]'s cache).
    pub fn lookup_value(&self, chain: &[Scope], name: &str) -> Result<Option<Arc<SecretValue>>> {
        if !crate::parallel::is_worker() {
            return Ok(self.lookup(chain, name)?.map(|found| found.value));
        }
        let of = (self.inner.id, self.generation());
        for scope in chain {
            let held = LOCAL.with_borrow_mut(|local| {
                if local.of != Some(of) {
                    local.values.clear();
                    local.rows = self.preloaded_rows();
                    local.of = Some(of);
                }
                if let Some(value) = local.values.get(name).and_then(|s| s.get(scope)) {
                    return Held::Known(value.clone());
                }
                match &local.rows {
                    Some(rows) if !rows.get(name).is_some_and(|s| s.contains_key(scope)) => {
                        Held::Unset
                    }
                    _ => Held::Unknown,
                }
            });
            let value = match held {
                Held::Known(value) => value,
                Held::Unset => None,
                Held::Unknown => {
                    // (No borrow held here: reading may reload the key.)
                    let value = self
                        .lookup_one(scope, name)?
                        .map(|shared| Arc::new((*shared).clone()));
                    LOCAL.with_borrow_mut(|local| {
                        if local.of == Some(of) {
                            local
                                .values
                                .entry(name.to_string())
                                .or_default()
                                .insert(scope.clone(), value.clone());
                        }
                    });
                    value
                }
            };
            if value.is_some() {
                return Ok(value);
            }
        }
        Ok(None)
    }

    fn preloaded_rows(&self) -> Option<Arc<Preloaded>> {
        self.inner
            .preloaded
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Tells every thread's copy that values may have changed.
    pub(super) fn next_generation(&self) {
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
    }

    pub(super) fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Settings;

    #[test]
    fn a_threads_copy_follows_every_change_of_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let env = Environment::open(&Settings::for_data_dir(dir.path().join("data"))).unwrap();
        let chain = [Scope::Pipeline("p".into()), Scope::Global];
        // As a render's worker does (only workers keep copies).
        let value = |env: &Environment| {
            crate::parallel::in_parallel(64, |_| {
                env.lookup_value(&chain, "db")
                    .unwrap()
                    .map(|v| v.as_str().to_string())
            })
            .pop()
            .unwrap()
        };
        assert_eq!(value(&env), None);
        env.set("db", &Scope::Global, "one").unwrap();
        assert_eq!(value(&env).as_deref(), Some("one"));
        // With every row read at once (as a render does), a scope without
        // the name is passed over; a row set afterwards is still seen.
        env.preload().unwrap();
        assert_eq!(value(&env).as_deref(), Some("one"));
        env.set("db", &Scope::Pipeline("p".into()), "two").unwrap();
        assert_eq!(value(&env).as_deref(), Some("two"));
        env.preload().unwrap();
        assert_eq!(value(&env).as_deref(), Some("two"));
        // Another thread, not a worker: no copy, the same value.
        std::thread::scope(|s| {
            s.spawn(|| {
                let found = env.lookup_value(&chain, "db").unwrap();
                assert_eq!(found.unwrap().as_str(), "two");
                assert!(LOCAL.with_borrow(|local| local.values.is_empty()));
            });
        });
        env.delete("db", &Scope::Pipeline("p".into())).unwrap();
        assert_eq!(value(&env).as_deref(), Some("one"));
        // Another environment of the same thread is never read from this
        // one's copy.
        let other_dir = tempfile::tempdir().unwrap();
        let other =
            Environment::open(&Settings::for_data_dir(other_dir.path().join("data"))).unwrap();
        assert_eq!(value(&other), None);
        assert_eq!(value(&env).as_deref(), Some("one"));
    }
}
