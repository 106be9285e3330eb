//! The terminal view of a training session: a progress bar per epoch with
//! its ETA, speed and latest losses, a line per finished epoch, warnings
//! printed above the bar.

use indicatif::{ProgressBar, ProgressStyle};

use crate::train::Event;
use crate::train::step::Losses;

#[derive(Default)]
pub struct TrainProgress {
    bar: Option<ProgressBar>,
}

impl TrainProgress {
    pub fn on_event(&mut self, event: Event) {
        match event {
            Event::Warning(text) => self.print(&format!("warning: {text}")),
            Event::Skipped(err) => self.print(&format!("warning: skipping {err}")),
            Event::EpochStart { epoch, epochs, batches, done } => {
                self.finish();
                let bar = ProgressBar::new(batches);
                bar.set_style(
                    ProgressStyle::with_template(&format!(
                        "epoch {epoch}/{epochs} {{bar:24}} {{pos}}/{{len}} {{per_sec}} ETA {{eta}} | {{msg}}"
                    ))
                    .expect("valid template"),
                );
                bar.set_position(done);
                self.bar = Some(bar);
            }
            Event::Step { logged, .. } => {
                if let Some(bar) = &self.bar {
                    bar.inc(1);
                    if let Some(losses) = logged {
                        bar.set_message(short_losses(losses));
                    }
                }
            }
            Event::Evaluated { record: r, best } => {
                let best = if best { "; best so far, saved to checkpoints/best" } else { "" };
                self.print(&match (r.fid_b2a, r.kid_b2a) {
                    (Some(fid_b2a), Some(kid_b2a)) => format!(
                        "evaluation at iteration {}: FID a2b {:.2} b2a {fid_b2a:.2} (mean {:.2}), KID a2b {:.4} b2a {kid_b2a:.4}{best}",
                        r.iter, r.fid_a2b, r.fid_mean, r.kid_a2b
                    ),
                    _ => format!("evaluation at iteration {}: FID a2b {:.2}, KID a2b {:.4}{best}", r.iter, r.fid_a2b, r.kid_a2b),
                })
            }
            Event::EpochEnd { epoch, epochs, iteration, lr, mean_g_loss, seconds } => {
                if let Some(bar) = self.bar.take() {
                    bar.finish_and_clear();
                }
                eprintln!(
                    "epoch {epoch}/{epochs} done: iteration {iteration}, lr {lr:.2e}, mean generator loss {mean_g_loss:.4}, {seconds:.0} s so far"
                );
            }
        }
    }

    /// Leave the bar of an epoch cut short where it stopped.
    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.abandon();
        }
    }

    fn print(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }
}

fn short_losses(l: &Losses) -> String {
    l.0.iter().map(|(k, v)| format!("{k} {v:.3}")).collect::<Vec<_>>().join(" ")
}
