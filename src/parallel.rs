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

/// Results a worker of [`in_parallel_consuming`] hands over at once.
const BATCH: usize = 4;

/// [`in_parallel_ticking`], handing each result to `consume` on the calling
/// thread as soon as it is done (in no particular order), so that results
/// need not all be held at once.
pub fn in_parallel_consuming<T: Send>(
    count: usize,
    tick: Tick<'_>,
    job: impl Fn(usize) -> T + Sync,
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
    // thread (a futex and a context switch) once per file. A few batches
    // in flight per worker keep memory bounded while it consumes.
    let (send, receive) = std::sync::mpsc::sync_channel::<Vec<(usize, T)>>(threads);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let send = send.clone();
            let (next, job) = (&next, &job);
            scope.spawn(move || {
                let mut batch = Vec::with_capacity(BATCH);
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i < count {
                        batch.push((i, job(i)));
                        tick();
                    }
                    let last = i >= count;
                    if (batch.len() == BATCH || last) && !batch.is_empty() {
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
