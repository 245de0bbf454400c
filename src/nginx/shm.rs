//! The shared zone every worker process maps: what makes `/stat`, `/control`, the
//! one-publisher-per-name rule and playback cover all workers, not just the one that answers.
//!
//! Layout (fixed, no allocator): a header with a lock; one slot per worker process holding its
//! latest `/stat` part (refreshed every [`STAT_MS`] and on each `/stat` request) and a
//! mailbox of `/control` requests for it; a registry of published stream names; [`RINGS`]
//! media rings, through which players in one worker get a stream published in another. The
//! lock ([`crate::io::lock`]) is owned by pid and process start time and released by a guard:
//! a worker that dies holding it (SIGKILL) is detected and the lock taken over, even if its
//! pid was reused. Critical sections copy and scan zone memory (with `kill(pid, 0)` liveness
//! checks), never IO: taking a slot, writing one's own `/stat` part or emptying one's mailbox,
//! copying every other live worker's part out (`/stat`; `/control` also appends to their
//! mailboxes), scanning the name registry to claim or release names, scanning the ring
//! headers to take a ring. Media goes through the rings without the lock (one writer per
//! ring; readers check they were not lapped).

use core::ffi::c_void;
use core::ptr;
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

use ngx::ffi::{ngx_conf_t, ngx_event_t, ngx_int_t, ngx_shm_zone_t, ngx_str_t, NGX_OK};

use super::util::{guard, log_cycle, now_ms};
use crate::control::ControlRequest;
use crate::live::StreamKey;
use crate::server::{Outcome, PublishRegistry, RecordControl, RemoteFrame, RemoteFrameRef};
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
/// Media rings: streams published at once whose media other workers can play.
const RINGS: usize = 32;
/// Ring header: owner, positions, key, and the latest metadata and codec headers.
const RING_HEADER: usize = 64 * 1024;
/// Media bytes per ring: several seconds of a high-bitrate stream (13 s at 2.5 Mbit/s), so
/// a joining player in another worker starts from the last keyframe.
const RING_DATA: usize = 4 * 1024 * 1024;
const RING_SIZE: usize = RING_HEADER + RING_DATA;
/// Total size of the zone. Pages are only backed by memory once touched.
pub const ZONE_SIZE: usize =
    HEADER + SLOTS * SLOT_SIZE + REG_ENTRIES * REG_ENTRY + RINGS * RING_SIZE;
/// How often a worker reads its mailbox and looks for streams its players wait for.
const PUBLISH_MS: u64 = 100;
/// How often a worker that plays other workers' streams moves their new messages.
const FOLLOW_MS: u64 = 10;
/// How often a worker refreshes its `/stat` part.
const STAT_MS: u64 = 1000;

/// Room for nginx's slab header and page table at the start of the zone (about 24 bytes
/// per 4 KiB page, so ~1.7 MB here), which our layout follows.
const SLAB_OVERHEAD: usize = 4 * 1024 * 1024;

/// Base address of the zone in this process (0: no rtmp{} block, so no zone).
static BASE: AtomicUsize = AtomicUsize::new(0);
/// This worker's slot + 1 (0: none).
static MY_SLOT: AtomicUsize = AtomicUsize::new(0);
/// Whether nginx runs several workers (`worker_processes`): then every published stream is
/// kept in its ring, ready for players of other workers.
static MANY_WORKERS: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
static mut TIMER: core::mem::MaybeUninit<ngx_event_t> = core::mem::MaybeUninit::zeroed();
static mut LAST_STAT_MS: u64 = 0;
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

/// Runs `f` with the zone locked ([`crate::io::lock`]: released by a guard, so also when `f`
/// panics; taken over from a holder that died inside, pid reuse included).
fn locked<T>(f: impl FnOnce(*mut u8) -> T) -> Option<T> {
    let base = zone()?;
    let _guard = crate::io::lock::lock(lock_word(base));
    // A holder that died mid-copy left at most one slot or entry half written; readers check
    // what they read (lengths, decode) anyway.
    Some(f(base))
}

