//! Trailing-edge debounce: a batch of file events ends after a quiet
//! period with no relevant event. Time is passed in, so the rule is tested
//! without a clock or a watcher.

use std::time::{Duration, Instant};

/// When the batch being collected is due.
#[derive(Debug)]
pub struct Debounce {
    window: Duration,
    deadline: Option<Instant>,
}

impl Debounce {
    pub fn new(window: Duration) -> Debounce {
        Debounce {
            window,
            deadline: None,
        }
    }

    /// A relevant event arrived at `now`: the batch is due a window later.
    pub fn event(&mut self, now: Instant) {
        self.deadline = Some(now + self.window);
    }

    /// Whether a batch is being collected.
    pub fn pending(&self) -> bool {
        self.deadline.is_some()
    }

    /// How long to wait for the next event: until the batch is due, or
    /// `idle` when there is none.
    pub fn wait(&self, now: Instant, idle: Duration) -> Duration {
        match self.deadline {
            Some(deadline) => deadline.saturating_duration_since(now),
            None => idle,
        }
    }

    /// Whether the batch is due at `now`; if so, a new one starts.
    pub fn take_due(&mut self, now: Instant) -> bool {
        match self.deadline {
            Some(deadline) if now >= deadline => {
                self.deadline = None;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_batch_is_due_one_window_after_its_last_event() {
        let t0 = Instant::now();
        let mut d = Debounce::new(50 * MS);
        assert!(!d.pending());
        assert!(!d.take_due(t0 + 1000 * MS), "nothing to do without events");
        d.event(t0);
        d.event(t0 + 30 * MS);
        assert!(
            !d.take_due(t0 + 60 * MS),
            "the second event moved the deadline"
        );
        assert_eq!(d.wait(t0 + 60 * MS, 500 * MS), 20 * MS);
        assert!(d.take_due(t0 + 80 * MS));
        assert!(!d.pending(), "a new batch starts after a due one");
        assert_eq!(d.wait(t0 + 80 * MS, 500 * MS), 500 * MS);
    }

    #[test]
    fn a_late_wake_up_is_due_at_once() {
        let t0 = Instant::now();
        let mut d = Debounce::new(50 * MS);
        d.event(t0);
        assert_eq!(d.wait(t0 + 200 * MS, 500 * MS), Duration::ZERO);
        assert!(d.take_due(t0 + 200 * MS));
    }
}
