//! What a person watching training sees besides the terminal: sample grids
//! (`samples/`) and `report.html`, a self-contained page (inline SVG loss
//! curves, relative links to the samples) that reloads itself while the run
//! goes on and reads fine offline.

use std::fmt::Write as _;

use image::{DynamicImage, RgbImage};

use super::run_dir::{LossRecord, MetricRecord, RunDir};
use super::method::Method;
use super::step::Visuals;
use crate::error::Result;
use crate::fs;
use crate::image_io::{self, ImageData};

const GAP: u32 = 2;

/// The step's panels (first image of the batch) as a grid: for CycleGAN the
/// A side and the B side (real, translated, reconstructed, identity), for
/// CUT one row (real A, translated, real B, identity).
pub fn sample_grid(v: &Visuals) -> DynamicImage {
    let panels: Vec<Vec<Option<RgbImage>>> = v
        .rows
        .iter()
        .map(|row| row.iter().map(|t| t.as_ref().map(|t| ImageData::from_tensor(t.clone()).to_image().to_rgb8())).collect())
        .collect();
    let cols = panels.iter().map(Vec::len).max().unwrap_or(1) as u32;
    let rows = panels.len() as u32;
    let cell_w = panels.iter().flatten().flatten().map(|p| p.width()).max().unwrap_or(1);
    let cell_h = panels.iter().flatten().flatten().map(|p| p.height()).max().unwrap_or(1);
    let mut grid = RgbImage::from_pixel(cols * cell_w + (cols + 1) * GAP, rows * cell_h + (rows + 1) * GAP, image::Rgb([255, 255, 255]));
    for (r, row) in panels.iter().enumerate() {
        for (c, panel) in row.iter().enumerate() {
            if let Some(p) = panel {
                let x = GAP + c as u32 * (cell_w + GAP);
                let y = GAP + r as u32 * (cell_h + GAP);
                image::imageops::overlay(&mut grid, p, x as i64, y as i64);
            }
        }
    }
    DynamicImage::ImageRgb8(grid)
}

/// Save a grid as `samples/iter_NNNNNNN.png` and as `samples/latest.png`.
pub fn save_samples(run: &RunDir, iteration: u64, v: &Visuals) -> Result<()> {
    let grid = sample_grid(v);
    let data = image_io::to_data(&grid, 3);
    image_io::save(&run.samples_dir().join(format!("iter_{iteration:07}.png")), &data)?;
    image_io::save(&run.samples_dir().join("latest.png"), &data)
}

/// One small chart: a polyline of `(x, y)` points, its y range in a gutter on
/// the left and its x range below, so the labels never cover the curve.
fn chart(title: &str, points: &[(f64, f64)]) -> String {
    let (w, h) = (340.0, 130.0);
    // The plot area inside the svg: left gutter for y labels, bottom for x labels.
    let (left, right, top, bottom) = (52.0, w - 6.0, 6.0, h - 20.0);
    let mut svg = format!(r#"<figure><figcaption>{title}</figcaption><svg viewBox="0 0 {w} {h}" width="{w}" height="{h}">"#);
    if let (Some(first), Some(last)) = (points.first(), points.last()) {
        let (x0, x1) = (first.0, last.0.max(first.0 + 1.0));
        let ys = points.iter().map(|p| p.1).filter(|y| y.is_finite());
        let (y0, y1) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), y| (lo.min(y), hi.max(y)));
        // A flat curve (a constant learning rate) sits mid-height.
        let half = if y0 != 0.0 { y0.abs() * 0.5 } else { 1.0 };
        let (y0, y1) = if y1 > y0 { (y0, y1) } else { (y0 - half, y0 + half) };
        let sx = |x: f64| left + (x - x0) / (x1 - x0) * (right - left);
        let sy = |y: f64| bottom - (y - y0) / (y1 - y0) * (bottom - top);
        let mut line = String::new();
        for (x, y) in points.iter().filter(|p| p.1.is_finite()) {
            let _ = write!(line, "{:.1},{:.1} ", sx(*x), sy(*y));
        }
        let label_x = left - 4.0;
        let label_y = h - 5.0;
        let _ = write!(
            svg,
            r##"<rect x="{left}" y="{top}" width="{}" height="{}" fill="#fafafa" stroke="#ccc"/><polyline fill="none" stroke="#1f6feb" stroke-width="1.2" points="{line}"/><g font-size="11"><text x="{label_x}" y="{}" text-anchor="end">{}</text><text x="{label_x}" y="{bottom}" text-anchor="end">{}</text><text x="{left}" y="{label_y}">iter {x0}</text><text x="{right}" y="{label_y}" text-anchor="end">iter {x1}</text></g>"##,
            right - left,
            bottom - top,
            top + 10.0,
            axis_label(y1),
            axis_label(y0),
        );
    }
    svg.push_str("</svg></figure>");
    svg
}

/// Four decimals for losses; learning rates (1e-4 and below) in scientific notation.
fn axis_label(v: f64) -> String {
    if v != 0.0 && v.abs() < 0.01 { format!("{v:.2e}") } else { format!("{v:.4}") }
}

/// A moving average, so that curves of noisy GAN losses show their trend.
fn smooth(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let k = (points.len() / 50).max(1);
    points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let window = &points[i.saturating_sub(k - 1)..=i];
            (p.0, window.iter().map(|q| q.1).sum::<f64>() / window.len() as f64)
        })
        .collect()
}

