//! The device's one worker thread and the bounded queue in front of it:
//! translations run one at a time, in arrival order. A request takes its
//! place in the queue (a semaphore permit, [`Queue::slots`]) before its
//! upload is decoded, so a full queue is refused at once and cheaply
//! (the caller answers 503); a request whose client gave up or whose
//! deadline passed while it waited is dropped unrun.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::Instant;

use image::DynamicImage;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use super::metrics::Metrics;
use super::models::Served;
use crate::image_io::ImageData;
use crate::translate::translate_image;

/// One translation waiting for the device.
pub struct Job {
    /// Index into the served generators.
    pub model: usize,
    pub image: DynamicImage,
    pub deadline: Instant,
    pub reply: oneshot::Sender<Result<ImageData, String>>,
    /// Its place in the queue, given back when the job is done or dropped.
    pub slot: OwnedSemaphorePermit,
}

/// The sending side of the queue.
#[derive(Clone)]
pub struct Queue {
    tx: SyncSender<Job>,
    metrics: Arc<Metrics>,
    /// One permit per place: the job running and those allowed to wait.
    pub slots: Arc<Semaphore>,
}

/// Why a job was not queued.
pub enum Refused {
    Full,
    /// The worker is gone (it stops only when the server does).
    Stopped,
}

impl Queue {
    pub fn submit(&self, job: Job) -> Result<(), Refused> {
        // counted before it can be taken, so the gauge never goes below zero
        self.metrics.queue_depth.fetch_add(1, Ordering::SeqCst);
        self.tx.try_send(job).map_err(|e| {
            self.metrics.queue_depth.fetch_sub(1, Ordering::SeqCst);
            match e {
                TrySendError::Full(_) => Refused::Full,
                TrySendError::Disconnected(_) => Refused::Stopped,
            }
        })
    }
}

/// Start the worker on its own thread; `waiting` jobs may wait besides the one running.
pub fn start(served: Vec<Served>, waiting: usize, metrics: Arc<Metrics>) -> Queue {
    let (tx, rx) = sync_channel(waiting + 1);
    let m = metrics.clone();
    std::thread::Builder::new()
        .name("device".into())
        .spawn(move || run(served, rx, m))
        .expect("the device thread starts");
    Queue { tx, metrics, slots: Arc::new(Semaphore::new(waiting + 1)) }
}

fn run(served: Vec<Served>, rx: Receiver<Job>, metrics: Arc<Metrics>) {
    while let Ok(job) = rx.recv() {
        metrics.queue_depth.fetch_sub(1, Ordering::SeqCst);
        if job.reply.is_closed() {
            continue;
        }
        if Instant::now() > job.deadline {
            let _ = job.reply.send(Err("the deadline passed while the request waited for the device".into()));
            continue;
        }
        let s = &served[job.model];
        let result = translate_image(&s.translator, job.image, None, s.tiling).map_err(|e| e.to_string());
        if result.is_ok() {
            metrics.translated.fetch_add(1, Ordering::SeqCst);
        }
        let _ = job.reply.send(result);
    }
}
