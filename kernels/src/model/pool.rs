//! One persistent pool of worker threads for the forward pass: started once per session, then
//! every parallel step is one [`Pool::run`] call that runs a closure on all threads (the caller
//! is thread 0) and returns when every thread has finished it. No thread is spawned and nothing
//! is allocated per call.
//!
//! Why not rayon: `ThreadPool::broadcast` allocates its jobs on every call, and the token loop
//! must not allocate. Waking: workers spin briefly on the job counter (a decode step issues a few
//! hundred short jobs, and a futex wake costs tens of microseconds), then sleep on a condvar so an
//! idle session costs no CPU.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

/// Spins before a worker sleeps or the caller waits on the condvar.
const SPIN_ITERATIONS: u32 = 20_000;

/// The job of one `run` call, with its lifetime erased (see the SAFETY argument in `run`).
#[derive(Clone, Copy)]
struct JobPtr(*const (dyn Fn(usize) + Sync));

// SAFETY: the pointee is `Sync` (shared calls from many threads are allowed) and `run` keeps
// it alive until every worker has finished with it.
unsafe impl Send for JobPtr {}

struct Shared {
    /// The current job; written only while `remaining == 0` (no worker is reading it).
    job: Mutex<Option<JobPtr>>,
    /// Bumped once per `run`; a worker runs each generation once.
    generation: AtomicU64,
    /// Workers that have not yet finished the current generation.
    remaining: AtomicUsize,
    shutdown: AtomicBool,
    /// A worker's job panicked; `run` re-raises it on the caller.
    panicked: AtomicBool,
    /// Guards the sleeping side of `generation` and `remaining` (changes to them are made
    /// while holding it, so a sleeper cannot miss a wake-up).
    lock: Mutex<()>,
    work: Condvar,
    done: Condvar,
}

/// A fixed set of `n_threads - 1` workers plus the calling thread.
pub struct Pool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    n_threads: usize,
}

impl Pool {
    /// Starts `n_threads - 1` workers (`n_threads` is clamped to at least 1).
    pub fn new(n_threads: usize) -> std::io::Result<Pool> {
        let n_threads = n_threads.max(1);
        let shared = Arc::new(Shared {
            job: Mutex::new(None),
            generation: AtomicU64::new(0),
            remaining: AtomicUsize::new(0),
            shutdown: AtomicBool::new(false),
            panicked: AtomicBool::new(false),
            lock: Mutex::new(()),
            work: Condvar::new(),
            done: Condvar::new(),
        });
        let mut workers = Vec::with_capacity(n_threads - 1);
        for tid in 1..n_threads {
            let shared = Arc::clone(&shared);
            let handle = std::thread::Builder::new()
                .name(format!("forward-{tid}"))
                .spawn(move || worker(&shared, tid))?;
            workers.push(handle);
        }
        Ok(Pool {
            shared,
            workers,
            n_threads,
        })
    }

    pub fn n_threads(&self) -> usize {
        self.n_threads
    }

