//! The device's one worker thread and the queue in front of it:
//! translations run one at a time, in arrival order. A request takes its
//! place in the queue (a semaphore permit, [`Queue::slots`], the one bound
//! on how many may wait) before its upload is decoded, so a full queue is
//! refused at once and cheaply (the caller answers 503); a request whose
//! client gave up is dropped unrun, one whose deadline passed while it
//! waited is answered [`JobError::DeadlinePassed`] unrun.
//!
//! A panic while translating (a kernel's assertion, an allocation that
//! fails) is caught: that request is answered [`JobError::Panicked`] and the
//! worker goes on with the next. Should the thread end anyway, [`Queue::alive`]
//! says so and `/readyz` reports the server not ready.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Instant;

use image::DynamicImage;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use super::metrics::Metrics;
use super::models::Served;
use crate::image_io::ImageData;
use crate::translate::translate_image;

/// Why a job was not translated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobError {
    /// Its deadline passed while it waited for the device (the caller answers 504).
    DeadlinePassed,
    /// Translating failed (500).
    Failed(String),
    /// Translating panicked; the worker goes on (500).
    Panicked(String),
}

impl std::fmt::Display for JobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::DeadlinePassed => write!(f, "the deadline passed while the request waited for the device (--timeout-secs)"),
            Self::Failed(why) => write!(f, "translating failed: {why}"),
            Self::Panicked(why) => write!(f, "translating failed on an internal error ({why}); the server goes on"),
        }
    }
}

/// One translation waiting for the device.
pub struct Job {
    /// Index into the served generators.
    pub model: usize,
    pub image: DynamicImage,
    pub deadline: Instant,
    pub reply: oneshot::Sender<Result<ImageData, JobError>>,
    /// Its place in the queue, given back when the job is done or dropped.
    pub slot: OwnedSemaphorePermit,
}

/// The sending side of the queue.
#[derive(Clone)]
pub struct Queue {
    tx: Sender<Job>,
    metrics: Arc<Metrics>,
    /// One permit per place: the job running and those allowed to wait.
    pub slots: Arc<Semaphore>,
    alive: Arc<AtomicBool>,
}

/// The worker is gone: the server is stopping, or its thread ended.
#[derive(Debug)]
pub struct Stopped;

impl Queue {
    /// Hand a job to the worker. Its slot, taken from [`Queue::slots`], bounds the queue.
    pub fn submit(&self, job: Job) -> Result<(), Stopped> {
        // counted before it can be taken, so the gauge never goes below zero
        self.metrics.queue_depth.fetch_add(1, Ordering::SeqCst);
        self.tx.send(job).map_err(|_| {
            self.metrics.queue_depth.fetch_sub(1, Ordering::SeqCst);
            Stopped
        })
    }

    /// Whether the worker thread is still there to answer.
    pub fn alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }
}

/// A fault to inject, for the tests of what the server does when translating
/// goes wrong: `CYCLEGAN_TEST_FAULT=panic@N`, `fail@N` or `exit@N` makes the
/// N-th job (from 1) panic, fail, or end the worker thread. Read once at start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    Panic(u64),
    Fail(u64),
    Exit(u64),
}

impl Fault {
    pub fn from_env() -> Option<Self> {
        let spec = std::env::var("CYCLEGAN_TEST_FAULT").ok()?;
        let (kind, n) = spec.split_once('@')?;
        let n = n.parse().ok()?;
        match kind {
            "panic" => Some(Self::Panic(n)),
            "fail" => Some(Self::Fail(n)),
            "exit" => Some(Self::Exit(n)),
            _ => None,
        }
    }
}

/// Start the worker on its own thread; `waiting` jobs may wait besides the one running.
pub fn start(served: Vec<Served>, waiting: usize, metrics: Arc<Metrics>, fault: Option<Fault>) -> Queue {
    let (tx, rx) = channel();
    let alive = Arc::new(AtomicBool::new(true));
    let (m, a) = (metrics.clone(), alive.clone());
    std::thread::Builder::new()
        .name("device".into())
        .spawn(move || {
            let _alive = AliveGuard(a);
            run(served, rx, m, fault)
        })
        .expect("the device thread starts");
    Queue { tx, metrics, slots: Arc::new(Semaphore::new(waiting + 1)), alive }
}

/// Clears the flag when the thread ends, however it ends.
struct AliveGuard(Arc<AtomicBool>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

fn run(served: Vec<Served>, rx: Receiver<Job>, metrics: Arc<Metrics>, fault: Option<Fault>) {
    let jobs = AtomicU64::new(0);
    while let Ok(job) = rx.recv() {
        metrics.queue_depth.fetch_sub(1, Ordering::SeqCst);
        if job.reply.is_closed() {
            continue;
        }
        if Instant::now() > job.deadline {
            let _ = job.reply.send(Err(JobError::DeadlinePassed));
            continue;
        }
        let n = jobs.fetch_add(1, Ordering::SeqCst) + 1;
        if fault == Some(Fault::Exit(n)) {
            return;
        }
        let s = &served[job.model];
        let image = job.image;
        let result = catch_unwind(AssertUnwindSafe(|| {
            match fault {
                Some(Fault::Panic(k)) if k == n => panic!("fault injected by CYCLEGAN_TEST_FAULT"),
                Some(Fault::Fail(k)) if k == n => return Err(JobError::Failed("fault injected by CYCLEGAN_TEST_FAULT".into())),
                _ => {}
            }
            translate_image(&s.translator, image, None, s.tiling).map_err(|e| JobError::Failed(e.to_string()))
        }))
        .unwrap_or_else(|payload| Err(JobError::Panicked(panic_message(&*payload))));
        if result.is_ok() {
            metrics.translated.fetch_add(1, Ordering::SeqCst);
        }
        let _ = job.reply.send(result);
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into())
}
