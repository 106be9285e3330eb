//! Crafted checkpoints (issue 8): sizes that a small file claims but cannot
//! hold, shapes that overflow, networks no image fits. Each must give a
//! one-line error and a non-zero exit, never a panic or an abort, also with
//! the address space limited to 6 GB; and a legal stride-0 tensor must load.

use std::io::Write;
use std::path::Path;

use cyclegan::checkpoint;

use crate::util::{View, fixture, floats, pth, tmp};

/// Run the binary with the address space limited to 6 GB and at most 60 s (a server that
/// starts instead of refusing exits 124); (exit code, stderr).
fn run_limited(args: &[&str]) -> (Option<i32>, String) {
    let out = std::process::Command::new("sh")
        .args(["-c", "ulimit -v 6291456 && exec timeout 60 \"$0\" \"$@\"", env!("CARGO_BIN_EXE_cyclegan")])
        .args(args)
        .output()
        .unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// `import`, `translate`, `export`, `eval --model` and `serve --model` of `model` each fail with one line naming it and saying `expected`.
fn refused(model: &Path, expected: &str) {
    let dir = model.parent().unwrap();
    let name = model.file_name().unwrap().to_str().unwrap();
    let out = dir.join(format!("{name}.out.safetensors"));
    let png = dir.join(format!("{name}.png"));
    let onnx = dir.join(format!("{name}.onnx"));
    let img = fixture("img_square.png");
    let images = img.parent().unwrap().to_path_buf();
    for args in [
        vec!["import", model.to_str().unwrap(), "-o", out.to_str().unwrap()],
        vec!["translate", "--model", model.to_str().unwrap(), img.to_str().unwrap(), "-o", png.to_str().unwrap()],
        vec!["export", "--model", model.to_str().unwrap(), "-o", onnx.to_str().unwrap()],
        vec!["eval", "--model", model.to_str().unwrap(), "--test-a", images.to_str().unwrap(), "--test-b", images.to_str().unwrap()],
        vec!["serve", "--model", model.to_str().unwrap(), "--addr", "127.0.0.1:0"],
    ] {
        let (code, err) = run_limited(&args);
        assert_eq!(code, Some(1), "{} {name}: exit {code:?} (a panic is 101, an abort a signal): {err}", args[0]);
        assert_eq!(err.trim().lines().count(), 1, "{} {name}: not one line: {err}", args[0]);
        assert!(err.starts_with("error: ") && err.contains(name) && err.contains(expected), "{} {name}: {err}", args[0]);
    }
    assert!(!out.exists() && !png.exists() && !onnx.exists(), "{name}: output written");
}

#[test]
fn issue_8_expanded_and_overflowing_tensors_are_refused_without_allocating() {
    let dir = tmp();
    let too_many = "more elements than a checkpoint may hold";
    let cases: [(&str, View, &str); 6] = [
        ("expand33.pth", View::expanded("model.1.weight", 0.0, &[1 << 33]), too_many),
        ("expand40.pth", View::expanded("model.1.weight", 0.0, &[1 << 40]), too_many),
        ("overflow.pth", View::expanded("model.1.weight", 0.0, &[1 << 32, 1 << 32, 1 << 32]), too_many),
        ("absurd.pth", View::expanded("model.1.weight", 0.0, &[i64::MAX, 2]), too_many),
        ("negative.pth", View::expanded("model.1.weight", 0.0, &[8, -3, 7, 7]), "size must be a non-negative int"),
        (
            "far_stride.pth",
            View { key: "model.1.weight", storage: vec![0.0; 4], offset: 0, shape: vec![2, 2], stride: vec![i64::MAX / 2, 1] },
            "reads past the end of storage",
        ),
    ];
    for (name, view, expected) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, pth(&[view])).unwrap();
        assert!(std::fs::metadata(&path).unwrap().len() < 4096, "{name}: the crafted file is small");
        refused(&path, expected);
    }
}

