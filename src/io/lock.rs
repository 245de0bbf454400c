//! The lock of the zone shared by nginx's worker processes: a word holding the holder's
//! identity (pid and process start time), taken with compare-and-swap and released by a
//! guard, so a panic inside the critical section still releases it. A holder that died inside
//! (SIGKILL, crash) is noticed from `/proc` by whoever waits and the lock is taken over; the
//! start time makes that safe when the kernel has given the dead holder's pid to another
//! process since. Waiters spin briefly, then yield; critical sections are short copies.

use std::fs;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Spins between two looks at whether the holder is still alive (each costs a `/proc` read).
const SPINS_PER_CHECK: u32 = 4096;

/// A held lock; dropping it releases the lock.
#[must_use = "the lock is released when the guard is dropped"]
pub struct LockGuard<'a> {
    word: &'a AtomicU64,
    token: u64,
    /// The previous holder died holding the lock (what it was writing may be half done).
    pub took_over: bool,
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        // Only our own token is cleared: if another process took the lock over from us (it
        // thought we were dead), it stays theirs.
        let _ = self
            .word
            .compare_exchange(self.token, 0, Ordering::Release, Ordering::Relaxed);
    }
}

/// Takes the lock in `word`, waiting as long as a live process holds it.
pub fn lock(word: &AtomicU64) -> LockGuard<'_> {
    let token = my_token();
    let mut spins = 0u32;
    loop {
        if word
            .compare_exchange(0, token, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            return LockGuard {
                word,
                token,
                took_over: false,
            };
        }
        spins = spins.wrapping_add(1);
        if spins.is_multiple_of(SPINS_PER_CHECK) {
            let holder = word.load(Ordering::Relaxed);
            if holder != 0
                && holder != token
                && !holder_alive(holder)
                && word
                    .compare_exchange(holder, token, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                return LockGuard {
                    word,
                    token,
                    took_over: true,
                };
            }
        }
        if spins.is_multiple_of(64) {
            std::thread::yield_now();
        } else {
            core::hint::spin_loop();
        }
    }
}

/// This process's identity in a lock word: pid in the high half, the low 32 bits of its start
/// time in the low half. Read from `/proc` once per process (nginx forks its workers, so the
/// pid is checked each time).
pub fn my_token() -> u64 {
    static CACHE: Mutex<(u32, u64)> = Mutex::new((0, 0));
    let pid = std::process::id();
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if cache.0 != pid {
        let start = process_start(pid).map_or(0, |(start, _)| start);
        *cache = (pid, token_of(pid, start));
    }
    cache.1
}

fn token_of(pid: u32, start: u64) -> u64 {
    (u64::from(pid) << 32) | (start & 0xffff_ffff)
}

/// Whether the process a token names still runs: its pid exists, is not a zombie, and
/// started when the token says (not a new process that got the same pid).
pub fn holder_alive(token: u64) -> bool {
    let pid = (token >> 32) as u32;
    match process_start(pid) {
        Some((start, state)) => state != 'Z' && token_of(pid, start) == token,
        None => false,
    }
}

/// (start time in clock ticks since boot, state letter) of process `pid`, from
/// `/proc/<pid>/stat`; None if there is no such process.
fn process_start(pid: u32) -> Option<(u64, char)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces: fields are
    // counted after its closing parenthesis. Field 3 is the state, field 22 the start time.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    let start = fields.nth(18)?.parse().ok()?;
    Some((start, state))
}

#[cfg(test)]
#[allow(unsafe_code)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::process::Command;
    use std::time::{Duration, Instant};

    /// Env var naming the file a child test process maps and locks.
    const CHILD_ENV: &str = "RTMP_LOCK_TEST_FILE";

    #[test]
    fn own_token_names_a_live_process_and_a_stale_one_does_not() {
        let me = my_token();
        assert_eq!((me >> 32) as u32, std::process::id());
        assert_ne!(me & 0xffff_ffff, 0, "start time read from /proc");
        assert!(holder_alive(me));
        // Same pid, another start time: the pid was reused by a process that never held it.
        assert!(!holder_alive(me ^ 1));
        // A pid that does not exist.
        assert!(!holder_alive(u64::from(u32::MAX - 1) << 32));
    }

    #[test]
    fn the_lock_is_released_by_its_guard_also_when_the_holder_panics() {
        let word = AtomicU64::new(0);
        {
            let g = lock(&word);
            assert!(!g.took_over);
            assert_eq!(word.load(Ordering::Relaxed), my_token());
        }
        assert_eq!(word.load(Ordering::Relaxed), 0);
        let result = std::panic::catch_unwind(|| {
            let _g = lock(&word);
            panic!("inside the critical section");
        });
        assert!(result.is_err());
        assert_eq!(word.load(Ordering::Relaxed), 0, "released while unwinding");
    }

    #[test]
    fn a_lock_left_by_a_reused_pid_is_taken_over() {
        let word = AtomicU64::new(my_token() ^ 1);
        let g = lock(&word);
        assert!(g.took_over);
        drop(g);
        assert_eq!(word.load(Ordering::Relaxed), 0);
    }

    /// Maps the first 8 bytes of `file` shared between processes.
    fn map_word(file: &std::fs::File) -> &'static AtomicU64 {
        use std::os::fd::AsRawFd;
        // SAFETY: a fresh shared mapping of one page of a file at least that long; it is
        // never unmapped (the test process ends), so the reference stays valid, and the word
        // is only used atomically.
        unsafe {
            let p = libc::mmap(
                core::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            );
            assert_ne!(p, libc::MAP_FAILED, "mmap");
            &*(p as *const AtomicU64)
        }
    }

    /// Runs only as the child of the next test: takes the lock and stays inside.
    #[test]
    fn child_holds_the_lock_until_killed() {
        let Some(path) = std::env::var_os(CHILD_ENV) else {
            return;
        };
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(PathBuf::from(path))
            .unwrap();
        let word = map_word(&file);
        let _g = lock(word);
        std::thread::sleep(Duration::from_secs(60));
    }

    #[test]
    fn a_process_killed_inside_the_critical_section_does_not_keep_the_lock() {
        let path = std::env::temp_dir().join(format!("rtmp-lock-{}", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        file.set_len(4096).unwrap();
        let word = map_word(&file);
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "io::lock::tests::child_holds_the_lock_until_killed",
                "--nocapture",
            ])
            .env(CHILD_ENV, &path)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while word.load(Ordering::Acquire) == 0 {
            assert!(Instant::now() < deadline, "the child never took the lock");
            std::thread::sleep(Duration::from_millis(10));
        }
        let holder = word.load(Ordering::Acquire);
        assert_eq!((holder >> 32) as u32, child.id());
        assert!(holder_alive(holder));
        child.kill().unwrap();
        child.wait().unwrap();
        let started = Instant::now();
        let g = lock(word);
        assert!(g.took_over, "the dead child's lock was taken over");
        assert!(started.elapsed() < Duration::from_secs(5));
        drop(g);
        assert_eq!(word.load(Ordering::Relaxed), 0);
        let _ = std::fs::remove_file(&path);
    }
}
