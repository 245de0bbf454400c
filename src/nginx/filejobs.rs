//! File jobs (HLS/DASH segments, playlists, deletions) on nginx's thread pool, so a slow disk
//! never holds up the event loop: the worker hands each output's job over here, one of the
//! pool's threads performs it ([`crate::io::perform`], which owns everything it touches), and
//! the result comes back on the event loop through the task's completion event.
//!
//! The pool is nginx's `default` one (`thread_pool default threads=32 max_queue=65536;`
//! unless the configuration declares it otherwise), added when an application writes HLS or
//! DASH. An nginx built without threads, or a pool that refuses a task, gets the job performed
//! at once, on the event loop, as before; the first time is logged.

use core::ffi::c_void;
use core::ptr;
use std::cell::{Cell, RefCell};
use std::path::Path;

use ngx::ffi::{
    ngx_conf_t, ngx_cycle_t, ngx_event_t, ngx_log_t, ngx_post_event, ngx_posted_events,
};

use super::util::{guard, log_cycle};
use super::worker::with_worker;
use crate::io::{self, IoDone, IoJob, IoStats, OpenFiles, Storage};
use crate::server::Outcome;
use crate::vod::{VodDone, VodJob};

/// Work for the pool: an output's file operations, or a VOD player's read.
enum PoolJob {
    Files(IoJob),
    Vod(VodJob),
}

/// What a pool job came back as.
enum PoolDone {
    Files(IoDone),
    Vod(VodDone),
}

impl PoolJob {
    fn perform(self) -> PoolDone {
        match self {
            PoolJob::Files(job) => PoolDone::Files(io::perform(job)),
            PoolJob::Vod(job) => PoolDone::Vod(crate::vod::perform(job)),
        }
    }

    /// Who to tell when the job was lost (a panic on the pool thread).
    fn owner(&self) -> JobOwner {
        match self {
            PoolJob::Files(job) => JobOwner::Output(job.output),
            PoolJob::Vod(job) => JobOwner::Player(job.client, job.serial),
        }
    }
}

#[derive(Clone, Copy)]
enum JobOwner {
    Output(u64),
    Player(u64, u64),
}

/// The jobs of one turn go to at most this many tasks: few enough that wake-ups stay rare,
/// enough that one slow file (network storage, a stalled disk) does not hold up every output
/// of the worker, and that outputs' operations still overlap on a slow disk.
const MAX_TASKS_PER_TURN: usize = 4;

/// How often an exiting worker looks again whether its file jobs are done.
const EXIT_WAIT_MS: ngx::ffi::ngx_msec_t = 100;

thread_local! {
    /// The worker's thread pool (null: jobs are performed at once).
    static POOL: Cell<*mut c_void> = const { Cell::new(ptr::null_mut()) };
    /// Whether running jobs on the event loop has been logged.
    static SAID_INLINE: Cell<bool> = const { Cell::new(false) };
    /// Jobs submitted during this turn of the event loop, posted by [`FLUSH`] at its end: a task costs thread wake-ups and a notification back whatever its size, and
    /// the outputs' flush hands over every stream's appends in one turn.
    static BATCH: RefCell<Vec<PoolJob>> = const { RefCell::new(Vec::new()) };
}

/// The posted event that sends [`BATCH`] to the pool.
static mut FLUSH: core::mem::MaybeUninit<ngx_event_t> = core::mem::MaybeUninit::zeroed();

/// The event that keeps a worker from exiting while file jobs are queued or in flight (a
/// timer that is not cancelable does that); it looks again every [`EXIT_WAIT_MS`].
static mut PENDING: core::mem::MaybeUninit<ngx_event_t> = core::mem::MaybeUninit::zeroed();

fn pool_name() -> ngx::ffi::ngx_str_t {
    ngx::ffi::ngx_str_t {
        len: 7,
        data: c"default".as_ptr() as *mut u8,
    }
}

/// Makes sure the `default` thread pool exists (configuration time).
///
/// # Safety
/// `cf` is nginx's live configuration parser.
pub unsafe fn require_pool(cf: *mut ngx_conf_t) -> Result<(), String> {
    #[cfg(ngx_threads)]
    {
        let mut name = pool_name();
        // SAFETY: cf is live; nginx copies nothing of name but its pointer into the pool
        // record, and the name is a static string.
        let tp = unsafe { ngx::ffi::ngx_thread_pool_add(cf, &mut name) };
        if tp.is_null() {
            return Err("cannot add the \"default\" thread pool".into());
        }
    }
    #[cfg(not(ngx_threads))]
    let _ = cf;
    Ok(())
}

