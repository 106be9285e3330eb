//! A mutation fuzzer on stable Rust (issue 20): seeded mutations (bit flips,
//! truncations, inflated length and count fields, repeated chunks and
//! opcodes, spliced tokens) of valid files of every format this program
//! reads from users, each run through the code that reads it. Cases run in
//! batches in child processes (this test binary again, running
//! [`fuzz_child`]) under a 6 GB address-space limit and a time limit; a
//! child that panics, aborts or hangs fails the run, and the batch is then
//! replayed case by case to print the seed and the case.
//!
//! The suite runs a few hundred cases per format; `scripts/fuzz.sh` runs
//! 100,000 per format (this file's ignored [`fuzz_long`]).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::{RngExt as _, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::util::{fixture, tmp};

/// The formats, each with its seed file and the reader it is fed to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    PthZip,
    PthLegacy,
    Safetensors,
    Png,
    Jpeg,
    Webp,
    OptionsToml,
    LossesJsonl,
}

const FORMATS: [Format; 8] = [
    Format::PthZip,
    Format::PthLegacy,
    Format::Safetensors,
    Format::Png,
    Format::Jpeg,
    Format::Webp,
    Format::OptionsToml,
    Format::LossesJsonl,
];

impl Format {
    fn name(self) -> &'static str {
        match self {
            Self::PthZip => "pth-zip",
            Self::PthLegacy => "pth-legacy",
            Self::Safetensors => "safetensors",
            Self::Png => "png",
            Self::Jpeg => "jpeg",
            Self::Webp => "webp",
            Self::OptionsToml => "options-toml",
            Self::LossesJsonl => "losses-jsonl",
        }
    }

    fn from_name(name: &str) -> Self {
        *FORMATS.iter().find(|f| f.name() == name).unwrap_or_else(|| panic!("no format {name}"))
    }

    /// The valid file mutations start from.
    fn seed_file(self) -> Vec<u8> {
        let image = || image::open(fixture("img_square.png")).unwrap();
        let encoded = |format: image::ImageFormat| {
            let mut out = Vec::new();
            image().write_to(&mut std::io::Cursor::new(&mut out), format).unwrap();
            out
        };
        match self {
            // the pickle only: it is mutated, then zipped with the storages (below)
            Self::PthZip => zip_member(&std::fs::read(fixture("cut_latest_net_G.pth")).unwrap(), "data.pkl"),
            Self::PthLegacy => std::fs::read(fixture("g_resnet9_wild_legacy.pth")).unwrap(),
            Self::Safetensors => {
                // a self-describing generator file, as import and training write them
                let (tensors, info) = cyclegan::checkpoint::read(&fixture("g_resnet9.pth"), None).unwrap();
                let dir = tmp();
                let path = dir.path().join("g.safetensors");
                cyclegan::checkpoint::save_dict(&path, &tensors, info.to_metadata()).unwrap();
                std::fs::read(&path).unwrap()
            }
            Self::Png => std::fs::read(fixture("img_square.png")).unwrap(),
            Self::Jpeg => encoded(image::ImageFormat::Jpeg),
            Self::Webp => encoded(image::ImageFormat::WebP),
            Self::OptionsToml => {
                let opts = cyclegan::train::options::TrainOptions {
                    dataroot: Some("datasets/horse2zebra".into()),
                    output: Some("runs/h2z".into()),
                    ..Default::default()
                };
                opts.to_toml().into_bytes()
            }
            Self::LossesJsonl => concat!(
                r#"{"iter":100,"epoch":1,"lr":0.0002,"D_A":0.25,"G_A":0.9,"cycle_A":1.5,"idt_A":0.7,"D_B":0.24,"G_B":0.8,"cycle_B":1.4,"idt_B":0.6,"seconds":0.5}"#,
                "\n",
                r#"{"iter":200,"epoch":1,"lr":0.0002,"D_A":0.2,"G_A":0.8,"cycle_A":1.2,"idt_A":0.6,"D_B":0.2,"G_B":0.7,"cycle_B":1.1,"idt_B":0.5,"seconds":0.5}"#,
                "\n"
            )
            .as_bytes()
            .to_vec(),
        }
    }

    /// Words worth splicing in: numbers at the edges, and each format's own keys.
    fn tokens(self) -> &'static [&'static [u8]] {
        match self {
            Self::OptionsToml | Self::LossesJsonl => &[
                b"nan", b"inf", b"-inf", b"1e309", b"-1", b"0", b"18446744073709551616", b"4294967296", b"\"", b"[", b"{", b"}",
                b"]", b"=", b",", b"\n", b"null", b"true", b"ngf = 1000000\n", b"crop-size = 0\n", b"n-layers-d = 100\n",
                b"batch-size = 4294967295\n", b"\"iter\":18446744073709551615", b"\"lr\":1e400",
            ],
            _ => &[],
        }
    }
}