fn slot(base: *mut u8, i: usize) -> *mut u8 {
    // SAFETY: i < SLOTS, inside the zone.
    unsafe { base.add(HEADER + i * SLOT_SIZE) }
}

/// Offset in a worker's slot of its number of RTMP connections (written only by that worker,
/// without the lock; summed by any worker for `max_connections`).
const SLOT_CONNECTIONS: usize = 12;

fn slot_connections(s: *mut u8) -> &'static AtomicU32 {
    // SAFETY: offset 12 of a slot is a 4-aligned u32 (slots are 4096-aligned), zeroed when the
    // slot is taken, and used only atomically.
    unsafe { &*(s.add(SLOT_CONNECTIONS) as *const AtomicU32) }
}

/// This worker now has `n` RTMP connections.
pub fn set_connection_count(n: usize) {
    let (Some(base), Some(i)) = (zone(), MY_SLOT.load(Ordering::Acquire).checked_sub(1)) else {
        return;
    };
    let n = u32::try_from(n).unwrap_or(u32::MAX);
    slot_connections(slot(base, i)).store(n, Ordering::Relaxed);
}

/// RTMP connections of every live worker.
fn connection_total() -> Option<u64> {
    let base = zone()?;
    let mut total = 0u64;
    for i in 0..SLOTS {
        let s = slot(base, i);
        let owner = slot_pid(s).load(Ordering::Relaxed);
        if owner != 0 && (owner == pid() || alive(owner)) {
            total += u64::from(slot_connections(s).load(Ordering::Relaxed));
        }
    }
    Some(total)
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
        let zone = ngx::ffi::ngx_shared_memory_add(cf, &mut n, ZONE_SIZE + SLAB_OVERHEAD, tag);
        if zone.is_null() {
            return Err("cannot add the shared memory zone".into());
        }
        (*zone).init = Some(zone_init);
        Ok(())
    }
}

