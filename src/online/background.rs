//! Background work yields to requests: threads that only prepare caches (the fill of a live
//! snapshot's per-user lists, the fill of a staged game candidate) and the game's own steps
//! ([`pool`]) run at a lower scheduling priority, so on a busy machine the query pool, the
//! async workers and the trainer's fold-ins get the cores first and the rest take what is
//! left.

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

/// A rayon pool of `threads` threads (0 = one per core) named `name-N`, each at the
/// background priority: work [`rayon::ThreadPool::install`]ed in it (and every parallel
/// iterator inside) yields to requests. `None` if the threads cannot be started.
pub fn pool(name: &'static str, threads: usize) -> Option<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(move |i| format!("{name}-{i}"))
        .start_handler(|_| lower_priority())
        .build()
        .ok()
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
    fn work_installed_in_a_background_pool_runs_at_the_lower_priority() {
        let before = current_nice();
        let p = pool("irgan-test-bg", 2).expect("pool");
        let nice = p.install(|| {
            use rayon::prelude::*;
            (0..64).into_par_iter().map(|_| current_nice()).min()
        });
        assert!(nice.unwrap() >= BACKGROUND_NICE.max(before));
        assert_eq!(current_nice(), before);
    }
}
