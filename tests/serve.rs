//! `cyclegan serve` (issue 11) against a real server on an ephemeral port:
//! served pixels equal `translate`'s, every limit and kind of bad input, a
//! queue that only ever answers 200 or 503, authentication, and a SIGTERM
//! that answers the requests in flight.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::util::{assert_refused, bin, fixture, run, tmp};

/// A running `cyclegan serve` and its base URL; killed when dropped.
pub struct Served {
    pub child: Child,
    pub url: String,
    pub stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Served {
    pub fn start(args: &[&str]) -> Self {
        Self::start_with(args, &[])
    }

    /// [`Served::start`] with environment variables set for the server.
    pub fn start_with(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = bin()
            .envs(env.iter().copied())
            .arg("serve")
            .args(["--addr", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (err_pipe, log) = (child.stderr.take().unwrap(), stderr.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(err_pipe).lines().map_while(Result::ok) {
                log.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in '{line}': {}", stderr.lock().unwrap()))
            .trim_end_matches('/')
            .to_string();
        Self { child, url, stderr }
    }

    pub fn agent() -> ureq::Agent {
        ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(Duration::from_secs(120))).build().into()
    }

    /// (status, content type, body) of a request.
    pub fn call(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> (u16, String, Vec<u8>) {
        let url = format!("{}{path}", self.url);
        let agent = Self::agent();
        let result = match (method, body) {
            ("GET", _) => {
                let mut r = agent.get(&url);
                for (k, v) in headers {
                    r = r.header(*k, *v);
                }
                r.call()
            }
            (_, body) => {
                let mut r = agent.post(&url);
                for (k, v) in headers {
                    r = r.header(*k, *v);
                }
                r.send(body.unwrap_or(&[]))
            }
        };
        let mut response = result.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status().as_u16();
        let ctype = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let mut bytes = Vec::new();
        response.body_mut().as_reader().read_to_end(&mut bytes).unwrap();
        (status, ctype, bytes)
    }

    pub fn translate(&self, query: &str, image: &[u8]) -> (u16, String, Vec<u8>) {
        self.call("POST", &format!("/v1/translate{query}"), &[("Content-Type", "image/png")], Some(image))
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status.lines().find(|l| l.starts_with("VmRSS:")).unwrap().split_whitespace().nth(1).unwrap().parse().unwrap()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The error message of a JSON error body.
fn error_of(body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(body)));
    v["error"].as_str().unwrap_or_else(|| panic!("no error field: {v}")).to_string()
}

pub fn translate_file(model: &Path, image: &Path, out: &Path) {
    let (ok, _, err) = run(&["translate", "--model", model.to_str().unwrap(), image.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert!(ok, "{err}");
}

/// A PNG whose header claims `w` x `h` (a decompression bomb, nothing behind it).
fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend(w.to_be_bytes());
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    let crc = crc32fast::hash(&ihdr);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(13u32.to_be_bytes());
    png.extend(&ihdr);
    png.extend(crc.to_be_bytes());
    // a few compressed bytes of the first row, and the end
    for (kind, data) in [(&b"IDAT"[..], &b"\x78\x9c\x63\x00\x00\x00\x01\x00\x01"[..]), (b"IEND", b"")] {
        png.extend((data.len() as u32).to_be_bytes());
        let mut chunk = kind.to_vec();
        chunk.extend(data);
        png.extend(&chunk);
        png.extend(crc32fast::hash(&chunk).to_be_bytes());
    }
    png
}

#[test]
fn served_pixels_equal_translates_in_every_format_and_upload_form() {
    let model = fixture("g_resnet9.pth");
    let server = Served::start(&["--model", &format!("h2z={}", model.display())]);
    let dir = tmp();
    for name in ["img_odd.png", "img_square.png"] {
        let input = fixture(name);
        let want = dir.path().join(format!("translate_{name}"));
        translate_file(&model, &input, &want);
        let want = image::open(&want).unwrap().to_rgb8();
        let bytes = std::fs::read(&input).unwrap();
        let (status, ctype, body) = server.translate("?model=h2z&direction=a2b", &bytes);
        assert_eq!((status, ctype.as_str()), (200, "image/png"), "{}", String::from_utf8_lossy(&body));
        assert_eq!(image::load_from_memory(&body).unwrap().to_rgb8(), want, "{name}: served pixels differ from translate's");
        // the only model is the default; a multipart form with an `image` field works the same
        let boundary = "xYzBoUnDaRy";
        let mut form = format!("--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{name}\"\r\nContent-Type: image/png\r\n\r\n").into_bytes();
        form.extend(&bytes);
        form.extend(format!("\r\n--{boundary}--\r\n").as_bytes());
        let ct = format!("multipart/form-data; boundary={boundary}");
        let (status, _, body) = server.call("POST", "/v1/translate", &[("Content-Type", &ct)], Some(&form));
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        assert_eq!(image::load_from_memory(&body).unwrap().to_rgb8(), want, "{name}: multipart");
    }
    for (format, ctype) in [("jpeg", "image/jpeg"), ("webp", "image/webp")] {
        let (status, got, body) = server.translate(&format!("?format={format}"), &std::fs::read(fixture("img_odd.png")).unwrap());
        assert_eq!((status, got.as_str()), (200, ctype));
        assert_eq!(image::load_from_memory(&body).unwrap().width(), 45, "{format}");
    }
    let (status, _, body) = server.call("GET", "/v1/models", &[], None);
    let models: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, 200);
    let m = &models["models"][0];
    assert_eq!((m["name"].as_str(), m["arch"].as_str(), m["directions"][0].as_str()), (Some("h2z"), Some("resnet_9blocks"), Some("a2b")));
    assert_eq!(m["metadata"]["ngf"], "8");
    assert_eq!(server.call("GET", "/healthz", &[], None).0, 200);
    assert_eq!(server.call("GET", "/readyz", &[], None).0, 200);
    let (status, ctype, page) = server.call("GET", "/", &[], None);
    let page = String::from_utf8(page).unwrap();
    assert!(status == 200 && ctype.starts_with("text/html") && page.contains(r#"<input type="file""#) && page.contains(">Translate</button>") && page.contains(r#"id="result""#));
    assert!(!page.contains("http://") && !page.contains("https://"), "the page loads nothing from elsewhere");
    let (_, _, metrics) = server.call("GET", "/metrics", &[], None);
    let metrics = String::from_utf8(metrics).unwrap();
    for line in ["cyclegan_requests_total{status=\"200\"}", "cyclegan_request_seconds_bucket{le=\"+Inf\"}", "cyclegan_queue_depth 0", "cyclegan_images_translated_total 6"] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
}

#[test]
fn run_folders_serve_each_direction_and_cut_runs_one() {
    let dir = tmp();
    let data = dir.path().join("data");
    crate::util::dataset(&data, 2);
    let common = ["--dataroot", data.to_str().unwrap(), "--netG", "resnet_6blocks", "--ngf", "2", "--ndf", "2", "--load-size", "36", "--crop-size", "32", "--max-iters", "1"];
    let (cycle, cut) = (dir.path().join("cycle"), dir.path().join("cut"));
    for (out, extra) in [(&cycle, vec![]), (&cut, vec!["--model", "cut", "--netF-nc", "8", "--num-patches", "16"])] {
        let mut args = vec!["train", "--output", out.to_str().unwrap()];
        args.extend(common);
        args.extend(extra);
        let (ok, _, err) = run(&args);
        assert!(ok, "{err}");
    }
    let server = Served::start(&["--model", &format!("cyc={}", cycle.display()), "--model", &format!("cut={}", cut.display())]);
    let image = std::fs::read(fixture("img_odd.png")).unwrap();
    for (query, want) in [("?model=cyc&direction=a2b", 200), ("?model=cyc&direction=b2a", 200), ("?model=cut", 200), ("?model=cut&direction=b2a", 404), ("", 400), ("?model=nope", 404), ("?model=cyc&direction=sideways", 400)] {
        let (status, _, body) = server.translate(query, &image);
        assert_eq!(status, want, "{query}: {}", String::from_utf8_lossy(&body));
        if want != 200 {
            let e = error_of(&body);
            assert!(!e.is_empty() && !e.contains('\n'), "{query}: {e}");
        }
    }
    // b2a is G_B's translation, pixel for pixel
    let want = dir.path().join("b2a.png");
    let (ok, _, err) = run(&["translate", "--model", cycle.to_str().unwrap(), "--direction", "b2a", fixture("img_odd.png").to_str().unwrap(), "-o", want.to_str().unwrap()]);
    assert!(ok, "{err}");
    let (_, _, body) = server.translate("?model=cyc&direction=b2a", &image);
    assert_eq!(image::load_from_memory(&body).unwrap().to_rgb8(), image::open(&want).unwrap().to_rgb8());
}

/// Every limit and kind of bad input: a 4xx with a one-line JSON reason,
/// and the server keeps serving, its memory bounded after thousands of them.
#[test]
fn limits_and_bad_input_get_4xx_and_the_server_keeps_serving() {
    let model = fixture("g_resnet9.pth");
    let server = Served::start(&["--model", model.to_str().unwrap(), "--max-body-mb", "1", "--max-megapixels", "0.003"]);
    let good = std::fs::read(fixture("img_odd.png")).unwrap(); // 45 x 37 = 1665 pixels
    let big = std::fs::read(fixture("img_square.png")).unwrap(); // 64 x 64 = 4096 pixels
    let mut truncated = good.clone();
    truncated.truncate(good.len() / 2);
    let gif = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;".to_vec();
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("empty", vec![], 400, "the body is empty"),
        ("garbage", b"this is not an image at all".to_vec(), 415, "not an image in a supported format"),
        ("gif", gif, 415, "not an image in a supported format"),
        ("truncated", truncated, 400, "corrupt or truncated"),
        ("bomb", png_claiming(100_000, 100_000), 413, "100000x100000, 10000.0 megapixels, over the limit of 0.0"),
        ("too many pixels", big, 413, "the image is 64x64"),
    ];
    for (what, body, status, message) in &cases {
        let (got, ctype, reply) = server.translate("", body);
        assert_eq!(got, *status, "{what}: {}", String::from_utf8_lossy(&reply));
        assert_eq!(ctype, "application/json", "{what}");
        let e = error_of(&reply);
        assert!(e.contains(message) && !e.contains('\n'), "{what}: {e}");
    }
    // A body over the limit is refused by its length before it is sent, as
    // curl sends large bodies (Expect: 100-continue); the client may go on.
    let reply = raw_request(&server.url, &format!(
        "POST /v1/translate HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        2 << 20
    ));
    assert!(reply.starts_with("HTTP/1.1 413") && reply.contains("application/json") && reply.contains("over the 1 MiB limit"), "{reply}");
    let (status, _, body) = server.call("GET", "/no/such/route", &[], None);
    assert_eq!(status, 404);
    assert!(error_of(&body).contains("no such route"));
    let (status, _, body) = server.call("GET", "/v1/translate", &[], None);
    assert_eq!(status, 405, "{}", String::from_utf8_lossy(&body));
    error_of(&body);
    assert_eq!(server.translate("", &good).0, 200, "still serving");

    // thousands of bad requests leave the memory where it was
    let before = server.rss_kib();
    let agent = Served::agent();
    for i in 0..3000 {
        let body: &[u8] = match i % 3 {
            0 => b"garbage",
            1 => &cases[4].1,
            _ => &cases[3].1,
        };
        let r = agent.post(&format!("{}/v1/translate", server.url)).send(body).unwrap();
        assert!(r.status().is_client_error());
    }
    let after = server.rss_kib();
    assert!(after < before + 30 * 1024, "resident memory {before} KiB -> {after} KiB after 3000 bad requests");
    assert_eq!(server.translate("", &good).0, 200, "still serving");
}

/// More clients than the queue holds: every answer is 200 or 503 (with
/// Retry-After), and some of each.
#[test]
fn a_full_queue_answers_503_and_nothing_else_fails() {
    let server = Served::start(&["--model", fixture("g_resnet9.pth").to_str().unwrap(), "--queue", "1"]);
    let image = big_png(384);
    let statuses: Vec<(u16, Option<String>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    let r = Served::agent().post(&format!("{}/v1/translate", server.url)).header("Content-Type", "image/png").send(&image[..]).unwrap();
                    (r.status().as_u16(), r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string()))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(statuses.iter().all(|(s, _)| *s == 200 || *s == 503), "{statuses:?}");
    assert!(statuses.iter().any(|(s, _)| *s == 200) && statuses.iter().any(|(s, _)| *s == 503), "{statuses:?}");
    assert!(statuses.iter().filter(|(s, _)| *s == 503).all(|(_, r)| r.as_deref() == Some("1")), "{statuses:?}");
    let (_, _, metrics) = server.call("GET", "/metrics", &[], None);
    assert!(String::from_utf8(metrics).unwrap().contains("cyclegan_requests_total{status=\"503\"}"));
}

/// Send `head` over a fresh connection and read what comes back until the server closes or goes quiet.
fn raw_request(url: &str, head: &str) -> String {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(url.trim_start_matches("http://")).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            break;
        }
        reply.extend(&buf[..n]);
        if String::from_utf8_lossy(&reply).contains("\"}") {
            break;
        }
    }
    String::from_utf8_lossy(&reply).into_owned()
}

/// A `size` x `size` PNG of a smooth pattern.
fn big_png(size: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(size, size, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8]));
    let mut bytes = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png).unwrap();
    bytes
}

#[test]
fn a_request_past_its_deadline_gets_504() {
    let server = Served::start(&["--model", fixture("g_resnet9.pth").to_str().unwrap(), "--timeout-secs", "0.05"]);
    let (status, _, body) = server.translate("", &big_png(1024));
    assert_eq!(status, 504, "{}", String::from_utf8_lossy(&body));
    assert!(error_of(&body).contains("deadline"), "{}", error_of(&body));
    // the device finishes the abandoned translation, then serves again
    let small = std::fs::read(fixture("img_odd.png")).unwrap();
    let start = Instant::now();
    while server.translate("", &small).0 != 200 {
        assert!(start.elapsed() < Duration::from_secs(120), "the server never served again");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn auth_token_guards_every_route_but_healthz_and_public_addresses_warn() {
    let model = fixture("g_resnet9.pth");
    let server = Served::start(&["--model", model.to_str().unwrap(), "--auth-token", "s3cret"]);
    assert_eq!(server.call("GET", "/healthz", &[], None).0, 200);
    for path in ["/", "/v1/models", "/metrics", "/readyz"] {
        let (status, _, body) = server.call("GET", path, &[], None);
        assert_eq!(status, 401, "{path}");
        assert!(error_of(&body).contains("Authorization: Bearer"), "{path}");
        assert_eq!(server.call("GET", path, &[("Authorization", "Bearer wrong")], None).0, 401, "{path}");
        assert_eq!(server.call("GET", path, &[("Authorization", "Bearer s3cret")], None).0, 200, "{path}");
    }
    let image = std::fs::read(fixture("img_odd.png")).unwrap();
    assert_eq!(server.translate("", &image).0, 401);
    let (status, _, _) = server.call("POST", "/v1/translate", &[("Authorization", "Bearer s3cret")], Some(&image));
    assert_eq!(status, 200);
    drop(server);

    let open = Served::start(&["--model", model.to_str().unwrap(), "--addr", "0.0.0.0:0"]);
    let start = Instant::now();
    while !open.stderr.lock().unwrap().contains("warning:") && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = open.stderr.lock().unwrap().clone();
    assert!(log.contains("warning: 0.0.0.0:") && log.contains("--auth-token is not set"), "{log}");
}

#[test]
fn bad_arguments_fail_in_one_line_before_serving() {
    let model = fixture("g_resnet9.pth");
    let m = model.to_str().unwrap();
    let named = format!("a={m}");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--model", "missing.pth"], "missing.pth: no such file or folder"),
        (vec!["--model", m, "--max-megapixels", "100"], "--max-megapixels over 40 needs --tile"),
        (vec!["--model", m, "--queue", "0"], "must be at least 1"),
        (vec!["--model", m, "--timeout-secs", "0"], "--timeout-secs must be a positive number"),
        (vec!["--model", m, "--timeout-secs", "1e20"], "--timeout-secs 100000000000000000000 is more than a timer can hold"),
        (vec!["--model", m, "--timeout-secs", "nan"], "--timeout-secs must be a positive number"),
        (vec!["--model", &named, "--model", &named], "two models are named 'a'"),
        (vec!["--model", "bad name=x.pth"], "a model's name is letters, digits"),
        (vec!["--model", m, "--addr", "999.0.0.1:80"], "invalid value '999.0.0.1:80' for '--addr"),
    ];
    for (args, expected) in cases {
        let mut all = vec!["serve"];
        all.extend(&args);
        let (ok, _, err) = run(&all);
        assert_refused(&args, ok, &err, expected);
    }
}

/// SIGTERM while requests are in flight: they are answered, new ones are
/// not taken, and the process exits 0.
#[test]
fn sigterm_answers_requests_in_flight_and_exits_zero() {
    let mut server = Served::start(&["--model", fixture("g_resnet9.pth").to_str().unwrap()]);
    let image = big_png(768);
    let url = server.url.clone();
    let in_flight: Vec<_> = (0..2)
        .map(|_| {
            let (url, image) = (url.clone(), image.clone());
            std::thread::spawn(move || Served::agent().post(&format!("{url}/v1/translate")).send(&image[..]).map(|r| r.status().as_u16()))
        })
        .collect();
    // both requests reach the server before the signal
    let start = Instant::now();
    loop {
        let (_, _, m) = server.call("GET", "/metrics", &[], None);
        let m = String::from_utf8(m).unwrap();
        let queued = m.lines().find(|l| l.starts_with("cyclegan_queue_depth ")).unwrap().ends_with(" 1");
        if queued {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "the requests never queued:\n{m}");
        std::thread::sleep(Duration::from_millis(5));
    }
    // SAFETY: sending a signal to our own child process
    assert_eq!(unsafe { libc::kill(server.child.id() as i32, libc::SIGTERM) }, 0);
    for h in in_flight {
        assert_eq!(h.join().unwrap().unwrap(), 200, "a request in flight was dropped");
    }
    let status = server.child.wait().unwrap();
    assert!(status.success(), "exit status {status:?}: {}", server.stderr.lock().unwrap());
    assert!(Served::agent().get(&format!("{url}/healthz")).call().is_err(), "still accepting after SIGTERM");
}

/// Issue 20: a panic in the worker answers that request 500 (JSON) and the
/// next request is served; a failure is 500 too, without Retry-After.
#[test]
fn a_panicking_or_failing_worker_answers_500_and_serves_the_next_request() {
    let model = fixture("g_resnet9.pth");
    let image = std::fs::read(fixture("img_odd.png")).unwrap();
    for (fault, expected) in [("panic@1", "internal error"), ("fail@1", "translating failed")] {
        let server = Served::start_with(&["--model", model.to_str().unwrap()], &[("CYCLEGAN_TEST_FAULT", fault)]);
        let (status, ctype, body) = server.translate("", &image);
        assert_eq!((status, ctype.as_str()), (500, "application/json"), "{fault}: {}", String::from_utf8_lossy(&body));
        assert!(error_of(&body).contains(expected), "{fault}: {}", error_of(&body));
        let (status, _, body) = server.translate("", &image);
        assert_eq!(status, 200, "{fault}: the next request is served: {}", String::from_utf8_lossy(&body));
        assert_eq!(server.call("GET", "/readyz", &[], None).0, 200, "{fault}");
    }
}

/// Issue 20: when no worker is left, `/readyz` says so and requests get 503.
#[test]
fn a_server_without_its_worker_is_not_ready() {
    let model = fixture("g_resnet9.pth");
    let server = Served::start_with(&["--model", model.to_str().unwrap()], &[("CYCLEGAN_TEST_FAULT", "exit@1")]);
    assert_eq!(server.call("GET", "/readyz", &[], None).0, 200);
    let image = std::fs::read(fixture("img_odd.png")).unwrap();
    let (status, _, body) = server.translate("", &image);
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
    let (status, _, body) = server.call("GET", "/readyz", &[], None);
    assert_eq!(status, 503);
    assert!(error_of(&body).contains("worker"), "{}", error_of(&body));
    assert_eq!(server.translate("", &image).0, 503);
}
