//! The shared zone every worker process maps: what makes `/stat`, `/control` and the
//! one-publisher-per-name rule cover all workers, not just the one that answers.
//!
//! Layout (fixed, no allocator): a header with a lock; one slot per worker process holding its
//! latest `/stat` part (refreshed every [`PUBLISH_MS`] and on each `/stat` request) and a
//! mailbox of `/control` requests for it; a registry of published stream names. The lock is a
//! pid-owned spin lock: a worker that dies holding it (SIGKILL) is detected and the lock
//! taken over. Critical sections are memory copies of at most one slot.

use core::ffi::c_void;
use core::ptr;
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

use ngx::ffi::{ngx_conf_t, ngx_event_t, ngx_int_t, ngx_shm_zone_t, ngx_str_t, NGX_OK};

use super::util::{guard, log_cycle, now_ms};
use crate::control::ControlRequest;
use crate::live::StreamKey;
use crate::server::{Outcome, PublishRegistry};
use crate::stat::{merge, StatSnapshot};

const MAGIC: u64 = 0x7274_6d70_5f72_7331; // "rtmp_rs1"
const HEADER: usize = 4096;
/// Worker processes that can be seen at once (old ones after a reload count too).
const SLOTS: usize = 64;
const SLOT_SIZE: usize = 256 * 1024;
const SLOT_STAT: usize = 8192;
const MAILBOX: usize = 4096;
const REG_ENTRIES: usize = 2048;
const REG_ENTRY: usize = 320;
const REG_KEY_MAX: usize = REG_ENTRY - 8;
/// Total size of the zone.
pub const ZONE_SIZE: usize = HEADER + SLOTS * SLOT_SIZE + REG_ENTRIES * REG_ENTRY;
/// How often a worker refreshes its `/stat` part and reads its mailbox.
const PUBLISH_MS: u64 = 250;
/// Stat parts are refreshed every this many mailbox checks (about 1 s).
const STAT_EVERY: u32 = 4;

/// Base address of the zone in this process (0: no rtmp{} block, so no zone).
static BASE: AtomicUsize = AtomicUsize::new(0);
/// This worker's slot + 1 (0: none).
static MY_SLOT: AtomicUsize = AtomicUsize::new(0);
static mut TIMER: core::mem::MaybeUninit<ngx_event_t> = core::mem::MaybeUninit::zeroed();
static mut TICKS: u32 = 0;
static mut STARTED_MS: u64 = 0;

fn pid() -> u32 {
    std::process::id()
}

fn alive(pid: u32) -> bool {
    // SAFETY: kill with signal 0 only checks that the process exists.
    pid != 0
        && (unsafe { libc::kill(pid as i32, 0) } == 0
            || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM))
}

/// The zone's bytes (None without a zone).
fn zone() -> Option<*mut u8> {
    let base = BASE.load(Ordering::Acquire);
    (base != 0).then_some(base as *mut u8)
}

fn lock_word(base: *mut u8) -> &'static AtomicU64 {
    // SAFETY: offset 8 of the header is an 8-aligned u64 used only atomically.
    unsafe { &*(base.add(8) as *const AtomicU64) }
}

/// Runs `f` with the zone locked.
fn locked<T>(f: impl FnOnce(*mut u8) -> T) -> Option<T> {
    let base = zone()?;
    let word = lock_word(base);
    let me = u64::from(pid());
    let mut spins = 0u32;
    loop {
        if word
            .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            break;
        }
        let holder = word.load(Ordering::Relaxed);
        if holder != 0 && !alive(holder as u32) {
            // Its holder died (SIGKILL, crash) mid-copy: take it over; the data it was
            // writing is one slot or entry, checked again by readers (lengths, decode).
            if word
                .compare_exchange(holder, me, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                break;
            }
        }
        spins += 1;
        if spins.is_multiple_of(64) {
            std::thread::yield_now();
        } else {
            core::hint::spin_loop();
        }
    }
    let out = f(base);
    word.store(0, Ordering::Release);
    Some(out)
}

fn slot(base: *mut u8, i: usize) -> *mut u8 {
    // SAFETY: i < SLOTS, inside the zone.
    unsafe { base.add(HEADER + i * SLOT_SIZE) }
}

fn slot_pid(s: *mut u8) -> &'static AtomicU32 {
    // SAFETY: offset 0 of a slot is a 4-aligned u32 (slots are 4096-aligned).
    unsafe { &*(s as *const AtomicU32) }
}

/// # Safety
/// `p` points at 4 readable/writable bytes inside the zone, 4-aligned.
unsafe fn u32_at(p: *mut u8) -> u32 {
    // SAFETY: guaranteed by the caller.
    unsafe { ptr::read(p as *const u32) }
}

