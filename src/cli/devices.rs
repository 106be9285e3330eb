//! `cyclegan devices`: the devices this binary was built with, whether each
//! works here, what it is, and whether kernel fusion and autotune are on.

use clap::Args;

use crate::device::DeviceChoice;

#[derive(Args, Debug)]
pub struct DevicesArgs {
    /// One JSON array instead of a line per device.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: DevicesArgs) -> anyhow::Result<()> {
    let reports: Vec<_> = DeviceChoice::built().into_iter().map(DeviceChoice::report).collect();
    if args.json {
        println!("{}", serde_json::to_string(&reports)?);
        return Ok(());
    }
    let on = |b: bool| if b { "on" } else { "off" };
    for r in &reports {
        let state = match &r.why_not {
            None => "usable".to_string(),
            Some(why) => format!("not usable ({why})"),
        };
        println!("{:<5} {state}; {}; fusion {}, autotune {}", r.device.name(), r.what, on(r.fusion), on(r.autotune));
    }
    Ok(())
}
