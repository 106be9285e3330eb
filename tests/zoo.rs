//! The zoo (issue 18): models and datasets by name, fetched from a local
//! HTTP server started by each test (the official paths under a mirror), never
//! from outside. Pretrained networks are stood in for by randomly drawn ones
//! of the same architecture, saved as PyTorch would save them.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use cyclegan::checkpoint::StateDict;
use cyclegan::nets::{GeneratorArch, GeneratorConfig, Initializer, NormKind};
use cyclegan::rng::Rng;
use cyclegan::zoo::{self, Event, Expected, Source};

use crate::checkpoints::max_pixel_diff;
use crate::util::{View, bin, fixture, pth, tmp};

/// What the test server was asked: the path and the Range header, if any.
type Log = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// A one-thread HTTP/1.1 file server on 127.0.0.1 that answers Range
/// requests, and can cut a file's first transfer halfway.
struct Server {
    url: String,
    files: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    cut_once: Arc<Mutex<HashSet<String>>>,
    log: Log,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let files = Arc::new(Mutex::new(HashMap::new()));
        let cut_once = Arc::new(Mutex::new(HashSet::new()));
        let log: Log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (f, c, l, s) = (files.clone(), cut_once.clone(), log.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    let _ = answer(stream, &f, &c, &l);
                }
            }
        });
        Self { url, files, cut_once, log, stop, thread: Some(thread) }
    }

    fn put(&self, path: &str, bytes: Vec<u8>) {
        self.files.lock().unwrap().insert(path.to_string(), bytes);
    }

    fn cut_first_transfer(&self, path: &str) {
        self.cut_once.lock().unwrap().insert(path.to_string());
    }

    fn requests(&self) -> Vec<(String, Option<String>)> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.url.trim_start_matches("http://")); // wake the accept
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn answer(
    mut stream: TcpStream,
    files: &Mutex<HashMap<String, Vec<u8>>>,
    cut_once: &Mutex<HashSet<String>>,
    log: &Log,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let path = request_line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut range = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("range")
        {
            range = Some(v.trim().to_string());
        }
    }
    log.lock().unwrap().push((path.clone(), range.clone()));
    let Some(body) = files.lock().unwrap().get(&path).cloned() else {
        return stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    };
    let start: usize = range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let head = if range.is_some() {
        format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {start}-{}/{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len() - 1,
            body.len(),
            body.len() - start
        )
    } else {
        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len())
    };
    stream.write_all(head.as_bytes())?;
    let rest = &body[start..];
    if cut_once.lock().unwrap().remove(&path) {
        stream.write_all(&rest[..rest.len() / 2])?;
        stream.flush()?;
        return stream.shutdown(std::net::Shutdown::Both); // cut: fewer bytes than announced
    }
    stream.write_all(rest)
}

/// A zoo generator's architecture (resnet_9blocks, ngf 64), randomly drawn,
/// as a PyTorch zip `.pth`.
fn pretrained_pth(cut: bool, seed: u64) -> Vec<u8> {
    let config = GeneratorConfig {
        arch: GeneratorArch::Resnet9Blocks,
        input_nc: 3,
        output_nc: 3,
        ngf: 64,
        norm: NormKind::Instance,
        dropout: false,
        antialias: cut,
        antialias_up: cut,
    };
    let net = config.init(&Initializer::default(), &mut Rng::seed_from(seed), &burn::tensor::Device::flex());
    let dict = StateDict::from_net(&net, "");
    let views: Vec<View> = dict
        .iter()
        .map(|(k, d)| {
            let key: &'static str = Box::leak(k.clone().into_boxed_str());
            View::dense(key, crate::util::floats(d), d.shape().as_ref())
        })
        .collect();
    pth(&views)
}

/// Run the binary with the zoo's cache in `home` and the mirror at `url`.
fn cyclegan(home: &Path, mirror: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let out = bin().env("CYCLEGAN_HOME", home).env("CYCLEGAN_MIRROR", mirror).args(args).output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// Exit 1 with one error line, the last: before it only what was done on the
/// way (a download's SHA-256, a retry), never a panic.
fn one_line_failure((code, _, err): (Option<i32>, String, String), expected: &str) {
    assert_eq!(code, Some(1), "exit {code:?}: {err}");
    let lines: Vec<&str> = err.trim().lines().collect();
    assert_eq!(lines.iter().filter(|l| l.starts_with("error: ")).count(), 1, "one error line: {err}");
    let last = lines.last().unwrap();
    assert!(last.starts_with("error: ") && last.contains(expected), "expected {expected:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() { out.extend(files_under(&p)) } else { out.push(p) }
        }
    }
    out.sort();
    out
}

