//! Blocking work shared among threads: what a pass does for many domains at once that is
//! mostly computing or waiting on the disk (keys made, key files written and flushed, status
//! rows).

use std::sync::atomic::{AtomicUsize, Ordering};

/// Threads beyond one per core for work that mostly waits on its fsyncs (files created and
/// flushed, many at once).
pub const DISK_EXTRA: usize = 2;

/// How many threads work at once: one per core and `extra` more (threads that wait on the
/// disk leave their core to the others).
pub fn threads(extra: usize) -> usize {
    std::thread::available_parallelism().map_or(1, usize::from) + extra
}

/// `work` done on each of `items`, on `threads` threads at once (each taking the next item as
/// it finishes one); the results in the order of `items`. Blocks the calling thread until all
/// are done; a panic in `work` is raised again here.
pub fn map<T: Sync, R: Send>(items: &[T], threads: usize, work: impl Fn(&T) -> R + Sync) -> Vec<R> {
    if threads <= 1 || items.len() <= 1 {
        return items.iter().map(work).collect();
    }
    let next = AtomicUsize::new(0);
    let mut done: Vec<(usize, R)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads.min(items.len()))
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else {
                            return mine;
                        };
                        mine.push((i, work(item)));
                    }
                })
            })
            .collect();
        let mut done = Vec::with_capacity(items.len());
        for worker in workers {
            match worker.join() {
                Ok(mine) => done.extend(mine),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        done
    });
    done.sort_unstable_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, result)| result).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_item_is_worked_once_and_the_results_keep_their_order() {
        let items: Vec<u64> = (0..1000).collect();
        let calls = AtomicUsize::new(0);
        let results = map(&items, 4, |n| {
            calls.fetch_add(1, Ordering::Relaxed);
            n * 2
        });
        assert_eq!(calls.into_inner(), 1000);
        assert_eq!(results, items.iter().map(|n| n * 2).collect::<Vec<_>>());
        assert!(map(&[] as &[u64], 4, |n| *n).is_empty());
        assert_eq!(map(&[7u64], 0, |n| *n), [7], "at least one thread");
    }
}