/// One member of a zip archive.
fn zip_member(archive: &[u8], suffix: &str) -> Vec<u8> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(archive)).unwrap();
    let name = zip.file_names().map(|n| n.unwrap().into_owned()).find(|n| n.ends_with(suffix)).unwrap();
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut zip.by_name(&name).unwrap(), &mut out).unwrap();
    out
}

/// `cut_latest_net_G.pth` with its `data.pkl` replaced by `pickle`.
fn rezip_pickle(pickle: &[u8]) -> Vec<u8> {
    let original = std::fs::read(fixture("cut_latest_net_G.pth")).unwrap();
    let mut src = zip::ZipArchive::new(std::io::Cursor::new(&original)).unwrap();
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let stored = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for i in 0..src.len() {
        let mut member = src.by_index(i).unwrap();
        let name = member.name().unwrap().into_owned();
        out.start_file(&name, stored).unwrap();
        if name.ends_with("data.pkl") {
            out.write_all(pickle).unwrap();
        } else {
            std::io::copy(&mut member, &mut out).unwrap();
        }
    }
    out.finish().unwrap().into_inner()
}

/// Values that make length and count fields lie.
const INFLATED: [u64; 10] = [0, 1, 0x7f, 0xff, 0x7fff, 0xffff, 0x7fff_ffff, 0xffff_ffff, 0x7fff_ffff_ffff_ffff, u64::MAX];

/// Case `seed` of `format`: one to four mutations of the seed file.
fn mutate(format: Format, original: &[u8], seed: u64) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (format as u64) << 56);
    let mut data = original.to_vec();
    // Most mutations go where the structure is: an image's header (a broken
    // body fails fast), a safetensors header, a legacy file's pickles (not
    // the raw storages after them).
    let hot = match format {
        Format::Png | Format::Jpeg | Format::Webp => 256,
        Format::Safetensors => 8 + u64::from_le_bytes(original[..8].try_into().unwrap()) as usize,
        Format::PthLegacy => {
            let mut at = 0;
            for _ in 0..5 {
                at += cyclegan::checkpoint::pickle::unpickle(&original[at..]).unwrap().1;
            }
            at
        }
        _ => data.len(),
    }
    .min(data.len());
    for _ in 0..rng.random_range(1..=4) {
        if data.is_empty() {
            data.push(0);
        }
        let len = data.len();
        let at = if rng.random_bool(0.9) { rng.random_range(0..hot.min(len).max(1)) } else { rng.random_range(0..len) };
        match rng.random_range(0..7) {
            0 => {
                // bit flips
                for _ in 0..rng.random_range(1..=8) {
                    let i = rng.random_range(0..hot.min(len).max(1));
                    data[i] ^= 1 << rng.random_range(0..8);
                }
            }
            1 => data.truncate(at),
            2 => {
                // an inflated length or count field, little- or big-endian
                let width = [1usize, 2, 4, 8][rng.random_range(0..4)];
                let value = INFLATED[rng.random_range(0..INFLATED.len())];
                let low = &value.to_le_bytes()[..width];
                let field: Vec<u8> = if rng.random_bool(0.5) { low.to_vec() } else { low.iter().rev().copied().collect() };
                for (i, b) in field.iter().enumerate() {
                    if at + i < data.len() {
                        data[at + i] = *b;
                    }
                }
            }
            3 => {
                // a chunk (an opcode and its argument, a header field) repeated
                let n = rng.random_range(1..=16).min(len - at);
                let times = [2usize, 10, 100, 10_000][rng.random_range(0..4)];
                let chunk = data[at..at + n].to_vec();
                let repeated: Vec<u8> = chunk.iter().copied().cycle().take(n * times).collect();
                data.splice(at..at, repeated);
            }
            4 => {
                let n = rng.random_range(1..=32).min(len - at);
                data.drain(at..at + n);
            }
            5 => {
                let n = rng.random_range(1..=8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.random()).collect();
                data.splice(at..at, bytes);
            }
            _ => {
                let tokens = format.tokens();
                if tokens.is_empty() {
                    data[at] = rng.random();
                } else {
                    let t = tokens[rng.random_range(0..tokens.len())];
                    data.splice(at..at, t.iter().copied());
                }
            }
        }
    }
    if format == Format::Png {
        fix_png_crcs(&mut data);
    }
    data
}