#[test]
fn a_cyclegan_zoo_name_translates_like_its_pth_and_then_works_offline() {
    let dir = tmp();
    let home = dir.path().join("home");
    let server = Server::start();
    let original = pretrained_pth(false, 7);
    server.put("/cyclegan/pretrained_models/horse2zebra.pth", original.clone());
    let pth_file = dir.path().join("horse2zebra.pth");
    std::fs::write(&pth_file, &original).unwrap();
    let img = fixture("img_square.png");
    let (by_name, by_file, offline) = (dir.path().join("name.png"), dir.path().join("file.png"), dir.path().join("offline.png"));

    let (code, _, err) = cyclegan(&home, &server.url, &["translate", "--model", "horse2zebra", img.to_str().unwrap(), "-o", by_name.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("no checksum is published; SHA-256"), "the SHA-256 that arrived is shown: {err}");
    let (code, _, err) = cyclegan(&home, &server.url, &["translate", "--model", pth_file.to_str().unwrap(), img.to_str().unwrap(), "-o", by_file.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(max_pixel_diff(&by_name, &by_file), 0, "the zoo name and its .pth translate alike");

    // cached, self-describing, nothing left in downloads
    let cached = home.join("models").join("horse2zebra.safetensors");
    let (_, meta) = cyclegan::checkpoint::read_safetensors(&cached).unwrap();
    assert_eq!(meta.get("zoo").map(String::as_str), Some("horse2zebra"));
    assert_eq!(meta.get("direction").map(String::as_str), Some("a2b"));
    assert_eq!(meta.get("source").unwrap(), &format!("{}/cyclegan/pretrained_models/horse2zebra.pth", server.url));
    let sha = cyclegan::evaluate::weights::sha256_hex(&original);
    assert_eq!(meta.get("source_sha256"), Some(&sha));
    assert!(files_under(&home.join("downloads")).is_empty(), "downloads are removed once imported");

    // the server gone, the cached model still works (and export takes the name too)
    let url = server.url.clone();
    drop(server);
    let (code, _, err) = cyclegan(&home, &url, &["translate", "--model", "horse2zebra", img.to_str().unwrap(), "-o", offline.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(max_pixel_diff(&offline, &by_file), 0);
    let onnx = dir.path().join("h.onnx");
    let (code, _, err) = cyclegan(&home, &url, &["export", "--model", "horse2zebra", "-o", onnx.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn a_cut_zoo_name_comes_from_the_archive_and_translates_like_its_pth() {
    let dir = tmp();
    let home = dir.path().join("home");
    let server = Server::start();
    let (cut, fastcut) = (pretrained_pth(true, 3), pretrained_pth(true, 4));
    let mut tar = tar::Builder::new(Vec::new());
    for (name, bytes) in [("horse2zebra_cut", &cut), ("cat2dog_fastcut", &fastcut)] {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, format!("pretrained_models/{name}_pretrained/latest_net_G.pth"), bytes.as_slice()).unwrap();
    }
    let tar = tar.into_inner().unwrap();
    server.put("/CUT/pretrained_models.tar", tar.clone());
    let img = fixture("img_odd.png");
    let pth_file = dir.path().join("cut.pth");
    std::fs::write(&pth_file, &cut).unwrap();
    let (by_name, by_file) = (dir.path().join("name.png"), dir.path().join("file.png"));
    let (code, _, err) = cyclegan(&home, &server.url, &["translate", "--model", "horse2zebra_cut", img.to_str().unwrap(), "-o", by_name.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    let (code, _, err) = cyclegan(&home, &server.url, &["translate", "--model", pth_file.to_str().unwrap(), img.to_str().unwrap(), "-o", by_file.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(max_pixel_diff(&by_name, &by_file), 0);
    // the archive's other generator was imported with it: no second download
    let requests = server.requests().len();
    let (code, out, err) = cyclegan(&home, &server.url, &["download", "model", "cat2dog_fastcut"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("cat2dog_fastcut.safetensors"), "{out}");
    assert_eq!(server.requests().len(), requests, "cat2dog_fastcut came from the archive already fetched");
    let (_, meta) = cyclegan::checkpoint::read_safetensors(&home.join("models").join("cat2dog_fastcut.safetensors")).unwrap();
    assert_eq!(meta.get("model").map(String::as_str), Some("fastcut"));
    // a name the archive lacks: one line
    let mut other = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(5);
    header.set_cksum();
    other.append_data(&mut header, "pretrained_models/README", &b"hello"[..]).unwrap();
    server.put("/CUT/pretrained_models.tar", other.into_inner().unwrap());
    one_line_failure(cyclegan(&home, &server.url, &["download", "model", "cityscapes_cut"]), "has no member ending in cityscapes_cut_pretrained/latest_net_G.pth");

    // a truncated archive (its first generator cut short): one line, exit 1, nothing cached
    let home2 = dir.path().join("home2");
    server.put("/CUT/pretrained_models.tar", tar[..4096].to_vec());
    one_line_failure(cyclegan(&home2, &server.url, &["download", "model", "horse2zebra_cut"]), "truncated");
    assert!(files_under(&home2).is_empty(), "{:?}", files_under(&home2));
}

#[test]
fn a_cut_transfer_resumes_with_range_and_ends_byte_identical() {
    let dir = tmp();
    let server = Server::start();
    let body: Vec<u8> = (0..3_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    server.put("/f.bin", body.clone());
    server.cut_first_transfer("/f.bin");
    let target = dir.path().join("f.bin");
    let mut events = Vec::new();
    let fetched = zoo::download::fetch(&format!("{}/f.bin", server.url), &target, Expected::default(), &mut |e| events.push(e)).unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), body, "byte-identical");
    assert_eq!(fetched.sha256, cyclegan::evaluate::weights::sha256_hex(&body));
    let requests = server.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests[0].1, None);
    assert_eq!(requests[1].1.as_deref(), Some("bytes=1500000-"), "resumed where the cut left it");
    assert!(events.iter().any(|e| matches!(e, Event::Retrying { .. })));
    assert!(events.iter().any(|e| matches!(e, Event::Downloading { resumed_from: 1_500_000, .. })));
    assert!(!zoo::download::part_path(&target).exists());

    // a size or hash other than the published one: nothing kept
    let other = dir.path().join("g.bin");
    let wrong_size = Expected { size: Some(body.len() as u64 + 1), sha256: None };
    let err = zoo::download::fetch(&format!("{}/f.bin", server.url), &other, wrong_size, &mut |_| {}).unwrap_err().to_string();
    assert!(err.contains(&format!("is {} bytes, but {} are published", body.len(), body.len() + 1)), "{err}");
    let wrong_hash = Expected { size: Some(body.len() as u64), sha256: Some("00ff") };
    let err = zoo::download::fetch(&format!("{}/f.bin", server.url), &other, wrong_hash, &mut |_| {}).unwrap_err().to_string();
    assert!(err.contains(&format!("has SHA-256 {}, but 00ff is published", fetched.sha256)), "{err}");
    assert!(!other.exists() && !zoo::download::part_path(&other).exists());
}

/// A dataset zip as the official ones are laid out, with `extra` members.
fn dataset_zip(name: &str, extra: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let deflated = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (i, folder) in ["trainA", "trainB", "testA", "testB"].iter().enumerate() {
        zip.start_file(format!("{name}/{folder}/{i}.png"), deflated).unwrap();
        zip.write_all(&std::fs::read(fixture("img_square.png")).unwrap()).unwrap();
    }
    for (member, bytes) in extra {
        zip.start_file(*member, deflated).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

#[test]
fn datasets_download_refuse_tampering_traversal_and_bombs() {
    let dir = tmp();
    let home = dir.path().join("home");
    let server = Server::start();
    let d = |name: &str| dir.path().join("datasets").join(name);
    let s = |p: &Path| p.to_str().unwrap().to_string();

    // a dataset without a published checksum, cut once on the way
    server.put("/cyclegan/datasets/mini.zip", dataset_zip("mini", &[]));
    server.cut_first_transfer("/cyclegan/datasets/mini.zip");
    let (code, out, err) = cyclegan(&home, &server.url, &["download", "dataset", "mini", "--dir", &s(&d("mini"))]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("mini ->"), "{out}");
    assert!(err.contains("trying again (1 of 3)") && err.contains("resuming") && err.contains("at byte"), "the cut and the resumption are told: {err}");
    for folder in ["trainA", "trainB", "testA", "testB"] {
        assert_eq!(std::fs::read_dir(d("mini").join(folder)).unwrap().count(), 1, "{folder}");
    }
    assert_eq!(files_under(&dir.path().join("datasets")).len(), 4, "only the dataset is left");
    let (code, out, _) = cyclegan(&home, &server.url, &["download", "dataset", "mini", "--dir", &s(&d("mini"))]);
    assert_eq!((code, out.contains("there already")), (Some(0), true));

    // a tampered horse2zebra.zip (its size and SHA-256 are published): refused, nothing left
    server.put("/cyclegan/datasets/horse2zebra.zip", dataset_zip("horse2zebra", &[]));
    one_line_failure(
        cyclegan(&home, &server.url, &["download", "dataset", "horse2zebra", "--dir", &s(&d("horse2zebra"))]),
        "but 116867962 are published",
    );
    // members that climb out or are absolute, a link, and a bomb: refused, nothing left
    for (member, expected) in [("../../escaped.txt", "would be written outside the folder"), ("/tmp/escaped.txt", "would be written outside the folder")] {
        server.put("/cyclegan/datasets/ae_photos.zip", dataset_zip("ae_photos", &[(member, b"x".to_vec())]));
        one_line_failure(cyclegan(&home, &server.url, &["download", "dataset", "ae_photos", "--dir", &s(&d("ae_photos"))]), expected);
    }
    let linked = {
        let mut zip = zip::ZipWriter::new_append(std::io::Cursor::new(dataset_zip("ae_photos", &[]))).unwrap();
        zip.add_symlink("ae_photos/trainA/link.png", "/etc/passwd", zip::write::SimpleFileOptions::default()).unwrap();
        zip.finish().unwrap().into_inner()
    };
    server.put("/cyclegan/datasets/ae_photos.zip", linked);
    one_line_failure(cyclegan(&home, &server.url, &["download", "dataset", "ae_photos", "--dir", &s(&d("ae_photos"))]), "is a link");
    server.put("/cyclegan/datasets/ae_photos.zip", dataset_zip("ae_photos", &[("ae_photos/trainA/zeros.png", vec![0u8; 80 << 20])]));
    one_line_failure(
        cyclegan(&home, &server.url, &["download", "dataset", "ae_photos", "--dir", &s(&d("ae_photos"))]),
        "unpacks to more than",
    );
    assert_eq!(files_under(&dir.path().join("datasets")).len(), 4, "only mini is there: {:?}", files_under(dir.path()));
    assert!(!dir.path().join("escaped.txt").exists());

    // a file that is not the promised network: refused and removed, nothing cached
    server.put("/cyclegan/pretrained_models/monet2photo.pth", std::fs::read(fixture("g_resnet9.pth")).unwrap());
    one_line_failure(
        cyclegan(&home, &server.url, &["download", "model", "monet2photo"]),
        "holds a resnet_9blocks generator (ngf 8, 3 -> 3 channels), not the CycleGAN resnet_9blocks (ngf 64) monet2photo is; it was removed",
    );
    // 404 (through --mirror, which wins over CYCLEGAN_MIRROR), an unreachable host, an unknown name, cityscapes
    one_line_failure(cyclegan(&home, "http://127.0.0.1:9", &["download", "model", "zebra2horse", "--mirror", &server.url]), "HTTP 404");
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    one_line_failure(cyclegan(&home, &closed, &["download", "model", "zebra2horse"]), "cannot reach the server");
    one_line_failure(cyclegan(&home, &server.url, &["download", "model", "zebra2cat"]), "no model named \"zebra2cat\"");
    one_line_failure(cyclegan(&home, &server.url, &["download", "dataset", "cityscapes"]), "not redistributed");
    assert!(files_under(&home).is_empty(), "{:?}", files_under(&home));
}

#[test]
fn the_list_has_the_official_scripts_names() {
    let (ok, out, err) = crate::util::run(&["download", "--list"]);
    assert!(ok, "{err}");
    let names: HashSet<&str> = out.lines().filter(|l| l.starts_with("  ")).filter_map(|l| l.split_whitespace().next()).collect();
    // datasets/download_cyclegan_dataset.sh
    let datasets = "apple2orange summer2winter_yosemite horse2zebra monet2photo cezanne2photo ukiyoe2photo vangogh2photo maps cityscapes facades iphone2dslr_flower ae_photos mini";
    // scripts/download_cyclegan_model.sh, and CUT's README
    let models = "apple2orange orange2apple summer2winter_yosemite winter2summer_yosemite horse2zebra zebra2horse monet2photo \
                  style_monet style_cezanne style_ukiyoe style_vangogh sat2map map2sat cityscapes_photo2label cityscapes_label2photo \
                  facades_photo2label facades_label2photo iphone2dslr_flower horse2zebra_cut horse2zebra_fastcut cat2dog_cut \
                  cat2dog_fastcut cityscapes_cut cityscapes_fastcut";
    let official: HashSet<&str> = datasets.split_whitespace().chain(models.split_whitespace()).collect();
    assert_eq!(names, official);
    assert!(out.contains("117 MB"), "horse2zebra's published size: {out}");
    // `download --list | head`: a reader that has gone is no error (it panicked on the broken pipe)
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = bin().args(["download", "--list"]).stdout(writer).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.is_empty(), "{:?}: {err}", out.status);
    let source = Source::new(Some("ftp://x")).unwrap_err().to_string();
    assert!(source.contains("not an http:// or https:// URL"), "{source}");
}
