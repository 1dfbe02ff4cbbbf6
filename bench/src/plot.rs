//! The comparison's PNG: achieved exchanges/s and p50/p99 latency against offered load, one
//! line per server, log-log.

use std::path::Path;

use anyhow::{Context as _, anyhow};
use plotters::prelude::*;
use serde_json::Value;

const FONT_PATHS: [&str; 2] =
    ["/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/dejavu/DejaVuSans.ttf"];
const COLORS: [RGBColor; 6] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(230, 159, 0),
];

fn register_font() -> anyhow::Result<()> {
    let bytes = FONT_PATHS
        .iter()
        .find_map(|p| std::fs::read(p).ok())
        .ok_or_else(|| anyhow!("no DejaVuSans.ttf (package fonts-dejavu-core) for the plot's labels"))?;
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).map_err(|_| anyhow!("font not usable"))?;
    Ok(())
}

/// (server name, [(offered, achieved, p50 µs, p99 µs)]) from the report.
type Series = Vec<(String, Vec<(f64, f64, f64, f64)>)>;

fn series(report: &Value) -> Series {
    let mut out = vec![];
    for s in report["servers"].as_array().into_iter().flatten() {
        let pts: Vec<_> = s["sweep"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                let r = &p["result"];
                let f = |v: &Value| v.as_f64().unwrap_or(0.0).max(1.0);
                (f(&p["offered"]), f(&r["exchanges_per_s"]), f(&r["latency_us"]["p50"]), f(&r["latency_us"]["p99"]))
            })
            .collect();
        if !pts.is_empty() {
            out.push((s["name"].as_str().unwrap_or("?").to_owned(), pts));
        }
    }
    out
}

/// Draws the two charts into `path`.
pub fn draw(report: &Value, path: &Path) -> anyhow::Result<()> {
    register_font()?;
    let data = series(report);
    if data.is_empty() {
        return Err(anyhow!("no sweep points to plot"));
    }
    let all = data.iter().flat_map(|(_, p)| p.iter());
    let (mut xmax, mut ymax, mut lmin, mut lmax) = (1.0f64, 1.0f64, f64::MAX, 1.0f64);
    for &(o, a, p50, p99) in all {
        xmax = xmax.max(o);
        ymax = ymax.max(a);
        lmin = lmin.min(p50);
        lmax = lmax.max(p99);
    }
    let xmin = data.iter().flat_map(|(_, p)| p.iter().map(|q| q.0)).fold(f64::MAX, f64::min);
    let x = (xmin * 0.8)..(xmax * 1.25);
    let root = BitMapBackend::new(path, (1400, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let title = format!(
        "{} — {} ({})",
        report["scenario"].as_str().unwrap_or(""),
        report["machine"].as_str().unwrap_or(""),
        report["date"].as_str().unwrap_or("")
    );
    let root = root.titled(&title, ("sans-serif", 20))?;
    let (left, right) = root.split_horizontally(700);

    let mut c = ChartBuilder::on(&left)
        .caption("achieved vs offered exchanges/s", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(x.clone().log_scale(), (xmin * 0.5..ymax * 1.5).log_scale())?;
    c.configure_mesh().x_desc("offered exchanges/s").y_desc("completed exchanges/s").draw()?;
    for (i, (name, pts)) in data.iter().enumerate() {
        let col = COLORS[i % COLORS.len()];
        c.draw_series(LineSeries::new(pts.iter().map(|p| (p.0, p.1)), col.stroke_width(2)))?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], col.stroke_width(2)));
        c.draw_series(pts.iter().map(|p| Circle::new((p.0, p.1), 3, col.filled())))?;
    }
    c.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;

    let mut c = ChartBuilder::on(&right)
        .caption("latency p50 (dashed) and p99 vs offered load", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(x.log_scale(), (lmin.max(1.0) * 0.5..lmax * 2.0).log_scale())?;
    c.configure_mesh().x_desc("offered exchanges/s").y_desc("µs").draw()?;
    for (i, (name, pts)) in data.iter().enumerate() {
        let col = COLORS[i % COLORS.len()];
        c.draw_series(LineSeries::new(pts.iter().map(|p| (p.0, p.3)), col.stroke_width(2)))?
            .label(format!("{name} p99"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], col.stroke_width(2)));
        c.draw_series(DashedLineSeries::new(pts.iter().map(|p| (p.0, p.2)), 6, 4, col.stroke_width(1)))?;
    }
    c.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    root.present().context("writing the PNG")?;
    Ok(())
}