/// # Safety
/// As [`u32_at`].
unsafe fn set_u32(p: *mut u8, v: u32) {
    // SAFETY: guaranteed by the caller.
    unsafe { ptr::write(p as *mut u32, v) }
}

fn reg_entry(base: *mut u8, i: usize) -> *mut u8 {
    // SAFETY: i < REG_ENTRIES, inside the zone.
    unsafe { base.add(HEADER + SLOTS * SLOT_SIZE + i * REG_ENTRY) }
}

/// Registers the zone while the configuration is read (called from the rtmp{} block).
///
/// # Safety
/// `cf` is nginx's live configuration parser.
pub unsafe fn add_zone(cf: *mut ngx_conf_t) -> Result<(), String> {
    // SAFETY: cf is live; the tag is our module's static, the same on every reload.
    unsafe {
        let name = c"nginx_rtmp_rs";
        let mut n = ngx_str_t {
            len: name.count_bytes(),
            data: name.as_ptr() as *mut u8,
        };
        let tag = ptr::addr_of_mut!(super::ngx_rtmp_rs_module) as *mut c_void;
        let zone = ngx::ffi::ngx_shared_memory_add(cf, &mut n, ZONE_SIZE, tag);
        if zone.is_null() {
            return Err("cannot add the shared memory zone".into());
        }
        (*zone).init = Some(zone_init);
        Ok(())
    }
}

extern "C" fn zone_init(zone: *mut ngx_shm_zone_t, data: *mut c_void) -> ngx_int_t {
    guard("shm init", NGX_OK as ngx_int_t, || {
        // SAFETY: nginx mapped shm.size bytes at shm.addr for this zone.
        unsafe {
            let base = (*zone).shm.addr;
            let size = (*zone).shm.size;
            if size < ZONE_SIZE {
                return ngx::ffi::NGX_ERROR as ngx_int_t;
            }
            // A reload reuses the old mapping (data = its old data): workers of the old cycle
            // keep their slots and published names.
            if data.is_null() || ptr::read(base as *const u64) != MAGIC {
                ptr::write_bytes(base, 0, ZONE_SIZE);
                ptr::write(base as *mut u64, MAGIC);
            }
            (*zone).data = base.cast();
            BASE.store(base as usize, Ordering::Release);
            NGX_OK as ngx_int_t
        }
    })
}

/// Worker start: takes a slot, starts the refresh timer, joins the cross-worker registry.
pub fn init_process(cycle: *mut ngx::ffi::ngx_cycle_t) {
    if zone().is_none() {
        return;
    }
    let me = pid();
    let taken = locked(|base| {
        for i in 0..SLOTS {
            let s = slot(base, i);
            let owner = slot_pid(s).load(Ordering::Relaxed);
            if owner == 0 || !alive(owner) {
                if owner != 0 {
                    release_names_of(base, owner);
                }
                // SAFETY: the slot is inside the zone; we hold the lock.
                unsafe { ptr::write_bytes(s, 0, SLOT_STAT) };
                slot_pid(s).store(me, Ordering::Relaxed);
                return Some(i);
            }
        }
        None
    })
    .flatten();
    match taken {
        Some(i) => MY_SLOT.store(i + 1, Ordering::Release),
        None => log_cycle(
            ngx::ffi::NGX_LOG_WARN,
            "rtmp: no free worker slot in the shared zone; /stat will not show this worker",
        ),
    }
    super::conn::with_worker(|w| w.set_publish_registry(Box::new(ShmRegistry)));
    // SAFETY: single-threaded worker start-up; the event lives for the process.
    unsafe {
        STARTED_MS = now_ms();
        let ev = (*ptr::addr_of_mut!(TIMER)).as_mut_ptr();
        (*ev).handler = Some(timer_handler);
        (*ev).log = (*cycle).log;
        (*ev).set_cancelable(1);
        ngx::ffi::ngx_add_timer(ev, PUBLISH_MS as ngx::ffi::ngx_msec_t);
    }
}

/// Worker exit: frees the slot and the names it published.
pub fn exit_process() {
    let Some(i) = MY_SLOT.load(Ordering::Acquire).checked_sub(1) else {
        return;
    };
    let me = pid();
    locked(|base| {
        release_names_of(base, me);
        slot_pid(slot(base, i)).store(0, Ordering::Relaxed);
    });
}

extern "C" fn timer_handler(ev: *mut ngx_event_t) {
    guard("shm timer", (), || {
        run_mailbox();
        // SAFETY: the worker's only thread; TICKS is ours.
        let refresh = unsafe {
            TICKS = TICKS.wrapping_add(1);
            TICKS.is_multiple_of(STAT_EVERY)
        };
        if refresh {
            publish_own(local_part());
        }
        // SAFETY: ev is our static timer.
        unsafe { ngx::ffi::ngx_add_timer(ev, PUBLISH_MS as ngx::ffi::ngx_msec_t) };
    })
}

