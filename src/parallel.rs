//! Work spread over the machine's cores: rendering, checking and writing
//! each file is independent of the others.

use std::sync::atomic::{AtomicUsize, Ordering};

thread_local! {
    static WORKER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether this thread is one of the workers [`in_parallel_ticking`] starts
/// (which end with the work they were started for).
pub fn is_worker() -> bool {
    WORKER.get()
}

/// Told of each finished item, from whichever worker finished it (a
/// progress bar counts them).
pub type Tick<'a> = &'a (dyn Fn() + Sync);

/// A [`Tick`] for work nobody watches.
pub fn no_tick() {}

/// Runs `job` over `0..count` on the machine's cores; results in order.
pub fn in_parallel<T: Send>(count: usize, job: impl Fn(usize) -> T + Sync) -> Vec<T> {
    in_parallel_ticking(count, &no_tick, job)
}

/// How many threads share `count` items: the machine's cores, at most 8,
/// and one per 16 items.
fn workers(count: usize) -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8)
        .min(count / 16 + 1)
}

/// [`in_parallel`], calling `tick` as each item is done. Each worker keeps
/// its results (measured, an exchange per item doubled `check`'s system
/// time).
pub fn in_parallel_ticking<T: Send>(
    count: usize,
    tick: Tick<'_>,
    job: impl Fn(usize) -> T + Sync,
) -> Vec<T> {
    let job = |i| {
        let result = job(i);
        tick();
        result
    };
    let threads = workers(count);
    if threads <= 1 {
        return (0..count).map(job).collect();
    }
    let next = AtomicUsize::new(0);
    let mut results: Vec<(usize, T)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    WORKER.set(true);
                    let mut done = Vec::new();
                    while let Some(items) = take(&next, count, threads) {
                        done.extend(items.map(|i| (i, job(i))));
                    }
                    done
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("render worker panicked"))
            .collect()
    });
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

/// The next items a worker takes: a run of neighbours (files of one
/// folder, mostly, so that workers seldom create files in one folder at
/// once, which the system serialises), shorter as fewer are left so that
/// the workers finish together.
fn take(next: &AtomicUsize, count: usize, threads: usize) -> Option<std::ops::Range<usize>> {
    let mut start = next.load(Ordering::Relaxed);
    loop {
        if start >= count {
            return None;
        }
        let run = ((count - start) / (threads * 4)).clamp(1, 64);
        match next.compare_exchange_weak(start, start + run, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return Some(start..start + run),
            Err(now) => start = now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_item_is_done_once_and_results_keep_their_order() {
        for count in [0, 1, 15, 16, 17, 100, 257, 5_000] {
            let done: Vec<AtomicUsize> = (0..count).map(|_| AtomicUsize::new(0)).collect();
            let results = in_parallel(count, |i| {
                done[i].fetch_add(1, Ordering::Relaxed);
                i * 2
            });
            assert_eq!(results, (0..count).map(|i| i * 2).collect::<Vec<_>>());
            assert!(
                done.iter().all(|n| n.load(Ordering::Relaxed) == 1),
                "{count}"
            );
        }
    }

    #[test]
    fn runs_are_neighbours_shorter_towards_the_end() {
        let next = AtomicUsize::new(0);
        let mut runs = Vec::new();
        while let Some(run) = take(&next, 1_000, 2) {
            runs.push(run);
        }
        assert_eq!(runs.first(), Some(&(0..64)));
        assert!(runs
            .windows(2)
            .all(|w| w[0].end == w[1].start && w[0].len() >= w[1].len()));
        assert_eq!(runs.last().map(|r| (r.end, r.len())), Some((1_000, 1)));
    }
}