/// Recompute each PNG chunk's CRC: the decoder refuses a wrong one before
/// reading the chunk, which would keep mutations from reaching the parsers.
fn fix_png_crcs(data: &mut [u8]) {
    let mut at = 8;
    while at + 12 <= data.len() {
        let len = u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as usize;
        let Some(end) = (at + 8).checked_add(len).filter(|&e| e + 4 <= data.len()) else { return };
        let crc = crc32fast::hash(&data[at + 4..end]);
        data[end..end + 4].copy_from_slice(&crc.to_be_bytes());
        at = end + 4;
    }
}

/// Feed one case to the reader of its format; whether it was read without
/// error. Errors are expected; a panic, an abort or a hang is what the fuzzer looks for.
fn run_case(format: Format, case: &[u8], dir: &Path) -> bool {
    let device = burn::tensor::Device::flex();
    match format {
        Format::PthZip | Format::PthLegacy | Format::Safetensors => {
            let bytes = if format == Format::PthZip { rezip_pickle(case) } else { case.to_vec() };
            let path = dir.join("case.pth");
            std::fs::write(&path, bytes).unwrap();
            // what translate, export and serve do with a --model file
            cyclegan::checkpoint::load_generator(&path, &device).is_ok()
        }
        Format::Png | Format::Jpeg | Format::Webp => {
            let path = Path::new("case.img");
            let _ = cyclegan::image_io::header_dimensions(path, case);
            match cyclegan::image_io::decode_bytes(path, case) {
                Ok(img) => cyclegan::image_io::to_data(&img, 3).width > 0,
                Err(_) => false,
            }
        }
        Format::OptionsToml => {
            // what --config does
            cyclegan::train::options::TrainOptions::from_toml(&String::from_utf8_lossy(case)).is_ok_and(|opts| opts.validate().is_ok())
        }
        Format::LossesJsonl => {
            let run = dir.join("run");
            std::fs::create_dir_all(&run).unwrap();
            let dir = cyclegan::train::run_dir::RunDir::new(&run);
            std::fs::write(dir.losses_path(), case).unwrap();
            let read = dir.read_losses().is_ok();
            read && dir.truncate_logs(150).is_ok()
        }
    }
}

/// The child side: cases `FUZZ_FIRST .. FUZZ_FIRST + FUZZ_COUNT` of `FUZZ_FORMAT`.
#[test]
#[ignore = "run by the fuzzer in a child process"]
fn fuzz_child() {
    let Ok(format) = std::env::var("FUZZ_FORMAT") else { return };
    let format = Format::from_name(&format);
    let first: u64 = std::env::var("FUZZ_FIRST").unwrap().parse().unwrap();
    let count: u64 = std::env::var("FUZZ_COUNT").unwrap().parse().unwrap();
    let original = format.seed_file();
    let dir = tmp();
    let read = (first..first + count).filter(|&seed| run_case(format, &mutate(format, &original, seed), dir.path())).count();
    // the long run shows it: a format whose every case fails at once is not being fuzzed deeply
    eprintln!("fuzz {}: {count} cases, {read} read without error", format.name());
}