/// This worker's `/stat` part with the fields only the glue knows.
fn local_part() -> StatSnapshot {
    let mut part = super::conn::with_worker(|w| w.stat_part(now_ms(), pid()));
    part.nginx_version = ngx::ffi::NGINX_VERSION.to_string_lossy().into_owned();
    part.compiler = format!("rustc (nginx-rtmp-rs {})", env!("CARGO_PKG_VERSION"));
    part.built = env!("CARGO_PKG_VERSION").to_string();
    // SAFETY: written once at start-up on this thread.
    let started = unsafe { STARTED_MS };
    part.uptime_s = now_ms().saturating_sub(started) / 1000;
    part
}

/// Stores this worker's part in its slot; a part too big for the slot goes without its
/// client lists (streams and totals stay visible).
fn publish_own(part: StatSnapshot) {
    let Some(i) = MY_SLOT.load(Ordering::Acquire).checked_sub(1) else {
        return;
    };
    let mut bytes = part.encode();
    if bytes.len() > SLOT_SIZE - SLOT_STAT {
        let mut slim = part;
        for s in &mut slim.servers {
            for a in &mut s.applications {
                for st in &mut a.streams {
                    st.clients.clear();
                }
            }
        }
        bytes = slim.encode();
        if bytes.len() > SLOT_SIZE - SLOT_STAT {
            bytes.clear();
        }
    }
    locked(|base| {
        let s = slot(base, i);
        // SAFETY: the slot is ours and inside the zone; the data fits (checked above).
        unsafe {
            set_u32(s.add(4), bytes.len() as u32);
            ptr::copy_nonoverlapping(bytes.as_ptr(), s.add(SLOT_STAT), bytes.len());
        }
    });
}

/// Every live worker's `/stat` part, this one's fresh, merged into one document.
pub fn stat_snapshot() -> StatSnapshot {
    let own = local_part();
    publish_own(own.clone());
    let me = pid();
    let others: Vec<Vec<u8>> = locked(|base| {
        let mut found = Vec::new();
        for i in 0..SLOTS {
            let s = slot(base, i);
            let owner = slot_pid(s).load(Ordering::Relaxed);
            if owner == 0 || owner == me {
                continue;
            }
            if !alive(owner) {
                // A worker that died without exit_process (crash, SIGKILL): forget it.
                release_names_of(base, owner);
                slot_pid(s).store(0, Ordering::Relaxed);
                continue;
            }
            // SAFETY: lengths are bounded by the slot; we hold the lock.
            unsafe {
                let len = (u32_at(s.add(4)) as usize).min(SLOT_SIZE - SLOT_STAT);
                found.push(std::slice::from_raw_parts(s.add(SLOT_STAT), len).to_vec());
            }
        }
        found
    })
    .unwrap_or_default();
    let mut parts = vec![own];
    parts.extend(others.iter().filter_map(|b| StatSnapshot::decode(b).ok()));
    let mut merged = merge(parts);
    merged.pid = me;
    merged
}

/// `/control` drop or redirect: acts on this worker's sessions now and posts the request to
/// every other live worker (they act within [`PUBLISH_MS`]). Returns how many sessions match,
/// counting other workers' from their latest `/stat` parts.
pub fn control(req: &ControlRequest, uri: &str, args: &str) -> usize {
    let mut outcome = Outcome::default();
    let local = super::conn::with_worker(|w| w.control(req, now_ms(), &mut outcome));
    super::conn::apply_outcome(outcome);
    let me = pid();
    let line = format!("{uri}?{args}\n");
    let others: Vec<Vec<u8>> = locked(|base| {
        let mut parts = Vec::new();
        for i in 0..SLOTS {
            let s = slot(base, i);
            let owner = slot_pid(s).load(Ordering::Relaxed);
            if owner == 0 || owner == me || !alive(owner) {
                continue;
            }
            // SAFETY: offsets and lengths stay inside the slot; we hold the lock.
            unsafe {
                let used = (u32_at(s.add(8)) as usize).min(MAILBOX);
                if used + line.len() <= MAILBOX {
                    ptr::copy_nonoverlapping(line.as_ptr(), s.add(64 + used), line.len());
                    set_u32(s.add(8), (used + line.len()) as u32);
                }
                let len = (u32_at(s.add(4)) as usize).min(SLOT_SIZE - SLOT_STAT);
                parts.push(std::slice::from_raw_parts(s.add(SLOT_STAT), len).to_vec());
            }
        }
        parts
    })
    .unwrap_or_default();
    let remote: usize = others
        .iter()
        .filter_map(|b| StatSnapshot::decode(b).ok())
        .map(|s| matching(&s, req))
        .sum();
    local + remote
}