/// Write `report.html` from the losses so far, the options and the samples.
pub fn write_report(run: &RunDir, method: Method, options: &[(String, String)], changed: &[String], status: &str) -> Result<()> {
    let records: Vec<LossRecord> = run.read_losses()?;
    let mut html = String::from(
        r#"<!doctype html><html><head><meta charset="utf-8"><meta http-equiv="refresh" content="30"><title>Training</title>
<style>body{font-family:sans-serif;margin:1.5em;color:#222}figure{display:inline-block;margin:.3em}figcaption{font-size:13px}
table{border-collapse:collapse;font-size:13px}td{padding:1px 8px;border-bottom:1px solid #eee}.changed{font-weight:bold}
img{image-rendering:pixelated;max-width:100%}</style></head><body>"#,
    );
    let title = match method {
        Method::CycleGan => "CycleGAN",
        Method::Cut => "CUT",
        Method::Fastcut => "FastCUT",
    };
    let _ = write!(html, "<h1>{title} training</h1><p>{status}</p>");
    if let Some(last) = records.last() {
        let _ = write!(html, "<p>epoch {} &middot; iteration {} &middot; learning rate {:.3e}</p>", last.epoch, last.iter, last.lr);
    }
    html.push_str("<h2>Losses</h2><p>Moving averages over the logged iterations.</p>");
    let names: Vec<String> = records.first().map(|r| r.losses.names().map(str::to_string).collect()).unwrap_or_default();
    for name in &names {
        let points: Vec<(f64, f64)> = records.iter().map(|r| (r.iter as f64, r.losses.get(name).unwrap_or(f64::NAN))).collect();
        html.push_str(&chart(name, &smooth(&points)));
    }
    let lr: Vec<(f64, f64)> = records.iter().map(|r| (r.iter as f64, r.lr)).collect();
    html.push_str(&chart("learning rate", &lr));
    let metrics = run.read_metrics()?;
    if !metrics.is_empty() {
        html.push_str("<h2>Evaluation</h2><p>FID and KID on the held-out folders (--eval-a, --eval-b): a2b is G_A's translations of A against B.</p>");
        type Series = (&'static str, fn(&MetricRecord) -> Option<f64>);
        let series: [Series; 5] = [
            ("FID a2b", |m| Some(m.fid_a2b)),
            ("FID b2a", |m| m.fid_b2a),
            ("FID mean", |m| Some(m.fid_mean)),
            ("KID a2b", |m| Some(m.kid_a2b)),
            ("KID b2a", |m| m.kid_b2a),
        ];
        for (name, value) in series {
            let points: Vec<(f64, f64)> = metrics.iter().filter_map(|m| Some((m.iter as f64, value(m)?))).collect();
            if !points.is_empty() {
                html.push_str(&chart(name, &points));
            }
        }
    }
    let legend = match method {
        Method::CycleGan => "Rows: real A, G_A(A), G_B(G_A(A)), G_B(A) &middot; real B, G_B(B), G_A(G_B(B)), G_A(B).",
        Method::Cut | Method::Fastcut => "Row: real A, G(A), real B, G(B) (the identity, with --nce-idt; inputs flipped by --flip-equivariance stay flipped).",
    };
    let _ = write!(html, "<h2>Samples</h2><p>{legend}</p>");
    let mut samples: Vec<String> = std::fs::read_dir(run.samples_dir())
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    samples.retain(|n| n.starts_with("iter_") && n.ends_with(".png"));
    samples.sort();
    for name in samples.iter().rev().take(6) {
        let iter = name.trim_start_matches("iter_").trim_end_matches(".png").trim_start_matches('0');
        let _ = write!(html, r#"<figure><figcaption>iteration {iter}</figcaption><img src="samples/{name}" width="512"></figure>"#);
    }
    html.push_str("<h2>Options</h2><table>");
    for (k, v) in options {
        let class = if changed.contains(k) { " class=\"changed\"" } else { "" };
        let _ = write!(html, "<tr{class}><td>{k}</td><td>{}</td></tr>", escape(v));
    }
    html.push_str("</table><p>Bold: changed from the default.</p></body></html>\n");
    fs::write_bytes_atomic(&run.report_path(), html.as_bytes())
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The report's path, for messages.
pub fn report_location(run: &RunDir) -> String {
    let p = run.report_path();
    std::fs::canonicalize(&p).unwrap_or(p).display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_keeps_labels_outside_the_plot() {
        let svg = chart("G_A", &[(1.0, 0.5), (2.0, 0.25), (3.0, 1.0)]);
        let line = svg.split("points=\"").nth(1).unwrap().split('"').next().unwrap();
        let xs: Vec<f64> = line.split_whitespace().map(|p| p.split(',').next().unwrap().parse().unwrap()).collect();
        assert_eq!(xs.len(), 3);
        // The y labels end left of the curve; the x labels sit below it.
        assert!(svg.contains(r#"<text x="48" y="16" text-anchor="end">1.0000</text>"#), "{svg}");
        assert!(svg.contains(r#"text-anchor="end">0.2500</text>"#), "{svg}");
        assert!(xs.iter().all(|&x| x >= 52.0), "{line}");
        assert!(svg.contains(">iter 1</text>") && svg.contains(">iter 3</text>"));
    }

    #[test]
    fn flat_learning_rate_gets_a_readable_range() {
        let svg = chart("learning rate", &[(1.0, 2e-4), (9.0, 2e-4)]);
        assert!(svg.contains(">3.00e-4</text>") && svg.contains(">1.00e-4</text>"), "{svg}");
        assert!(svg.contains("points=\"52.0,58.0 334.0,58.0 \""), "{svg}");
    }
}
