//! The web page of `cyclegan serve` in a real browser: Debian's chromium,
//! headless, driven over the DevTools protocol (chromiumoxide; nothing
//! downloads a browser). It opens the page, chooses an image, presses
//! Translate, and reads `<img id="result">`'s pixels back through a canvas:
//! they must be `cyclegan translate`'s. With `CYCLEGAN_SCREENSHOT=FILE` it
//! also saves a screenshot of the page; `CYCLEGAN_SCREENSHOT_MODEL` and
//! `CYCLEGAN_SCREENSHOT_IMAGE` put another model and image on it (README's
//! picture: a CycleGAN trained on emoji64).
//!
//! The test needs `/usr/bin/chromium` (or `$CHROMIUM`); `.ci/run` installs
//! it. `CYCLEGAN_SKIP_BROWSER=1` skips it on machines without one.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chromiumoxide::browser::{Browser, BrowserConfig};
use chromiumoxide::cdp::browser_protocol::dom::SetFileInputFilesParams;
use chromiumoxide::page::ScreenshotParams;
use futures::StreamExt;

use crate::serve::{Served, translate_file};
use crate::util::{fixture, tmp};

fn chromium() -> Option<PathBuf> {
    let path = PathBuf::from(std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()));
    path.is_file().then_some(path)
}

#[test]
fn the_page_translates_a_chosen_image_with_translates_pixels() {
    let Some(chromium) = chromium() else {
        if std::env::var("CYCLEGAN_SKIP_BROWSER").is_ok_and(|v| v == "1") {
            eprintln!("skipped: no chromium (CYCLEGAN_SKIP_BROWSER=1)");
            return;
        }
        panic!("the browser test needs Debian's chromium at /usr/bin/chromium (apt-get install chromium), or CHROMIUM=PATH; CYCLEGAN_SKIP_BROWSER=1 skips it");
    };
    let env_path = |k: &str| std::env::var(k).ok().map(PathBuf::from);
    let model = env_path("CYCLEGAN_SCREENSHOT_MODEL").unwrap_or_else(|| fixture("g_resnet9.pth"));
    let server = Served::start(&["--model", model.to_str().unwrap()]);
    let dir = tmp();
    let input = env_path("CYCLEGAN_SCREENSHOT_IMAGE").unwrap_or_else(|| fixture("img_square.png"));
    let want = dir.path().join("want.png");
    translate_file(&model, &input, &want);
    let want = image::open(&want).unwrap().to_rgba8();

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (got_w, got_h, pixels) = runtime.block_on(async {
        let profile = dir.path().join("profile");
        let config = BrowserConfig::builder()
            .chrome_executable(&chromium)
            .no_sandbox()
            .new_headless_mode()
            .user_data_dir(&profile)
            .window_size(1100, 800)
            .args([
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ])
            .launch_timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let (mut browser, mut handler) = Browser::launch(config).await.expect("chromium starts");
        // the handler drives the connection; messages chromiumoxide does not know are errors to skip
        let events = tokio::spawn(async move { while handler.next().await.is_some() {} });
        let page = browser.new_page(format!("{}/", server.url)).await.unwrap();
        page.wait_for_navigation().await.unwrap();
        // the model list arrives from /v1/models
        wait_for(&page, "document.getElementById('model').options.length > 0").await;
        let file_input = page.find_element("input[type=file]").await.unwrap();
        page.execute(
            SetFileInputFilesParams::builder().files(vec![input.display().to_string()]).backend_node_id(file_input.backend_node_id).build().unwrap(),
        )
        .await
        .unwrap();
        page.find_element("#translate").await.unwrap().click().await.unwrap();
        wait_for(&page, "(() => { const i = document.getElementById('result'); return i.complete && i.naturalWidth > 0; })()").await;
        let error: String = page.evaluate("document.getElementById('error').textContent").await.unwrap().into_value().unwrap();
        assert!(error.is_empty(), "the page shows an error: {error}");
        let read = r#"(() => {
            const img = document.getElementById('result');
            const c = document.createElement('canvas');
            c.width = img.naturalWidth; c.height = img.naturalHeight;
            const ctx = c.getContext('2d');
            ctx.drawImage(img, 0, 0);
            return [c.width, c.height, Array.from(ctx.getImageData(0, 0, c.width, c.height).data)];
        })()"#;
        let (w, h, pixels): (u32, u32, Vec<u8>) = page.evaluate(read).await.unwrap().into_value().unwrap();
        if let Ok(path) = std::env::var("CYCLEGAN_SCREENSHOT") {
            let shot = page.screenshot(ScreenshotParams::builder().full_page(true).build()).await.unwrap();
            std::fs::write(path, shot).unwrap();
        }
        // a bad upload shows its error on the page
        page.evaluate(r#"(() => { const f = new File([new Uint8Array([1, 2, 3])], "bad.png", { type: "image/png" });
            const dt = new DataTransfer(); dt.items.add(f); const input = document.getElementById('file');
            input.files = dt.files; input.dispatchEvent(new Event('change')); })()"#)
            .await
            .unwrap();
        page.find_element("#translate").await.unwrap().click().await.unwrap();
        wait_for(&page, "document.getElementById('error').textContent.length > 0").await;
        let error: String = page.evaluate("document.getElementById('error').textContent").await.unwrap().into_value().unwrap();
        assert!(error.contains("not an image") && error.contains("415"), "{error}");
        browser.close().await.unwrap();
        let _ = browser.wait().await;
        events.abort();
        (w, h, pixels)
    });
    assert_eq!((got_w, got_h), want.dimensions());
    assert_eq!(pixels, want.into_raw(), "the page's result differs from translate's pixels");
}

/// Poll a JavaScript condition until it holds (30 s at most).
async fn wait_for(page: &chromiumoxide::Page, condition: &str) {
    let start = Instant::now();
    loop {
        if page.evaluate(condition).await.ok().and_then(|v| v.into_value::<bool>().ok()) == Some(true) {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "timed out waiting for {condition}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
