//! `cyclegan demo`: train on the bundled emoji, translate, and show the result.

use std::path::PathBuf;

use clap::Args;

use super::progress::TrainProgress;
use crate::demo;
use crate::train::report::report_location;

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Run folder to create.
    #[arg(long, short, default_value = "runs/emoji-demo")]
    pub output: PathBuf,
    /// Epochs of 130 iterations (half at the full learning rate, half decaying).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub epochs: u32,
}

pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let epochs = args.epochs as usize;
    eprintln!(
        "training a CycleGAN on 130 + 130 emoji (Noto -> Twemoji, 64 px) for {epochs} epoch{} in {}",
        if epochs == 1 { "" } else { "s" },
        args.output.display()
    );
    let mut progress = TrainProgress::default();
    let out = demo::run(&args.output, epochs, super::STOP.clone(), &mut |e| progress.on_event(e));
    progress.finish();
    let out = out?;
    let s = &out.score;
    println!(
        "trained {} iterations in {:.0} s; {} test emoji translated: PSNR against their Twemoji twins {:.2} dB (untranslated: {:.2} dB)",
        out.training.iterations, out.training.seconds, s.images, s.psnr_after, s.psnr_before
    );
    println!("Noto inputs, translations, Twemoji twins (top to bottom): {}", s.comparison.display());
    println!("report: {}", report_location(&out.training.run));
    Ok(())
}
