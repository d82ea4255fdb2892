//! Times rotor-keys' key generation for `bench/keygen.sh`.
//!
//! `keygen ALGORITHM COUNT THREADS` makes COUNT keys of ALGORITHM (`rsa-2048`, `ed25519`, …)
//! on THREADS threads at once, as rotor does (`PrivateKey::generate`, PEM included), timing
//! each key on the thread that made it. It prints `key MILLISECONDS` for every key and then
//! `wall SECONDS` for the whole batch; the keys themselves are dropped, never printed.

use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use rotor_keys::{KeyAlgorithm, PrivateKey};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [algorithm, count, threads] = args.as_slice() else {
        eprintln!("usage: keygen ALGORITHM COUNT THREADS");
        return ExitCode::from(2);
    };
    let (algorithm, count, threads) = match (
        algorithm.parse::<KeyAlgorithm>(),
        count.parse::<usize>(),
        threads.parse::<usize>(),
    ) {
        (Ok(algorithm), Ok(count), Ok(threads)) if threads > 0 => (algorithm, count, threads),
        _ => {
            eprintln!("usage: keygen ALGORITHM COUNT THREADS (THREADS at least 1)");
            return ExitCode::from(2);
        }
    };

    let next = AtomicUsize::new(0);
    let start = Instant::now();
    let timings: Result<Vec<Duration>, String> = thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    while next.fetch_add(1, Ordering::Relaxed) < count {
                        let started = Instant::now();
                        PrivateKey::generate(algorithm).map_err(|err| err.to_string())?;
                        mine.push(started.elapsed());
                    }
                    Ok::<_, String>(mine)
                })
            })
            .collect();
        let mut all = Vec::with_capacity(count);
        for worker in workers {
            all.extend(
                worker
                    .join()
                    .map_err(|_| "a worker panicked".to_string())??,
            );
        }
        Ok(all)
    });
    let wall = start.elapsed();

    match timings {
        Ok(timings) => {
            for timing in timings {
                println!("key {:.3}", timing.as_secs_f64() * 1000.0);
            }
            println!("wall {:.6}", wall.as_secs_f64());
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("keygen: {err}");
            ExitCode::FAILURE
        }
    }
}
