//! Background work yields to requests: threads that only prepare caches (the fill of a live
//! snapshot's per-user lists, the fill of a staged game candidate) and the worker pool that
//! training and fills run their parallel loops on run at a lower scheduling priority, so on a
//! busy machine the query pool, the async workers and the trainer thread's fold-ins get the
//! cores first and background work takes what is left (and all of it when nothing else runs).

/// Nice value of background threads (0 = normal, 19 = lowest).
pub const BACKGROUND_NICE: i32 = 10;

/// Lowers the calling thread's priority to [`BACKGROUND_NICE`] (never raises it: a process
/// started with a higher nice value keeps it). Only on Linux, where a thread's nice value is
/// its own; elsewhere (and if the call fails) nothing changes.
#[allow(unsafe_code)]
pub fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: getpriority/setpriority only read their integer arguments; `who` = 0 is the
    // calling thread on Linux, and raising one's own nice value needs no privilege.
    unsafe {
        if libc::getpriority(libc::PRIO_PROCESS, 0) < BACKGROUND_NICE {
            let _ = libc::setpriority(libc::PRIO_PROCESS, 0, BACKGROUND_NICE);
        }
    }
}

/// A rayon pool of `threads` workers (0 = one per core) named `irgan-work-N` that run at
/// [`BACKGROUND_NICE`]. The service makes rayon's global pool one of these: every parallel
/// loop in a server (game steps, pretraining, cache fills) is background work, while queries
/// run on the query pool's own threads.
pub fn pool_builder(threads: usize) -> rayon::ThreadPoolBuilder {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("irgan-work-{i}"))
        .start_handler(|_| lower_priority())
}

/// The calling thread's nice value (0 where it cannot be read).
#[allow(unsafe_code)]
pub fn current_nice() -> i32 {
    #[cfg(target_os = "linux")]
    // SAFETY: getpriority only reads its arguments (the calling thread).
    unsafe {
        libc::getpriority(libc::PRIO_PROCESS, 0)
    }
    #[cfg(not(target_os = "linux"))]
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_os = "linux")]
    fn a_background_thread_runs_at_the_lower_priority_and_the_caller_does_not() {
        let before = current_nice();
        let nice = std::thread::spawn(|| {
            lower_priority();
            current_nice()
        })
        .join()
        .unwrap();
        assert!(nice >= BACKGROUND_NICE.max(before), "nice {nice}");
        assert_eq!(current_nice(), before);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn the_background_pool_works_at_the_lower_priority() {
        let pool = pool_builder(2).build().unwrap();
        let nices: Vec<i32> = pool.broadcast(|_| current_nice());
        assert_eq!(nices.len(), 2);
        assert!(nices.iter().all(|&n| n >= BACKGROUND_NICE), "{nices:?}");
        let name = pool.install(|| std::thread::current().name().map(str::to_owned));
        assert!(name.is_some_and(|n| n.starts_with("irgan-work-")));
    }
}