    /// Runs `job(tid)` once on every thread, `tid` in `0..n_threads` (0 is the caller), and
    /// returns when all have finished. A panic in any of them is re-raised here after all
    /// have finished.
    pub fn run<F: Fn(usize) + Sync>(&self, job: F) {
        if self.n_threads == 1 {
            job(0);
            return;
        }
        let s = &*self.shared;
        let dyn_job: &(dyn Fn(usize) + Sync) = &job;
        // SAFETY: the pointer is only dereferenced by workers between the generation bump below
        // and their decrement of `remaining`, and this function does not return (nor unwind:
        // the caller's own share runs under `catch_unwind`) before `remaining` is back to 0, so
        // `job` outlives every use. Erasing the lifetime is what lets the workers, which outlive
        // this call, hold the pointer at all.
        let ptr: *const (dyn Fn(usize) + Sync + 'static) = unsafe { std::mem::transmute(dyn_job) };
        *s.job.lock().unwrap_or_else(|e| e.into_inner()) = Some(JobPtr(ptr));
        {
            let _g = s.lock.lock().unwrap_or_else(|e| e.into_inner());
            s.remaining.store(self.n_threads - 1, Ordering::SeqCst);
            s.generation.fetch_add(1, Ordering::SeqCst);
            s.work.notify_all();
        }
        let mine = catch_unwind(AssertUnwindSafe(|| job(0)));
        spin_then_wait(s, &s.done, || s.remaining.load(Ordering::Acquire) != 0);
        *s.job.lock().unwrap_or_else(|e| e.into_inner()) = None;
        if let Err(payload) = mine {
            std::panic::resume_unwind(payload);
        }
        if s.panicked.swap(false, Ordering::SeqCst) {
            panic!("a forward-pass worker thread panicked");
        }
    }
}

/// Spins while `busy()` (a few microseconds), then sleeps on `cv` until it is false. Whoever
/// makes `busy()` false does so holding `s.lock` and then notifies `cv`, so the sleep cannot
/// miss it.
fn spin_then_wait(s: &Shared, cv: &Condvar, busy: impl Fn() -> bool) {
    let mut spins = 0;
    while busy() {
        if spins < SPIN_ITERATIONS {
            spins += 1;
            std::hint::spin_loop();
            continue;
        }
        let g = s.lock.lock().unwrap_or_else(|e| e.into_inner());
        let _g = cv
            .wait_while(g, |_| busy())
            .unwrap_or_else(|e| e.into_inner());
    }
}

fn worker(s: &Shared, tid: usize) {
    let mut seen = 0u64;
    loop {
        spin_then_wait(s, &s.work, || {
            s.generation.load(Ordering::Acquire) == seen && !s.shutdown.load(Ordering::Acquire)
        });
        if s.shutdown.load(Ordering::Acquire) {
            return;
        }
        seen = s.generation.load(Ordering::Acquire);
        let job = *s.job.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(JobPtr(ptr)) = job {
            // SAFETY: `run` published this pointer before bumping the generation and keeps the
            // closure alive until `remaining` reaches 0, which happens only after the decrement
            // below.
            let f = unsafe { &*ptr };
            if catch_unwind(AssertUnwindSafe(|| f(tid))).is_err() {
                s.panicked.store(true, Ordering::SeqCst);
            }
        }
        let _g = s.lock.lock().unwrap_or_else(|e| e.into_inner());
        if s.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            s.done.notify_all();
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        {
            let _g = self.shared.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.shared.shutdown.store(true, Ordering::SeqCst);
            self.shared.work.notify_all();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// Rows `[start, end)` of part `part` when `rows` are cut into `parts` pieces whose boundaries
/// fall on multiples of `align` (the last piece takes the remainder). The same `(rows, parts,
/// align)` always gives the same cut; pieces may be empty when there are few rows.
pub fn part_range(rows: usize, part: usize, parts: usize, align: usize) -> std::ops::Range<usize> {
    let align = align.max(1);
    let units = rows.div_ceil(align);
    let bound = |p: usize| ((units * p / parts) * align).min(rows);
    bound(part)..bound(part + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn every_thread_runs_each_job_once() {
        for n in [1, 2, 3, 5] {
            let pool = Pool::new(n).unwrap();
            let hits: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
            for _ in 0..200 {
                pool.run(|tid| {
                    hits[tid].fetch_add(1, Ordering::Relaxed);
                });
            }
            for (tid, h) in hits.iter().enumerate() {
                assert_eq!(h.load(Ordering::Relaxed), 200, "threads {n} tid {tid}");
            }
        }
    }

    #[test]
    fn a_worker_panic_reaches_the_caller_and_the_pool_survives() {
        let pool = Pool::new(2).unwrap();
        let r = catch_unwind(AssertUnwindSafe(|| {
            pool.run(|tid| {
                if tid == 1 {
                    panic!("planted");
                }
            })
        }));
        assert!(r.is_err());
        let count = AtomicUsize::new(0);
        pool.run(|_| {
            count.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(count.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn parts_cover_the_rows_once_on_aligned_bounds() {
        for rows in [0, 1, 63, 64, 65, 576, 2048, 5632, 32000] {
            for parts in 1..=7 {
                let mut next = 0;
                for p in 0..parts {
                    let r = part_range(rows, p, parts, 64);
                    assert_eq!(r.start, next, "rows {rows} parts {parts}");
                    assert!(r.start.is_multiple_of(64) || r.start == rows);
                    next = r.end;
                }
                assert_eq!(next, rows);
            }
        }
    }
}