/// Sessions of `s` that `req` selects.
fn matching(s: &StatSnapshot, req: &ControlRequest) -> usize {
    let mut n = 0;
    for srv in &s.servers {
        for app in &srv.applications {
            for st in &app.streams {
                for c in &st.clients {
                    if req.selects(
                        srv.index,
                        &app.name,
                        &st.name,
                        &c.address,
                        c.id,
                        c.publishing,
                    ) {
                        n += 1;
                    }
                }
            }
        }
    }
    n
}

/// Carries out `/control` requests other workers posted for this one.
fn run_mailbox() {
    let Some(i) = MY_SLOT.load(Ordering::Acquire).checked_sub(1) else {
        return;
    };
    let text = locked(|base| {
        let s = slot(base, i);
        // SAFETY: our slot; bounded by MAILBOX; we hold the lock.
        unsafe {
            let used = (u32_at(s.add(8)) as usize).min(MAILBOX);
            if used == 0 {
                return String::new();
            }
            let bytes = std::slice::from_raw_parts(s.add(64), used).to_vec();
            set_u32(s.add(8), 0);
            String::from_utf8_lossy(&bytes).into_owned()
        }
    })
    .unwrap_or_default();
    for line in text.lines() {
        let (uri, args) = line.split_once('?').unwrap_or((line, ""));
        if let Ok(req) = crate::control::parse_control(uri, args) {
            let mut outcome = Outcome::default();
            super::conn::with_worker(|w| w.control(&req, now_ms(), &mut outcome));
            super::conn::apply_outcome(outcome);
        }
    }
    if !text.is_empty() {
        // Dropped sessions close in this loop iteration: refresh the /stat part at the next
        // tick, not a second later.
        // SAFETY: the worker's only thread; TICKS is ours.
        unsafe { TICKS = STAT_EVERY - 1 };
    }
}

fn release_names_of(base: *mut u8, owner: u32) {
    for i in 0..REG_ENTRIES {
        let e = reg_entry(base, i);
        // SAFETY: entries are inside the zone; the caller holds the lock.
        unsafe {
            if u32_at(e) == owner {
                set_u32(e, 0);
            }
        }
    }
}

/// Stream names in the shared registry.
struct ShmRegistry;

fn key_bytes(key: &StreamKey) -> Vec<u8> {
    let mut k = format!("{}\u{0}{}\u{0}{}", key.server, key.app, key.name).into_bytes();
    k.truncate(REG_KEY_MAX);
    k
}

impl PublishRegistry for ShmRegistry {
    fn claim(&mut self, key: &StreamKey) -> bool {
        let k = key_bytes(key);
        let me = pid();
        locked(|base| {
            let mut free = None;
            for i in 0..REG_ENTRIES {
                let e = reg_entry(base, i);
                // SAFETY: entries are inside the zone; we hold the lock.
                unsafe {
                    let owner = u32_at(e);
                    let len = (u32_at(e.add(4)) as usize).min(REG_KEY_MAX);
                    let same = owner != 0
                        && len == k.len()
                        && std::slice::from_raw_parts(e.add(8), len) == k.as_slice();
                    if same {
                        if owner == me {
                            return true;
                        }
                        if alive(owner) {
                            return false;
                        }
                        set_u32(e, 0);
                    }
                    if free.is_none() && (u32_at(e) == 0 || !alive(u32_at(e))) {
                        free = Some(e);
                    }
                }
            }
            // A full registry does not stop publishing: it only loses the cross-worker check.
            if let Some(e) = free {
                // SAFETY: as above.
                unsafe {
                    set_u32(e, me);
                    set_u32(e.add(4), k.len() as u32);
                    ptr::copy_nonoverlapping(k.as_ptr(), e.add(8), k.len());
                }
            }
            true
        })
        .unwrap_or(true)
    }

    fn release(&mut self, key: &StreamKey) {
        let k = key_bytes(key);
        let me = pid();
        locked(|base| {
            for i in 0..REG_ENTRIES {
                let e = reg_entry(base, i);
                // SAFETY: entries are inside the zone; we hold the lock.
                unsafe {
                    let len = (u32_at(e.add(4)) as usize).min(REG_KEY_MAX);
                    if u32_at(e) == me
                        && len == k.len()
                        && std::slice::from_raw_parts(e.add(8), len) == k.as_slice()
                    {
                        set_u32(e, 0);
                    }
                }
            }
        });
    }
}
