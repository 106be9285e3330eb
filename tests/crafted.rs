//! Crafted checkpoints (issue 8): sizes that a small file claims but cannot
//! hold, shapes that overflow, networks no image fits. Each must give a
//! one-line error and a non-zero exit, never a panic or an abort, also with
//! the address space limited to 6 GB; and a legal stride-0 tensor must load.

use std::io::Write;
use std::path::Path;

use cyclegan::checkpoint;

use crate::util::{fixture, floats, tmp};

/// A tensor for [`pth`]: storage elements, then the view's offset, shape, stride.
struct View {
    key: &'static str,
    storage: Vec<f32>,
    offset: i64,
    shape: Vec<i64>,
    stride: Vec<i64>,
}

impl View {
    /// `value` seen as `shape` through stride 0 (what `torch.zeros(1).expand(...)` saves).
    fn expanded(key: &'static str, value: f32, shape: &[i64]) -> Self {
        Self { key, storage: vec![value], offset: 0, shape: shape.to_vec(), stride: vec![0; shape.len()] }
    }

    /// A contiguous tensor.
    fn dense(key: &'static str, storage: Vec<f32>, shape: &[usize]) -> Self {
        let mut stride = vec![1i64; shape.len()];
        for d in (0..shape.len().saturating_sub(1)).rev() {
            stride[d] = stride[d + 1] * shape[d + 1] as i64;
        }
        Self { key, storage, offset: 0, shape: shape.iter().map(|&s| s as i64).collect(), stride }
    }
}

/// A `torch.save` zip file (PyTorch >= 1.6 layout) holding `views`, pickled
/// as PyTorch pickles a state dict (protocol 2, `_rebuild_tensor_v2`).
fn pth(views: &[View]) -> Vec<u8> {
    fn int(v: i64) -> Vec<u8> {
        let mut b = vec![0x8a, 8]; // LONG1, 8 bytes
        b.extend(v.to_le_bytes());
        b
    }
    fn text(s: &str) -> Vec<u8> {
        let mut b = vec![b'X'];
        b.extend((s.len() as u32).to_le_bytes());
        b.extend(s.as_bytes());
        b
    }
    fn tuple(items: Vec<Vec<u8>>) -> Vec<u8> {
        let mut b = vec![b'('];
        items.into_iter().for_each(|i| b.extend(i));
        b.push(b't');
        b
    }
    let mut p = b"\x80\x02}(".to_vec();
    for (i, v) in views.iter().enumerate() {
        p.extend(text(v.key));
        p.extend(b"ctorch._utils\n_rebuild_tensor_v2\n");
        let mut storage = tuple(vec![
            text("storage"),
            b"ctorch\nFloatStorage\n".to_vec(),
            text(&i.to_string()),
            text("cpu"),
            int(v.storage.len() as i64),
        ]);
        storage.push(b'Q'); // BINPERSID
        p.extend(tuple(vec![
            storage,
            int(v.offset),
            tuple(v.shape.iter().map(|&s| int(s)).collect()),
            tuple(v.stride.iter().map(|&s| int(s)).collect()),
            vec![0x89], // False: requires_grad
            b"ccollections\nOrderedDict\n)R".to_vec(),
        ]));
        p.push(b'R');
    }
    p.extend(b"u.");
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let stored = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("archive/data.pkl", stored).unwrap();
    zip.write_all(&p).unwrap();
    for (i, v) in views.iter().enumerate() {
        zip.start_file(format!("archive/data/{i}"), stored).unwrap();
        zip.write_all(&v.storage.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

/// Run the binary with the address space limited to 6 GB; (exit code, stderr).
fn run_limited(args: &[&str]) -> (Option<i32>, String) {
    let out = std::process::Command::new("sh")
        .args(["-c", "ulimit -v 6291456 && exec \"$0\" \"$@\"", env!("CARGO_BIN_EXE_cyclegan")])
        .args(args)
        .output()
        .unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// `import` and `translate` of `model` both fail with one line naming it and saying `expected`.
fn refused(model: &Path, expected: &str) {
    let dir = model.parent().unwrap();
    let name = model.file_name().unwrap().to_str().unwrap();
    let out = dir.join(format!("{name}.out.safetensors"));
    let png = dir.join(format!("{name}.png"));
    let img = fixture("img_square.png");
    for args in [
        vec!["import", model.to_str().unwrap(), "-o", out.to_str().unwrap()],
        vec!["translate", "--model", model.to_str().unwrap(), img.to_str().unwrap(), "-o", png.to_str().unwrap()],
    ] {
        let (code, err) = run_limited(&args);
        assert_eq!(code, Some(1), "{} {name}: exit {code:?} (a panic is 101, an abort a signal): {err}", args[0]);
        assert_eq!(err.trim().lines().count(), 1, "{} {name}: not one line: {err}", args[0]);
        assert!(err.starts_with("error: ") && err.contains(name) && err.contains(expected), "{} {name}: {err}", args[0]);
    }
    assert!(!out.exists() && !png.exists(), "{name}: output written");
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