/// Every tensor of the committed test generator (resnet_9blocks, ngf 8).
fn generator_views() -> Vec<View> {
    let (tensors, _) = checkpoint::read(&fixture("g_resnet9.pth"), None).unwrap();
    tensors
        .iter()
        .map(|(k, d)| {
            let key: &'static str = Box::leak(k.clone().into_boxed_str());
            View::dense(key, floats(d), d.shape().as_ref())
        })
        .collect()
}

#[test]
fn issue_8_a_legal_stride_0_tensor_loads() {
    let dir = tmp();
    let mut views = generator_views();
    let bias = views.iter_mut().find(|v| v.key == "model.10.conv_block.1.bias").unwrap();
    *bias = View::expanded(bias.key, 0.25, &bias.shape.clone());
    let path = dir.path().join("g_expanded_bias.pth");
    std::fs::write(&path, pth(&views)).unwrap();
    let (tensors, _) = checkpoint::read(&path, None).unwrap();
    let bias = floats(tensors.get("model.10.conv_block.1.bias").unwrap());
    assert_eq!(bias, vec![0.25; 32], "ngf 8: the residual blocks have 32 channels");
    let out = dir.path().join("g.safetensors");
    let (code, err) = run_limited(&["import", path.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn issue_8_generators_for_2_and_5_channels_are_refused() {
    let dir = tmp();
    // a .pth whose stem takes 2 channels and whose head gives 5 (sizes inferred from the keys)
    for (channels, which) in [(2usize, "input_nc is 2"), (5, "output_nc is 5")] {
        let mut views = generator_views();
        for v in views.iter_mut() {
            let resized = match (v.key, channels) {
                ("model.1.weight", 2) => [8, 2, 7, 7],
                ("model.26.weight", 5) => [5, 8, 7, 7],
                _ => continue,
            };
            *v = View::dense(v.key, vec![0.01; resized.iter().product()], &resized);
        }
        if channels == 5 {
            let head_bias = views.iter_mut().find(|v| v.key == "model.26.bias").unwrap();
            *head_bias = View::dense(head_bias.key, vec![0.0; 5], &[5]);
        }
        let path = dir.path().join(format!("g_{channels}ch.pth"));
        std::fs::write(&path, pth(&views)).unwrap();
        refused(&path, which);
    }

    // the same through self-description: a safetensors file whose metadata says 2 channels
    let good = dir.path().join("good.safetensors");
    let (code, err) = run_limited(&["import", fixture("g_resnet9.pth").to_str().unwrap(), "-o", good.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    let (tensors, mut meta) = checkpoint::read_safetensors(&good).unwrap();
    meta.insert("input_nc".into(), "2".into());
    let crafted = dir.path().join("meta_2ch.safetensors");
    checkpoint::save_dict(&crafted, &tensors, meta.clone()).unwrap();
    refused(&crafted, "input_nc is 2");
    meta.insert("input_nc".into(), "3".into());
    meta.insert("ngf".into(), "100000".into());
    let crafted = dir.path().join("meta_wide.safetensors");
    checkpoint::save_dict(&crafted, &tensors, meta).unwrap();
    refused(&crafted, "ngf is 100000");

    // and through import's own overrides
    let out = dir.path().join("o.safetensors");
    let (code, err) = run_limited(&[
        "import", fixture("g_resnet9.pth").to_str().unwrap(), "--arch", "resnet_9blocks", "--ngf", "8", "--input-nc", "2",
        "-o", out.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("input_nc is 2") && err.trim().lines().count() == 1, "{err}");
    assert!(!out.exists());
    let (code, err) = run_limited(&["import", fixture("g_resnet9.pth").to_str().unwrap(), "--ngf", "8", "-o", out.to_str().unwrap()]);
    assert_eq!(code, Some(2), "--ngf without --arch is a usage error: {err}");
}

/// CUT's netF describes itself by metadata alone: a crafted description
/// (thousands of layers, absurd widths) is refused before anything is built.
#[test]
fn crafted_netf_descriptions_are_refused() {
    let dir = tmp();
    let meta = |channels: &str, nc: &str| {
        std::collections::HashMap::from([
            ("cyclegan".to_string(), "1".to_string()),
            ("net".to_string(), "patch_sampler".to_string()),
            ("netF".to_string(), "mlp_sample".to_string()),
            ("nc".to_string(), nc.to_string()),
            ("channels".to_string(), channels.to_string()),
        ])
    };
    let many = vec!["256"; 100_000].join(",");
    for (i, (channels, nc, expected)) in [
        (many.as_str(), "256", "the number of NCE layers is 100000"),
        ("3,128,256", "1000000", "netF_nc is 1000000"),
        ("3,128,9999999", "256", "a layer's channels is 9999999"),
        ("3,x", "256", "metadata 'channels' is not a list of numbers"),
    ]
    .into_iter()
    .enumerate()
    {
        let path = dir.path().join(format!("f{i}.safetensors"));
        checkpoint::save_dict(&path, &checkpoint::StateDict::default(), meta(channels, nc)).unwrap();
        refused(&path, expected);
    }
}

/// `pickle` as the `data.pkl` of a `torch.save` zip file with no storages.
fn zip_pth(pickle: &[u8]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let stored = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("archive/data.pkl", stored).unwrap();
    zip.write_all(pickle).unwrap();
    zip.finish().unwrap().into_inner()
}

/// `pickle` as the object of a legacy (PyTorch < 1.6) `torch.save` stream:
/// magic number, protocol version 1001, little-endian system info, then it.
fn legacy_pth(pickle: &[u8]) -> Vec<u8> {
    let mut b = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.".to_vec();
    b.extend(b"\x80\x02M\xe9\x03.");
    b.extend(b"\x80\x02}(X\x0d\x00\x00\x00little_endian\x88u.");
    b.extend(pickle);
    b
}

/// Issue 20: pickles that run no code but ask for exponential memory (a memo
/// entry doubled 48 times, 580 bytes) or overflow the stack (millions of
/// nested tuples, or of nested MARK/LIST), zip and legacy alike.
#[test]
fn issue_20_pickles_that_explode_or_nest_deeply_are_refused() {
    let dir = tmp();
    let mut doubling = b"\x80\x02Nq\x00".to_vec();
    for _ in 0..48 {
        doubling.extend(b"h\x00h\x00\x86q\x000");
    }
    doubling.extend(b"h\x00.");
    let mut tuples = b"\x80\x02N".to_vec();
    tuples.extend(std::iter::repeat_n(0x85u8, 5_000_000));
    tuples.push(b'.');
    let mut lists = b"\x80\x02".to_vec();
    lists.extend(std::iter::repeat_n(b'(', 2_000_000));
    lists.extend(std::iter::repeat_n(b'l', 2_000_000));
    lists.push(b'.');
    // a list shared with the memo, appended to and stored again 200,000 times (800 kB):
    // each append copies it, 600 GB in all
    let mut shared = b"\x80\x04]".to_vec();
    for _ in 0..200_000 {
        shared.extend([b'K', 1, b'a', 0x94]);
    }
    shared.push(b'.');
    for (name, pickle, expected) in [
        ("shared", &shared, "builds more than 4194304 container items"),
        ("doubling", &doubling, "more than 16777216 items"),
        ("tuples", &tuples, "nest more than 64 deep"),
        ("lists", &lists, "values on the stack"),
    ] {
        for (kind, bytes) in [("zip", zip_pth(pickle)), ("legacy", legacy_pth(pickle))] {
            let path = dir.path().join(format!("{name}_{kind}.pth"));
            std::fs::write(&path, bytes).unwrap();
            let started = std::time::Instant::now();
            refused(&path, expected);
            assert!(started.elapsed().as_secs() < 20, "{name} {kind}: took {:?}", started.elapsed());
        }
    }
}