/// How a batch ended.
enum Outcome {
    Passed,
    Failed(String),
}

/// Run cases in a child under the memory and time limits.
fn run_batch(format: Format, first: u64, count: u64, limit: Duration) -> Outcome {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new("sh")
        .args(["-c", "ulimit -v 6291456 && exec \"$0\" \"$@\""])
        .arg(&exe)
        .args(["fuzz::fuzz_child", "--exact", "--ignored", "--test-threads=1", "-q", "--nocapture"])
        .env("FUZZ_FORMAT", format.name())
        .env("FUZZ_FIRST", first.to_string())
        .env("FUZZ_COUNT", count.to_string())
        .env("RAYON_NUM_THREADS", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
            if status.success() {
                // a child that ran no case (a renamed test, a lost variable) must not pass for one that ran them all
                let ran = format!("fuzz {}: {count} cases,", format.name());
                assert!(text.contains(&ran), "the fuzz child did not run its cases: {text}");
                return Outcome::Passed;
            }
            let tail: String = text.lines().rev().take(12).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
            return Outcome::Failed(format!("{status}:\n{tail}"));
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return Outcome::Failed(format!("hung (over {limit:?})"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Run `count` cases of `format` from `first` in batches; on a failure, find
/// the case and fail with its seed, its bytes (saved) and what the child said.
fn fuzz(format: Format, first: u64, count: u64, batch: u64) {
    let mut at = first;
    while at < first + count {
        let n = batch.min(first + count - at);
        if let Outcome::Failed(why) = run_batch(format, at, n, Duration::from_secs(10 + n / 10)) {
            for seed in at..at + n {
                if let Outcome::Failed(why) = run_batch(format, seed, 1, Duration::from_secs(20)) {
                    let case = mutate(format, &format.seed_file(), seed);
                    let saved = save_case(format, seed, &case);
                    let head: String = case.iter().take(64).map(|b| format!("{b:02x}")).collect();
                    panic!(
                        "fuzz {} seed {seed}: {why}\ncase ({} bytes, saved to {}): {head}...",
                        format.name(),
                        case.len(),
                        saved.display()
                    );
                }
            }
            panic!("fuzz {} cases {at}..{}: the batch failed ({why}), no single case does", format.name(), at + n);
        }
        at += n;
    }
}

fn save_case(format: Format, seed: u64, case: &[u8]) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-failures");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{}-{seed}", format.name()));
    std::fs::write(&path, case).unwrap();
    path
}

/// A few hundred cases per format, every run the same ones.
#[test]
fn mutated_files_of_every_format_give_errors_not_crashes() {
    let cases: u64 = std::env::var("CYCLEGAN_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    for format in FORMATS {
        fuzz(format, 0, cases, 100);
    }
}

/// `scripts/fuzz.sh`: CYCLEGAN_FUZZ_CASES (100,000) per format from CYCLEGAN_FUZZ_FIRST (1,000,000),
/// printing each format's time.
#[test]
#[ignore = "long: scripts/fuzz.sh runs it"]
fn fuzz_long() {
    let cases: u64 = std::env::var("CYCLEGAN_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let first: u64 = std::env::var("CYCLEGAN_FUZZ_FIRST").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let only = std::env::var("CYCLEGAN_FUZZ_FORMAT").ok();
    for format in FORMATS.into_iter().filter(|f| only.as_deref().is_none_or(|o| o == f.name())) {
        let start = Instant::now();
        fuzz(format, first, cases, 1000);
        eprintln!("fuzz {}: {cases} cases from seed {first}, no crash, {:.0} s", format.name(), start.elapsed().as_secs_f64());
    }
}
