//! Each thread's own copy of the values it looked up. A render's workers
//! look a value up once per reference: through the shared cache, every
//! lookup took its lock and every use counted on the value's shared
//! reference count, one cache line both cores wrote (measured: a fifth of
//! a two-core render's extra work over one core). A thread's copy is its
//! own; it is dropped when the environment's values may have changed (its
//! generation moved) or another environment is read.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::{Cache, Environment};
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
    values: Cache,
}

thread_local! {
    static LOCAL: RefCell<Local> = RefCell::default();
}

impl Environment {
    /// The value of `name` through `chain`, most specific scope first, from
    /// this thread's copy (filled through [`Environment::lookup`]'s cache).
    pub fn lookup_value(&self, chain: &[Scope], name: &str) -> Result<Option<Arc<SecretValue>>> {
        let of = (self.inner.id, self.inner.generation.load(Ordering::Acquire));
        for scope in chain {
            let held = LOCAL.with_borrow_mut(|local| {
                if local.of != Some(of) {
                    local.values.clear();
                    local.of = Some(of);
                }
                local.values.get(name).and_then(|s| s.get(scope)).cloned()
            });
            let value = match held {
                Some(value) => value,
                None => {
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

    /// Tells every thread's copy that values may have changed.
    pub(super) fn next_generation(&self) {
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
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
        let value = |env: &Environment| {
            env.lookup_value(&chain, "db")
                .unwrap()
                .map(|v| v.as_str().to_string())
        };
        assert_eq!(value(&env), None);
        env.set("db", &Scope::Global, "one").unwrap();
        assert_eq!(value(&env).as_deref(), Some("one"));
        env.set("db", &Scope::Pipeline("p".into()), "two").unwrap();
        assert_eq!(value(&env).as_deref(), Some("two"));
        // Another thread, its own copy.
        std::thread::scope(|s| {
            s.spawn(|| assert_eq!(value(&env).as_deref(), Some("two")));
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
