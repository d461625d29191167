//! Work spread over the machine's cores: rendering, checking and writing
//! each file is independent of the others.

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
/// its results (no exchange per item, unlike [`in_parallel_consuming`]:
/// measured, that doubled `check`'s system time).
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
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut results: Vec<(usize, T)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if i >= count {
                            break done;
                        }
                        done.push((i, job(i)));
                    }
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

/// Results a worker of [`in_parallel_consuming`] hands over at once, at
/// most: fewer when their weight reaches [`BATCH_WEIGHT`].
const BATCH: usize = 16;

/// The weight (bytes, for outputs) after which a batch goes over whatever
/// its count, so that large results are not held many at a time.
const BATCH_WEIGHT: usize = 1 << 20;

/// [`in_parallel_ticking`], handing each result to `consume` on the calling
/// thread as soon as it is done (in no particular order), so that results
/// need not all be held at once.
pub fn in_parallel_consuming<T: Send>(
    count: usize,
    tick: Tick<'_>,
    job: impl Fn(usize) -> T + Sync,
    weight: impl Fn(&T) -> usize + Sync,
    mut consume: impl FnMut(usize, T),
) {
    let threads = workers(count);
    if threads <= 1 {
        for i in 0..count {
            let result = job(i);
            tick();
            consume(i, result);
        }
        return;
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    // Results go over in batches: a hand-over per item woke the calling
    // thread (a futex and a context switch) once per file. A batch is
    // bounded in count and weight, and one in flight per worker keeps
    // memory bounded while the calling thread consumes.
    let (send, receive) = std::sync::mpsc::sync_channel::<Vec<(usize, T)>>(threads);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let send = send.clone();
            let (next, job, weight) = (&next, &job, &weight);
            scope.spawn(move || {
                let mut batch = Vec::with_capacity(BATCH);
                let mut held = 0;
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i < count {
                        let result = job(i);
                        held += weight(&result);
                        batch.push((i, result));
                        tick();
                    }
                    let last = i >= count;
                    let full = batch.len() == BATCH || held >= BATCH_WEIGHT;
                    if (full || last) && !batch.is_empty() {
                        held = 0;
                        let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                        if send.send(full).is_err() {
                            break;
                        }
                    }
                    if last {
                        break;
                    }
                }
            });
        }
        drop(send);
        for batch in receive {
            for (i, result) in batch {
                consume(i, result);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_result_is_consumed_once_whatever_the_batches() {
        for (count, weight) in [
            (0, 0),
            (1, 0),
            (17, 0),
            (100, 0),
            (100, BATCH_WEIGHT / 3),
            (50, BATCH_WEIGHT),
        ] {
            let mut seen = vec![0; count];
            in_parallel_consuming(
                count,
                &no_tick,
                |i| i * 2,
                |_| weight,
                |i, r| {
                    assert_eq!(r, i * 2);
                    seen[i] += 1;
                },
            );
            assert!(seen.iter().all(|&n| n == 1), "{count} {weight}: {seen:?}");
        }
    }
}
