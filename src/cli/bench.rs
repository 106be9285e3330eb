//! `cyclegan bench`: each case in a fresh process (so its peak memory is its
//! own), medians and peak memory printed as a table or JSON lines.

use anyhow::{Context, bail};
use clap::Args;

use super::DeviceArgs;
use crate::bench::{self, Case, Measurement};

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Cases to run: forwardSIZE[xBATCH][-bf16|-f16], trainSIZE[-cut|-fastcut][-small], inceptionBATCH (default: forward256, forward256x4, forward256-bf16, train128, train256).
    #[arg(long, value_delimiter = ',')]
    pub cases: Vec<String>,
    /// Timed runs per case, after one warm-up run.
    #[arg(long, default_value_t = 5)]
    pub repeats: usize,
    /// Print one JSON object per case instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Run one case in this process (used by the parent process).
    #[arg(long, hide = true)]
    pub child: Option<String>,
    #[command(flatten)]
    pub device: DeviceArgs,
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let device = args.device.device()?;
    if let Some(name) = &args.child {
        let case = Case::parse(name).map_err(anyhow::Error::msg)?;
        println!("{}", serde_json::to_string(&bench::measure(case, args.repeats.max(1), &device))?);
        return Ok(());
    }
    let cases: Vec<Case> = if args.cases.is_empty() {
        Case::defaults()
    } else {
        args.cases.iter().map(|c| Case::parse(c).map_err(anyhow::Error::msg)).collect::<Result<_, _>>()?
    };
    let exe = std::env::current_exe()?;
    if !args.json {
        println!("{:<18} {:>10} {:>10} {:>10} {:>8} {:>12}  runs (s)", "case", "median s", "images/s", "peak MiB", "threads", "PSNR vs f32");
        // peak cases fill "images/s" with GFLOP/s of one core
    }
    for case in cases {
        let out = std::process::Command::new(&exe)
            .args(["bench", "--child", &case.name(), "--repeats", &args.repeats.to_string()])
            .args(["--device", &crate::train::options::value_name(&args.device.device)])
            .output()?;
        if !out.status.success() {
            bail!("case {} failed: {}", case.name(), String::from_utf8_lossy(&out.stderr).trim());
        }
        let text = String::from_utf8(out.stdout)?;
        let m: Measurement = serde_json::from_str(text.trim()).context("reading a case's result")?;
        if args.json {
            println!("{}", text.trim());
        } else {
            let runs: Vec<String> = m.runs.iter().map(|r| format!("{r:.3}")).collect();
            let psnr = m.psnr_vs_f32.map_or("-".to_string(), |p| format!("{p:.1} dB"));
            let rate = match (case.images(), m.gflops) {
                (Some(n), _) => format!("{:.2}", n as f64 / m.median_s),
                (None, Some(g)) => format!("{g:.1} GF/s"),
                (None, None) => "-".to_string(),
            };
            println!(
                "{:<18} {:>10.3} {:>10} {:>10.0} {:>8} {:>12}  {}",
                m.case,
                m.median_s,
                rate,
                m.peak_rss_mib,
                m.threads,
                psnr,
                runs.join(" ")
            );
        }
    }
    Ok(())
}
