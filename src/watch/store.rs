//! The secret store side of a watch: fingerprints of the sealed rows tell
//! which names another process changed, so exactly the files that use them
//! are rendered again; a store that stops answering is reported once,
//! retried with backoff, and said to be back once.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::{Watch, WatchEvent};
use crate::environment::Environment;
use crate::error::Result;
use crate::secret::Scope;

/// A secret store that stopped answering, and when to try it again.
pub(super) struct Outage {
    next_try: Instant,
    pause: Duration,
}

/// The first and the longest wait between two tries of a store that is down.
const OUTAGE_FIRST_PAUSE: Duration = Duration::from_millis(500);
const OUTAGE_MAX_PAUSE: Duration = Duration::from_secs(5);

/// Fingerprints of an environment's sealed rows: any write changes one
/// (every write has a fresh nonce).
pub(super) type StoreSnapshot = HashMap<(Scope, String), u64>;

/// The store's fingerprints; the same read preloads the rows for rendering.
pub(super) fn snapshot(env: &Environment) -> Result<StoreSnapshot> {
    env.preload_fingerprints()
}

fn changed_names(before: &StoreSnapshot, after: &StoreSnapshot) -> Vec<String> {
    let mut names = BTreeSet::new();
    for (key, hash) in after {
        if before.get(key) != Some(hash) {
            names.insert(key.1.clone());
        }
    }
    for key in before.keys() {
        if !after.contains_key(key) {
            names.insert(key.1.clone());
        }
    }
    names.into_iter().collect()
}

impl Watch<'_> {
    /// Re-renders the files affected by changes in the store, if any.
    pub(super) fn process_store(&mut self) -> Result<()> {
        if self.env.store_replaced() {
            // Another database file at the store's path: what this
            // connection reads is gone. Open it again (its id is checked
            // against the data dir's record) and render everything.
            self.env = Environment::open_existing(self.env.settings())?;
            self.engine = self.env.engine();
            self.store = snapshot(&self.env)?;
            self.store_counter = self.env.store_change_counter()?;
            self.observer.event(WatchEvent::StoreReplaced);
            self.render_again_all();
            return Ok(());
        }
        let counter = self.env.store_change_counter()?;
        if counter == self.store_counter {
            return Ok(());
        }
        // Forget decrypted values, then read the rows once: their
        // fingerprints tell what changed, and they are preloaded for the
        // renders below. Nothing is taken as seen until all of it worked:
        // a failure here is tried again, not mistaken for a recovery.
        self.env.clear_cache();
        let after = snapshot(&self.env)?;
        let names = changed_names(&self.store, &after);
        if !names.is_empty() && self.env.key_rotated()? {
            // Another process rotated the key: open the environment again.
            let env = Environment::open(self.env.settings())?;
            self.store = snapshot(&env)?;
            self.engine = env.engine();
            self.env = env;
        } else {
            self.store = after;
        }
        self.store_counter = counter;
        // Files that reference a changed name, and every file that failed:
        // it may have failed because the store could not be read.
        let affected: Vec<PathBuf> = self
            .files
            .iter()
            .filter(|(_, st)| {
                st.failure.is_some()
                    || (!names.is_empty()
                        && (st.computed_names || names.iter().any(|n| st.referenced.contains(n))))
            })
            .map(|(p, _)| p.clone())
            .collect();
        if !names.is_empty() {
            self.observer.event(WatchEvent::StoreChanged {
                names: &names,
                files: affected.len(),
            });
        }
        self.render_again(affected);
        Ok(())
    }

    /// A store that cannot be read is reported once, then tried again with
    /// backoff; when it answers again, that is said once and every failed
    /// file is rendered again.
    pub(super) fn after_batch(&mut self) {
        let now = Instant::now();
        if self.outage.as_ref().is_some_and(|o| now < o.next_try) {
            self.finish_batch();
            return;
        }
        match self.process_store() {
            Ok(()) => {
                if self.outage.take().is_some() {
                    let failed: Vec<PathBuf> = self
                        .files
                        .iter()
                        .filter(|(_, st)| st.failure.is_some())
                        .map(|(p, _)| p.clone())
                        .collect();
                    self.observer.event(WatchEvent::StoreReachable {
                        retried: failed.len(),
                    });
                    self.render_again(failed);
                }
            }
            Err(e) => match &mut self.outage {
                Some(outage) => {
                    outage.pause = (outage.pause * 2).min(OUTAGE_MAX_PAUSE);
                    outage.next_try = now + outage.pause;
                }
                None => {
                    self.observer
                        .event(WatchEvent::StoreUnreachable(e.to_string()));
                    self.outage = Some(Outage {
                        next_try: now + OUTAGE_FIRST_PAUSE,
                        pause: OUTAGE_FIRST_PAUSE,
                    });
                }
            },
        }
        self.finish_batch();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_names_cover_added_modified_and_removed() {
        let g = |n: &str| (Scope::Global, n.to_string());
        let before: StoreSnapshot = [(g("a"), 1), (g("b"), 2), (g("c"), 3)]
            .into_iter()
            .collect();
        let after: StoreSnapshot = [(g("a"), 1), (g("b"), 9), (g("d"), 4)]
            .into_iter()
            .collect();
        assert_eq!(changed_names(&before, &after), vec!["b", "c", "d"]);
        assert!(changed_names(&before, &before).is_empty());
    }
}