/// Finds the pool when a worker starts.
///
/// # Safety
/// `cycle` is the worker's live cycle.
pub unsafe fn init_process(cycle: *mut ngx_cycle_t) {
    // SAFETY: single-threaded worker start-up; the event lives for the process.
    unsafe {
        let ev = (*ptr::addr_of_mut!(PENDING)).as_mut_ptr();
        (*ev).handler = Some(pending_handler);
        (*ev).log = (*cycle).log;
        (*ev).data = ptr::null_mut();
        let ev = (*ptr::addr_of_mut!(FLUSH)).as_mut_ptr();
        (*ev).handler = Some(flush_handler);
        (*ev).log = (*cycle).log;
        (*ev).data = ptr::null_mut();
    }
    // Last: a pool means jobs go through FLUSH, which is ready now.
    #[cfg(ngx_threads)]
    {
        // glibc gives each thread that allocates its own arena (up to 8 per core), and each
        // keeps the most it ever held: with 32 pool threads reading VOD blocks and building
        // segments, that alone grew a worker by 10 MB. The pool's threads mostly wait on the
        // disk, so they share one arena besides the event loop's.
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: mallopt only sets an allocator parameter; the pool threads have not
        // allocated yet (they wait for tasks), and arenas are assigned at a first malloc.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
        let mut name = pool_name();
        // SAFETY: cycle is live; the lookup only reads the thread pool module's configuration.
        let tp = unsafe { ngx::ffi::ngx_thread_pool_get(cycle, &mut name) };
        POOL.with(|p| p.set(tp.cast()));
    }
}

/// Storage that hands jobs to the thread pool: the jobs submitted during one turn of the
/// event loop go to a few tasks, posted at the end of the turn (see [`BATCH`]).
#[derive(Default)]
pub struct PoolStorage;

impl Storage for PoolStorage {
    fn read_small(&mut self, path: &Path) -> Option<String> {
        io::read_small(path)
    }

    fn submit(&mut self, job: IoJob) -> Option<IoDone> {
        if POOL.with(Cell::get).is_null() {
            say_inline("no thread pool");
            return Some(io::perform(job));
        }
        queue(PoolJob::Files(job));
        None
    }

    fn submit_vod(&mut self, job: VodJob) -> Option<VodDone> {
        if POOL.with(Cell::get).is_null() {
            say_inline("no thread pool");
            return Some(crate::vod::perform(job));
        }
        queue(PoolJob::Vod(job));
        None
    }
}

/// Adds a job to this turn's batch, posting [`FLUSH`] for the end of the turn.
fn queue(job: PoolJob) {
    // SAFETY: FLUSH is our process-wide event, set up in init_process (before POOL can be
    // non-null); only the event loop touches it, and it is posted at most once at a time.
    unsafe {
        let ev = (*ptr::addr_of_mut!(FLUSH)).as_mut_ptr();
        if (*ev).posted() == 0 {
            ngx_post_event(ev, ptr::addr_of_mut!(ngx_posted_events));
        }
    }
    BATCH.with(|b| b.borrow_mut().push(job));
    arm();
}

/// End of the turn: the jobs submitted during it go to the pool, spread over at most
/// [`MAX_TASKS_PER_TURN`] tasks.
extern "C" fn flush_handler(_ev: *mut ngx_event_t) {
    guard("file jobs", (), || {
        let jobs = BATCH.with(|b| std::mem::take(&mut *b.borrow_mut()));
        if jobs.is_empty() {
            return;
        }
        // A VOD play that fetches its file from an origin may take long: it gets a task of
        // its own, so nothing waits behind it.
        let (long, jobs): (Vec<PoolJob>, Vec<PoolJob>) = jobs.into_iter().partition(
            |j| matches!(j, PoolJob::Vod(v) if v.open.as_ref().is_some_and(|o| o.fetches())),
        );
        for job in long {
            post_or_perform(vec![job]);
        }
        if jobs.is_empty() {
            return;
        }
        let tasks = jobs.len().min(MAX_TASKS_PER_TURN);
        let mut shares: Vec<Vec<PoolJob>> = (0..tasks).map(|_| Vec::new()).collect();
        for (i, job) in jobs.into_iter().enumerate() {
            if let Some(share) = shares.get_mut(i % tasks) {
                share.push(job);
            }
        }
        for share in shares {
            post_or_perform(share);
        }
    })
}

/// Posts one task, or performs its jobs at once when the pool refuses it.
fn post_or_perform(jobs: Vec<PoolJob>) {
    if let Err(jobs) = post(POOL.with(Cell::get), jobs) {
        say_inline("the thread pool refused a task");
        // Results may start more jobs: they join the next batch (posted again).
        for job in jobs {
            deliver(job.perform());
        }
    }
}

fn say_inline(why: &str) {
    if !SAID_INLINE.with(|s| s.replace(true)) {
        log_cycle(
            ngx::ffi::NGX_LOG_WARN,
            &format!(
                "rtmp: {why}: HLS/DASH and recordings are written, and VOD files read, on the \
                 event loop, where a slow disk delays every stream of the worker (nginx needs \
                 --with-threads)"
            ),
        );
    }
}

/// One batch of jobs on its way through the pool.
struct Task {
    task: ngx::ffi::ngx_thread_task_t,
    /// The owner of each job, in order (to report the ones a panic left undone).
    owners: Vec<JobOwner>,
    jobs: Vec<PoolJob>,
    done: Vec<PoolDone>,
}

