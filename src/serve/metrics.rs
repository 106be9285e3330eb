//! What `GET /metrics` reports, in Prometheus' text format: requests by
//! status, a latency histogram, the queue in front of the device, and
//! images translated.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// Upper bounds of the latency histogram's buckets, seconds.
const BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

#[derive(Default)]
pub struct Metrics {
    by_status: Mutex<BTreeMap<u16, u64>>,
    /// Counts per bucket (the last one is +Inf), and the sum of seconds.
    latency: Mutex<([u64; BUCKETS.len() + 1], f64)>,
    pub queue_depth: AtomicUsize,
    pub translated: AtomicU64,
}

impl Metrics {
    pub fn record(&self, status: u16, took: Duration) {
        *self.by_status.lock().expect("metrics lock").entry(status).or_default() += 1;
        let s = took.as_secs_f64();
        let mut latency = self.latency.lock().expect("metrics lock");
        let bucket = BUCKETS.iter().position(|&b| s <= b).unwrap_or(BUCKETS.len());
        latency.0[bucket] += 1;
        latency.1 += s;
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP cyclegan_requests_total HTTP requests answered, by status.\n# TYPE cyclegan_requests_total counter\n");
        for (status, n) in self.by_status.lock().expect("metrics lock").iter() {
            let _ = writeln!(out, "cyclegan_requests_total{{status=\"{status}\"}} {n}");
        }
        out.push_str("# HELP cyclegan_request_seconds Time to answer a request.\n# TYPE cyclegan_request_seconds histogram\n");
        let (counts, sum) = *self.latency.lock().expect("metrics lock");
        let mut cumulative = 0;
        for (i, n) in counts.iter().enumerate() {
            cumulative += n;
            let le = BUCKETS.get(i).map_or("+Inf".to_string(), |b| b.to_string());
            let _ = writeln!(out, "cyclegan_request_seconds_bucket{{le=\"{le}\"}} {cumulative}");
        }
        let _ = writeln!(out, "cyclegan_request_seconds_sum {sum}\ncyclegan_request_seconds_count {cumulative}");
        let _ = writeln!(
            out,
            "# HELP cyclegan_queue_depth Translations waiting for the device.\n# TYPE cyclegan_queue_depth gauge\ncyclegan_queue_depth {}",
            self.queue_depth.load(Ordering::SeqCst)
        );
        let _ = writeln!(
            out,
            "# HELP cyclegan_images_translated_total Images translated.\n# TYPE cyclegan_images_translated_total counter\ncyclegan_images_translated_total {}",
            self.translated.load(Ordering::SeqCst)
        );
        out
    }
}