extern "C" fn zone_init(zone: *mut ngx_shm_zone_t, data: *mut c_void) -> ngx_int_t {
    guard("shm init", ngx::ffi::NGX_ERROR as ngx_int_t, || {
        // SAFETY: nginx mapped shm.size bytes at shm.addr for this zone and set its slab
        // allocator up at the start (header, then page table, then pages from `start`).
        unsafe {
            let base = if data.is_null() {
                // Our layout starts after nginx's slab header and page table: nginx's master
                // uses the header's mutex when a worker exits, so it must stay intact. The
                // pages there are untouched, hence still zero (anonymous shared memory):
                // nothing to clear, and nothing backed by RAM until used.
                let sp = (*zone).shm.addr as *const ngx::ffi::ngx_slab_pool_t;
                let start = (*sp).start;
                let end = (*zone).shm.addr.add((*zone).shm.size);
                if start.is_null() || (end as usize).saturating_sub(start as usize) < ZONE_SIZE {
                    return ngx::ffi::NGX_ERROR as ngx_int_t;
                }
                ptr::write(start as *mut u64, MAGIC);
                start
            } else {
                // A reload reuses the old mapping (data = our base from then): workers of the
                // old cycle keep their slots, published names and media rings.
                let start = data as *mut u8;
                if ptr::read(start as *const u64) != MAGIC {
                    return ngx::ffi::NGX_ERROR as ngx_int_t;
                }
                start
            };
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
        Some(i) => {
            MY_SLOT.store(i + 1, Ordering::Release);
            rings::forget_follows();
        }
        None => log_cycle(
            ngx::ffi::NGX_LOG_WARN,
            "rtmp: no free worker slot in the shared zone; /stat will not show this worker",
        ),
    }
    super::worker::with_worker(|w| w.set_publish_registry(Box::new(ShmRegistry)));
    // SAFETY: the core module's configuration lives in the cycle for the process's lifetime.
    let workers = unsafe {
        let ccf = *(*cycle).conf_ctx.add(ngx::ffi::ngx_core_module.index)
            as *const ngx::ffi::ngx_core_conf_t;
        if ccf.is_null() {
            1
        } else {
            (*ccf).worker_processes
        }
    };
    MANY_WORKERS.store(workers > 1, Ordering::Release);
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
    rings::end_all_of(me);
    rings::forget_follows();
}

extern "C" fn timer_handler(ev: *mut ngx_event_t) {
    guard("shm timer", (), || {
        run_mailbox();
        let mut outcome = Outcome::default();
        let following = super::worker::with_worker(|w| w.pump_remote(&mut outcome));
        super::conn::apply_outcome(outcome);
        let now = now_ms();
        // SAFETY: the worker's only thread; LAST_STAT_MS is ours.
        let refresh = unsafe { now.saturating_sub(LAST_STAT_MS) >= STAT_MS };
        if refresh {
            publish_own(local_part());
        }
        let next = if following { FOLLOW_MS } else { PUBLISH_MS };
        // SAFETY: ev is our static timer.
        unsafe { ngx::ffi::ngx_add_timer(ev, next as ngx::ffi::ngx_msec_t) };
    })
}

/// This worker's `/stat` part with the fields only the glue knows.
fn local_part() -> StatSnapshot {
    let mut part = super::worker::with_worker(|w| w.stat_part(now_ms(), pid()));
    part.nginx_version = ngx::ffi::NGINX_VERSION.to_string_lossy().into_owned();
    // Stamped by build.rs: `rustc 1.95.0 (...)` and `Dec  6 2026 08:27:31 (nginx-rtmp-rs
    // 0.1.0 abcdef123456)` (the C module's `__DATE__ " " __TIME__`, then version and commit).
    part.compiler = env!("RTMP_RS_RUSTC").to_string();
    part.built = concat!(
        env!("RTMP_RS_BUILT"),
        " (nginx-rtmp-rs ",
        env!("CARGO_PKG_VERSION"),
        " ",
        env!("RTMP_RS_COMMIT"),
        ")"
    )
    .to_string();
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
    // SAFETY: the worker's only thread.
    unsafe { LAST_STAT_MS = now_ms() };
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
    let local = super::worker::with_worker(|w| w.control(req, now_ms(), &mut outcome));
    super::conn::apply_outcome(outcome);
    let remote: usize = post_to_others(uri, args)
        .iter()
        .map(|s| matching(s, req))
        .sum();
    local + remote
}

/// `/control/record/start|stop`: on this worker's streams, or else posted to the worker that
/// publishes the stream, answered from its latest `/stat` part (the file it is writing, or
/// the one it will open: the name is made from the time and the configuration every worker
/// shares).
pub fn record_control(
    req: &ControlRequest,
    uri: &str,
    args: &str,
    recorder: &str,
    start: bool,
) -> RecordControl {
    let mut outcome = Outcome::default();
    let local = super::worker::with_worker(|w| {
        w.record_control(req, recorder, start, now_ms(), &mut outcome)
    });
    super::conn::apply_outcome(outcome);
    if local != RecordControl::NoStream {
        return local;
    }
    let parts = post_to_others(uri, args);
    // SAFETY: nginx's cached time, read on the worker's only thread.
    let tz_offset_min = unsafe { (*ngx::ffi::ngx_cached_time).gmtoff as i32 };
    crate::server::remote_record_control(
        req,
        recorder,
        start,
        &parts,
        &super::conf::servers(),
        super::util::unix_ms(),
        tz_offset_min,
    )
}

/// Posts `uri?args` to every other live worker's mailbox (they act within [`PUBLISH_MS`])
/// and returns their latest `/stat` parts.
fn post_to_others(uri: &str, args: &str) -> Vec<StatSnapshot> {
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
    others
        .iter()
        .filter_map(|b| StatSnapshot::decode(b).ok())
        .collect()
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
            super::worker::with_worker(|w| w.control(&req, now_ms(), &mut outcome));
            super::conn::apply_outcome(outcome);
        }
    }
    if !text.is_empty() {
        // Dropped sessions close in this loop iteration: refresh the /stat part at the next
        // tick, not a second later.
        // SAFETY: the worker's only thread.
        unsafe { LAST_STAT_MS = 0 };
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
    fn connections(&self) -> Option<u64> {
        connection_total()
    }

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

    fn media(&mut self, key: &StreamKey, frame: RemoteFrameRef<'_>) {
        rings::write(key, frame);
    }

    fn follow(&mut self, key: &StreamKey) -> Option<Vec<RemoteFrame>> {
        rings::follow(key)
    }

    fn poll(&mut self, key: &StreamKey, out: &mut Vec<RemoteFrame>) -> bool {
        rings::poll(key, out)
    }

    fn unfollow(&mut self, key: &StreamKey) {
        rings::unfollow(key);
    }

    fn followed(&self, key: &StreamKey) -> bool {
        rings::followed(key)
    }

    fn set_local_players(&mut self, key: &StreamKey, any: bool) {
        rings::set_local_players(key, any);
    }

    fn watched(&self, key: &StreamKey) -> bool {
        rings::watched(key)
    }

    fn release(&mut self, key: &StreamKey) {
        rings::end(key);
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

/// Media rings: the publishing worker appends every message of a stream; workers with players
/// of it read them (lock-free: one writer per ring, readers check they were not lapped).
mod rings {
    use super::*;
    use bytes::Bytes;
    use std::cell::RefCell;
    use std::collections::HashMap;

    use crate::live::FrameKind;

    // Ring header fields (byte offsets).
    const OWNER: usize = 0; // u32 pid, 0 = free
    const ENDED: usize = 4; // u32
    const GEN: usize = 8; // AtomicU64
    const RESERVE: usize = 16; // AtomicU64: bytes written or being written
    const WRITTEN: usize = 24; // AtomicU64: bytes complete
    const KEYPOS: usize = 32; // AtomicU64: position of the last keyframe record (+1; 0 none)
    const HVER: usize = 40; // AtomicU64: seqlock of the header copies
    const KEYLEN: usize = 48; // u32
    const FOLLOWERS: usize = 56; // AtomicU64: bit n = the worker in slot n follows this ring
    const LOCAL_PLAYERS: usize = 1016; // AtomicU64: 1 while the publisher's worker has players
    const KEY: usize = 64; // key bytes (REG_KEY_MAX)
    /// Latest metadata, video and audio codec headers: (kind, offset of length, capacity).
    const HEADERS: [(FrameKind, usize, usize); 3] = [
        (FrameKind::Data, 1024, 16 * 1024),
        (FrameKind::Video, 18 * 1024, 32 * 1024),
        (FrameKind::Audio, 52 * 1024, 8 * 1024),
    ];

    /// (offset of length, capacity) of the header copy a message of `kind` goes to: audio for
    /// anything but metadata and video.
    fn header_area(kind: FrameKind) -> (usize, usize) {
        let [data, video, audio] = HEADERS;
        let (_, off, cap) = match kind {
            FrameKind::Data => data,
            FrameKind::Video => video,
            _ => audio,
        };
        (off, cap)
    }
    const REC_HEADER: usize = 16;
    /// Messages read per poll and followed stream (the rest comes at the next poll).
    const MAX_BATCH: usize = 512;

    struct Follow {
        ring: usize,
        generation: u64,
        owner: u32,
        pos: u64,
    }

    thread_local! {
        /// Rings this worker writes, by stream.
        static WRITING: RefCell<HashMap<StreamKey, usize>> = RefCell::new(HashMap::new());
        /// Rings this worker reads, by stream.
        static FOLLOWING: RefCell<HashMap<StreamKey, Follow>> = RefCell::new(HashMap::new());
        /// Streams published here that have players here (kept for a ring made later).
        static LOCALLY_WATCHED: RefCell<std::collections::HashSet<StreamKey>> =
            RefCell::new(std::collections::HashSet::new());
    }

    fn ring(base: *mut u8, i: usize) -> *mut u8 {
        // SAFETY: i < RINGS, inside the zone.
        unsafe { base.add(HEADER + SLOTS * SLOT_SIZE + REG_ENTRIES * REG_ENTRY + i * RING_SIZE) }
    }

    fn atomic(r: *mut u8, off: usize) -> &'static AtomicU64 {
        // SAFETY: ring headers are 8-aligned; these fields are only used atomically.
        unsafe { &*(r.add(off) as *const AtomicU64) }
    }

    fn owner(r: *mut u8) -> &'static AtomicU32 {
        // SAFETY: as above, a 4-aligned u32 used atomically.
        unsafe { &*(r.add(OWNER) as *const AtomicU32) }
    }

    fn ended(r: *mut u8) -> &'static AtomicU32 {
        // SAFETY: as above.
        unsafe { &*(r.add(ENDED) as *const AtomicU32) }
    }

    fn key_matches(r: *mut u8, k: &[u8]) -> bool {
        // SAFETY: the key area is inside the ring header; its length is bounded.
        unsafe {
            let len = (u32_at(r.add(KEYLEN)) as usize).min(REG_KEY_MAX);
            len == k.len() && std::slice::from_raw_parts(r.add(KEY), len) == k
        }
    }

    /// Copies `dst.len()` bytes from ring position `pos` (wrapping).
    fn read_at(r: *mut u8, pos: u64, dst: &mut [u8]) {
        let data = RING_HEADER;
        let start = (pos % RING_DATA as u64) as usize;
        let first = dst.len().min(RING_DATA - start);
        // SAFETY: both pieces are inside the ring's data area.
        unsafe {
            ptr::copy_nonoverlapping(r.add(data + start), dst.as_mut_ptr(), first);
            ptr::copy_nonoverlapping(r.add(data), dst.as_mut_ptr().add(first), dst.len() - first);
        }
    }

    fn write_at(r: *mut u8, pos: u64, src: &[u8]) {
        let data = RING_HEADER;
        let start = (pos % RING_DATA as u64) as usize;
        let first = src.len().min(RING_DATA - start);
        // SAFETY: both pieces are inside the ring's data area.
        unsafe {
            ptr::copy_nonoverlapping(src.as_ptr(), r.add(data + start), first);
            ptr::copy_nonoverlapping(src.as_ptr().add(first), r.add(data), src.len() - first);
        }
    }

    /// The ring this worker writes `key` into, taking a free one on the first message.
    fn writer_ring(base: *mut u8, key: &StreamKey) -> Option<usize> {
        if let Some(i) = WRITING.with(|w| w.borrow().get(key).copied()) {
            return Some(i);
        }
        let k = key_bytes(key);
        let me = pid();
        let taken = locked(|_| {
            for i in 0..RINGS {
                let r = ring(base, i);
                let o = owner(r).load(Ordering::Relaxed);
                let free = o == 0 || ended(r).load(Ordering::Relaxed) != 0 || !alive(o);
                if free {
                    owner(r).store(me, Ordering::Relaxed);
                    ended(r).store(0, Ordering::Relaxed);
                    atomic(r, GEN).fetch_add(1, Ordering::AcqRel);
                    atomic(r, KEYPOS).store(0, Ordering::Release);
                    atomic(r, FOLLOWERS).store(0, Ordering::Release);
                    let watched = LOCALLY_WATCHED.with(|w| w.borrow().contains(key));
                    atomic(r, LOCAL_PLAYERS).store(u64::from(watched), Ordering::Release);
                    // SAFETY: inside the ring header; we hold the lock.
                    unsafe {
                        set_u32(r.add(KEYLEN), k.len() as u32);
                        ptr::copy_nonoverlapping(k.as_ptr(), r.add(KEY), k.len());
                        for (_, off, _) in HEADERS {
                            set_u32(r.add(off), 0);
                        }
                    }
                    return Some(i);
                }
            }
            None
        })
        .flatten();
        match taken {
            Some(i) => WRITING.with(|w| w.borrow_mut().insert(key.clone(), i)),
            None => {
                log_cycle(
                    ngx::ffi::NGX_LOG_WARN,
                    &format!("rtmp: all {RINGS} media rings in use; \"{key}\" plays only in its own worker"),
                );
                WRITING.with(|w| w.borrow_mut().insert(key.clone(), usize::MAX))
            }
        };
        taken
    }

    /// Appends one message of a stream this worker publishes.
    pub fn write(key: &StreamKey, f: RemoteFrameRef<'_>) {
        let Some(base) = zone() else { return };
        let Some(i) = writer_ring(base, key) else {
            return;
        };
        if i >= RINGS {
            return;
        }
        let r = ring(base, i);
        if f.sequence_header || f.kind == FrameKind::Data {
            let (off, cap) = header_area(f.kind);
            if f.payload.len() <= cap {
                let v = atomic(r, HVER);
                v.fetch_add(1, Ordering::AcqRel);
                // SAFETY: inside the ring header (capacity checked).
                unsafe {
                    set_u32(r.add(off), f.payload.len() as u32);
                    set_u32(r.add(off + 4), f.timestamp);
                    ptr::copy_nonoverlapping(f.payload.as_ptr(), r.add(off + 8), f.payload.len());
                }
                v.fetch_add(1, Ordering::AcqRel);
            }
        }
        // With several workers every stream is kept, so a player in any worker starts at once
        // from the last keyframe. With one worker, messages go to the ring only while another
        // worker follows (after a reload): an unwatched ring then costs no memory (its pages
        // are never touched), and a first follower starts at the next keyframe.
        let kept = MANY_WORKERS.load(Ordering::Relaxed);
        if !kept && atomic(r, FOLLOWERS).load(Ordering::Acquire) == 0 {
            if atomic(r, KEYPOS).load(Ordering::Relaxed) != 0 {
                atomic(r, KEYPOS).store(0, Ordering::Release);
            }
            return;
        }
        let len = (REC_HEADER + f.payload.len()).next_multiple_of(8);
        if len > RING_DATA / 4 {
            return;
        }
        let pos = atomic(r, WRITTEN).load(Ordering::Relaxed);
        // Readers still copying bytes about to be overwritten see this and resynchronise.
        atomic(r, RESERVE).store(pos + len as u64, Ordering::SeqCst);
        core::sync::atomic::fence(Ordering::SeqCst);
        let mut head = [0u8; REC_HEADER];
        head[0..4].copy_from_slice(&(len as u32).to_le_bytes());
        head[4..8].copy_from_slice(&(f.payload.len() as u32).to_le_bytes());
        head[8] = match f.kind {
            FrameKind::Audio => 8,
            FrameKind::Video => 9,
            _ => 18,
        };
        head[9] = u8::from(f.keyframe) | (u8::from(f.sequence_header) << 1);
        head[12..16].copy_from_slice(&f.timestamp.to_le_bytes());
        write_at(r, pos, &head);
        write_at(r, pos + REC_HEADER as u64, f.payload);
        if f.keyframe && f.kind == FrameKind::Video {
            atomic(r, KEYPOS).store(pos + 1, Ordering::Release);
        }
        atomic(r, WRITTEN).store(pos + len as u64, Ordering::Release);
    }

    /// The publisher of `key` left this worker: its ring ends (readers tell their players).
    pub fn end(key: &StreamKey) {
        let Some(base) = zone() else { return };
        if let Some(i) = WRITING.with(|w| w.borrow_mut().remove(key)) {
            if i < RINGS {
                ended(ring(base, i)).store(1, Ordering::Release);
            }
        }
    }

    /// Worker exit: every ring it writes ends.
    pub fn end_all_of(me: u32) {
        let Some(base) = zone() else { return };
        WRITING.with(|w| w.borrow_mut().clear());
        for i in 0..RINGS {
            let r = ring(base, i);
            if owner(r).load(Ordering::Relaxed) == me {
                ended(r).store(1, Ordering::Release);
            }
        }
    }

    fn kind_of(t: u8) -> FrameKind {
        match t {
            8 => FrameKind::Audio,
            9 => FrameKind::Video,
            _ => FrameKind::Data,
        }
    }

    /// Reads the codec headers and metadata (retrying while the writer updates them).
    fn read_headers(r: *mut u8) -> Vec<RemoteFrame> {
        let v = atomic(r, HVER);
        for _ in 0..16 {
            let before = v.load(Ordering::Acquire);
            if before % 2 == 1 {
                std::thread::yield_now();
                continue;
            }
            let mut out = Vec::new();
            for (kind, off, cap) in HEADERS {
                // SAFETY: inside the ring header; the length is bounded by the capacity.
                unsafe {
                    let len = (u32_at(r.add(off)) as usize).min(cap);
                    if len == 0 {
                        continue;
                    }
                    let ts = u32_at(r.add(off + 4));
                    let bytes = std::slice::from_raw_parts(r.add(off + 8), len).to_vec();
                    out.push(RemoteFrame {
                        kind,
                        timestamp: ts,
                        keyframe: false,
                        sequence_header: kind != FrameKind::Data,
                        payload: Bytes::from(bytes),
                    });
                }
            }
            if v.load(Ordering::Acquire) == before {
                return out;
            }
        }
        Vec::new()
    }

    /// Reads records from `f.pos` up to what is written (at most [`MAX_BATCH`]). Returns
    /// false when the reader was lapped (the caller resynchronises).
    fn read_records(r: *mut u8, f: &mut Follow, out: &mut Vec<RemoteFrame>) -> bool {
        let written = atomic(r, WRITTEN).load(Ordering::Acquire);
        let mut n = 0;
        while f.pos < written && n < MAX_BATCH {
            let mut head = [0u8; REC_HEADER];
            read_at(r, f.pos, &mut head);
            let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
            let plen = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
            if !(REC_HEADER..=RING_DATA / 4).contains(&len) || plen > len - REC_HEADER {
                return false;
            }
            let mut payload = vec![0u8; plen];
            read_at(r, f.pos + REC_HEADER as u64, &mut payload);
            // Lapped while copying: the bytes may be torn.
            core::sync::atomic::fence(Ordering::SeqCst);
            let reserve = atomic(r, RESERVE).load(Ordering::SeqCst);
            if reserve.saturating_sub(f.pos) > RING_DATA as u64 {
                return false;
            }
            out.push(RemoteFrame {
                kind: kind_of(head[8]),
                timestamp: u32::from_le_bytes([head[12], head[13], head[14], head[15]]),
                keyframe: head[9] & 1 != 0,
                sequence_header: head[9] & 2 != 0,
                payload: Bytes::from(payload),
            });
            f.pos += len as u64;
            n += 1;
        }
        true
    }

    /// Where a reader starts: the last keyframe if it is still in the ring, else the end.
    fn start_pos(r: *mut u8) -> u64 {
        let written = atomic(r, WRITTEN).load(Ordering::Acquire);
        let reserve = atomic(r, RESERVE).load(Ordering::SeqCst);
        match atomic(r, KEYPOS).load(Ordering::Acquire) {
            0 => written,
            k if reserve.saturating_sub(k - 1) <= RING_DATA as u64 => k - 1,
            _ => written,
        }
    }

    /// This worker's bit in the rings' follower sets.
    fn my_bit() -> Option<u64> {
        let slot = MY_SLOT.load(Ordering::Acquire).checked_sub(1)?;
        (slot < 64).then(|| 1u64 << slot)
    }

    /// Clears this worker's follower bit in every ring (start: a dead predecessor in the same
    /// slot may have left it set; exit).
    pub fn forget_follows() {
        let (Some(base), Some(bit)) = (zone(), my_bit()) else {
            return;
        };
        for i in 0..RINGS {
            atomic(ring(base, i), FOLLOWERS).fetch_and(!bit, Ordering::AcqRel);
        }
    }

    pub fn follow(key: &StreamKey) -> Option<Vec<RemoteFrame>> {
        let base = zone()?;
        let bit = my_bit()?;
        let k = key_bytes(key);
        let me = pid();
        for i in 0..RINGS {
            let r = ring(base, i);
            let o = owner(r).load(Ordering::Acquire);
            if o == 0 || o == me || ended(r).load(Ordering::Acquire) != 0 || !alive(o) {
                continue;
            }
            if !key_matches(r, &k) {
                continue;
            }
            let generation = atomic(r, GEN).load(Ordering::Acquire);
            atomic(r, FOLLOWERS).fetch_or(bit, Ordering::AcqRel);
            let mut out = read_headers(r);
            let mut f = Follow {
                ring: i,
                generation,
                owner: o,
                pos: start_pos(r),
            };
            if !read_records(r, &mut f, &mut out) {
                f.pos = atomic(r, WRITTEN).load(Ordering::Acquire);
            }
            FOLLOWING.with(|m| m.borrow_mut().insert(key.clone(), f));
            return Some(out);
        }
        None
    }

    /// New messages of a followed stream; true when its publisher has gone.
    pub fn poll(key: &StreamKey, out: &mut Vec<RemoteFrame>) -> bool {
        let Some(base) = zone() else { return true };
        FOLLOWING.with(|m| {
            let mut m = m.borrow_mut();
            let Some(f) = m.get_mut(key) else { return true };
            let r = ring(base, f.ring);
            if atomic(r, GEN).load(Ordering::Acquire) != f.generation
                || owner(r).load(Ordering::Acquire) != f.owner
            {
                return true;
            }
            if !read_records(r, f, out) {
                // Too far behind: continue from the last keyframe (players skip the gap).
                f.pos = start_pos(r);
            }
            let done = ended(r).load(Ordering::Acquire) != 0
                && f.pos >= atomic(r, WRITTEN).load(Ordering::Acquire);
            done || !alive(f.owner)
        })
    }

    /// Records whether `key`, published here, has players here (for [`watched`]).
    pub fn set_local_players(key: &StreamKey, any: bool) {
        LOCALLY_WATCHED.with(|w| {
            let mut w = w.borrow_mut();
            if any {
                w.insert(key.clone());
            } else {
                w.remove(key);
            }
        });
        let (Some(base), Some(i)) = (zone(), WRITING.with(|w| w.borrow().get(key).copied())) else {
            return;
        };
        if i < RINGS {
            atomic(ring(base, i), LOCAL_PLAYERS).store(u64::from(any), Ordering::Release);
        }
    }

    /// Whether `key` has players in any worker: its publisher's (see [`set_local_players`])
    /// or followers.
    pub fn watched(key: &StreamKey) -> bool {
        if LOCALLY_WATCHED.with(|w| w.borrow().contains(key)) {
            return true;
        }
        let Some(base) = zone() else { return false };
        let k = key_bytes(key);
        (0..RINGS).any(|i| {
            let r = ring(base, i);
            let o = owner(r).load(Ordering::Acquire);
            o != 0
                && ended(r).load(Ordering::Acquire) == 0
                && alive(o)
                && key_matches(r, &k)
                && (atomic(r, FOLLOWERS).load(Ordering::Acquire) != 0
                    || atomic(r, LOCAL_PLAYERS).load(Ordering::Acquire) != 0)
        })
    }

    /// Whether another worker follows `key`, which this worker writes.
    pub fn followed(key: &StreamKey) -> bool {
        let Some(base) = zone() else { return false };
        let Some(i) = WRITING.with(|w| w.borrow().get(key).copied()) else {
            return false;
        };
        let mine = my_bit().unwrap_or(0);
        atomic(ring(base, i), FOLLOWERS).load(Ordering::Acquire) & !mine != 0
    }

    pub fn unfollow(key: &StreamKey) {
        let Some(f) = FOLLOWING.with(|m| m.borrow_mut().remove(key)) else {
            return;
        };
        if let (Some(base), Some(bit)) = (zone(), my_bit()) {
            let r = ring(base, f.ring);
            if atomic(r, GEN).load(Ordering::Acquire) == f.generation {
                atomic(r, FOLLOWERS).fetch_and(!bit, Ordering::AcqRel);
            }
        }
    }
}