#[cfg(ngx_threads)]
fn post(pool: *mut c_void, jobs: Vec<PoolJob>) -> Result<(), Vec<PoolJob>> {
    if pool.is_null() {
        return Err(jobs);
    }
    // SAFETY: an all-zero task (null pointers, no handlers, inactive event) is nginx's
    // "unset" value, filled in below.
    let task = Box::new(Task {
        task: unsafe { core::mem::zeroed() },
        owners: jobs.iter().map(PoolJob::owner).collect(),
        done: Vec::with_capacity(jobs.len()),
        jobs,
    });
    let task = Box::into_raw(task);
    // SAFETY: task is a fresh Box owned by this function until nginx takes it; after a
    // successful post only the pool thread touches it (run) and then the event loop (done),
    // in that order, nginx's pool mutex between them.
    unsafe {
        (*task).task.ctx = task.cast();
        (*task).task.handler = Some(run);
        (*task).task.event.handler = Some(done);
        (*task).task.event.data = task.cast();
        (*task).task.event.log = (*ngx::ffi::ngx_cycle).log;
        let posted = ngx::ffi::ngx_thread_task_post(pool.cast(), ptr::addr_of_mut!((*task).task));
        if posted != ngx::ffi::NGX_OK as ngx::ffi::ngx_int_t {
            let task = Box::from_raw(task);
            return Err(task.jobs);
        }
    }
    Ok(())
}

#[cfg(not(ngx_threads))]
fn post(_pool: *mut c_void, jobs: Vec<PoolJob>) -> Result<(), Vec<PoolJob>> {
    Err(jobs)
}

/// On a pool thread: performs the jobs in order. Touches only the task, which the event loop
/// leaves alone until [`done`].
#[cfg_attr(not(ngx_threads), allow(dead_code))]
unsafe extern "C" fn run(data: *mut c_void, _log: *mut ngx_log_t) {
    let task = data as *mut Task;
    // A panic must not unwind into nginx's thread; the jobs left are reported lost in `done`.
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: data is the Task posted in `post`, owned by this thread until it returns.
        unsafe {
            let jobs = std::mem::take(&mut (*task).jobs);
            for job in jobs {
                let result = job.perform();
                (*task).done.push(result);
            }
        }
    }));
}

/// On the event loop: the pool finished the task; the worker hears what became of each job.
#[cfg_attr(not(ngx_threads), allow(dead_code))]
extern "C" fn done(ev: *mut ngx_event_t) {
    guard("file jobs done", (), || {
        // SAFETY: ev is the task's own event, whose data is the Task leaked in `post`; the
        // pool is done with it, so it is ours again, once.
        let task = unsafe { Box::from_raw((*ev).data as *mut Task) };
        let Task { owners, done, .. } = *task;
        let performed = done.len();
        for result in done {
            deliver(result);
        }
        for owner in owners.into_iter().skip(performed) {
            deliver(lost(owner));
        }
    })
}

/// The answer for a job a panic left undone.
fn lost(owner: JobOwner) -> PoolDone {
    let why = || std::io::Error::other("the file job panicked");
    match owner {
        JobOwner::Output(output) => PoolDone::Files(IoDone {
            output,
            files: OpenFiles::default(),
            done: 0,
            failure: Some(io::IoFailure {
                action: "perform",
                path: Default::default(),
                source: why(),
            }),
            rest: Vec::new(),
            stats: IoStats::default(),
        }),
        JobOwner::Player(client, serial) => PoolDone::Vod(VodDone {
            client,
            serial,
            reader: None,
            result: Err(crate::vod::VodError::Io(why())),
        }),
    }
}

/// Tells the worker what became of one job.
fn deliver(result: PoolDone) {
    let mut outcome = Outcome::default();
    let now = super::util::now_ms();
    with_worker(|w| match result {
        PoolDone::Files(done) => w.on_io_done(done, &mut outcome),
        PoolDone::Vod(done) => w.on_vod_done(done, now, &mut outcome),
    });
    // A finished recording starts callbacks and processes, and may tell its publisher.
    super::conn::apply_outcome(outcome);
    keep_alive();
}

/// Sets (`true`) or removes the timer that keeps the worker alive while file work is
/// pending, so a graceful quit or reload still writes the final playlists.
fn set_pending_timer(pending: bool) {
    // SAFETY: PENDING is our process-wide event, set up in init_process; only the event loop
    // touches it.
    unsafe {
        let ev = (*ptr::addr_of_mut!(PENDING)).as_mut_ptr();
        if (*ev).handler.is_none() {
            return;
        }
        if pending && (*ev).timer_set() == 0 {
            ngx::ffi::ngx_add_timer(ev, EXIT_WAIT_MS);
        } else if !pending && (*ev).timer_set() != 0 {
            ngx::ffi::ngx_del_timer(ev);
        }
    }
}

/// A job went out (called while the worker is borrowed, so it does not ask it).
fn arm() {
    set_pending_timer(true);
}

/// Asks the worker whether file work is still pending and sets the timer accordingly.
fn keep_alive() {
    set_pending_timer(with_worker(|w| w.io_pending()));
}

extern "C" fn pending_handler(_ev: *mut ngx_event_t) {
    guard("file jobs pending", (), keep_alive);
}
