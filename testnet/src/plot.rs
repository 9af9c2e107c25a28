//! The load generator's sweep plot: a PNG with finalized throughput against offered load (the
//! offered load drawn as the diagonal it would follow if the chain kept up), and
//! submit→finalized p50 and p99 against offered load (log scale).
//!
//! Text needs a font, read at run time from [`FONT_ROOT`] (DejaVu Sans, from Debian's
//! `fonts-dejavu-core`, or else the first TrueType font found there). With none, the plot is
//! drawn without any text (no titles, axis values or legend) rather than not at all, and
//! [`plot_sweep`] says so.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context, anyhow};
use plotters::prelude::*;

/// Where fonts are looked for.
pub const FONT_ROOT: &str = "/usr/share/fonts";
/// The fonts preferred, in order, below [`FONT_ROOT`].
const FONT_PREFERRED: &[&str] = &["truetype/dejavu/DejaVuSans.ttf", "TTF/DejaVuSans.ttf", "dejavu/DejaVuSans.ttf"];
/// Folders below [`FONT_ROOT`] looked into for any TrueType font, at most this deep…
const FONT_SEARCH_DEPTH_MAX: usize = 4;
/// …and at most this many entries read.
const FONT_SEARCH_ENTRIES_MAX: usize = 10_000;
/// The largest font file read.
const FONT_FILE_BYTES_MAX: u64 = 32 << 20;
/// The picture's size in pixels.
const SIZE_PX: (u32, u32) = (1280, 560);

/// One point of a sweep.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SweepPoint {
    /// The offered load: offers per second asked for.
    pub offered_per_s: f64,
    /// Jobs finalized per second.
    pub finalized_per_s: f64,
    /// Submit→finalized median, milliseconds.
    pub finalized_p50_ms: f64,
    /// Submit→finalized 99th percentile, milliseconds.
    pub finalized_p99_ms: f64,
}

/// Whether the plot has its text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Text {
    /// Titles, axes and legend drawn.
    Drawn,
    /// No font found: drawn without text.
    NoFont,
}

/// Draws `points` into a PNG at `path`.
pub fn plot_sweep(points: &[SweepPoint], path: &Path) -> anyhow::Result<Text> {
    let text = if font_registered() { Text::Drawn } else { Text::NoFont };
    draw(points, path, text)?;
    Ok(text)
}

/// Registers a font as `sans-serif` once per process; whether one is.
fn font_registered() -> bool {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    *REGISTERED.get_or_init(|| {
        let Some(path) = find_font(Path::new(FONT_ROOT)) else { return false };
        let Ok(bytes) = std::fs::read(&path) else { return false };
        // plotters keeps fonts for the whole process: the bytes are leaked once.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok()
    })
}

/// DejaVu Sans if it is there, else the first `.ttf` found (bounded search), below `root`.
fn find_font(root: &Path) -> Option<PathBuf> {
    let usable = |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.len() <= FONT_FILE_BYTES_MAX);
    if let Some(p) = FONT_PREFERRED.iter().map(|rel| root.join(rel)).find(|p| usable(p)) {
        return Some(p);
    }
    let mut folders = vec![(root.to_path_buf(), 0)];
    let mut seen = 0;
    while let Some((folder, depth)) = folders.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else { continue };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for p in paths {
            seen += 1;
            if seen > FONT_SEARCH_ENTRIES_MAX {
                return None;
            }
            if p.is_dir() {
                if depth < FONT_SEARCH_DEPTH_MAX {
                    folders.push((p, depth + 1));
                }
            } else if p.extension().is_some_and(|x| x.eq_ignore_ascii_case("ttf")) && usable(&p) {
                return Some(p);
            }
        }
    }
    None
}

fn whole(v: &f64) -> String {
    format!("{v:.0}")
}

fn plot_error(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("cannot draw the plot: {e}")
}

/// The axis range `0..` a little above the largest value.
fn upper(values: impl Iterator<Item = f64>) -> f64 {
    let max = values.filter(|v| v.is_finite()).fold(0.0, f64::max);
    if max > 0.0 { max * 1.1 } else { 1.0 }
}

/// The log-scale range around the positive values (a decade around 1 ms with none).
fn log_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let positive: Vec<f64> = values.filter(|v| v.is_finite() && *v > 0.0).collect();
    let lo = positive.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = positive.iter().copied().fold(0.0, f64::max);
    if positive.is_empty() { (0.1, 10.0) } else { (lo / 1.5, (hi * 1.5).max(lo * 10.0)) }
}

/// The axes' lines, drawn in the chart's coordinates when there is no label area to hold
/// them.
fn axes(x_max: f64, y_min: f64, y_max: f64) -> LineSeries<BitMapBackend<'static>, (f64, f64)> {
    LineSeries::new([(0.0, y_max), (0.0, y_min), (x_max, y_min)], BLACK.stroke_width(1))
}

fn draw(points: &[SweepPoint], path: &Path, text: Text) -> anyhow::Result<()> {
    anyhow::ensure!(!points.is_empty(), "no point to plot");
    let mut points = points.to_vec();
    points.sort_by(|a, b| a.offered_per_s.total_cmp(&b.offered_per_s));
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let text = text == Text::Drawn;
    let root = BitMapBackend::new(path, SIZE_PX).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let (left, right) = root.split_horizontally(SIZE_PX.0 / 2);
    let x_max = upper(points.iter().map(|p| p.offered_per_s));
    // Without text there are no label areas: plotters would lay out the axis values there.
    let (x_label_area, y_label_area) = if text { (50, 60) } else { (0, 0) };

    // Throughput: finalized against offered, with the diagonal of a chain that keeps up.
    let y_max = upper(points.iter().flat_map(|p| [p.offered_per_s, p.finalized_per_s]));
    let mut builder = ChartBuilder::on(&left);
    builder.margin(20).x_label_area_size(x_label_area).y_label_area_size(y_label_area);
    if text {
        builder.caption("finalized throughput", ("sans-serif", 22));
    }
    let mut chart = builder.build_cartesian_2d(0.0..x_max, 0.0..y_max).map_err(plot_error)?;
    let mut mesh = chart.configure_mesh();
    if text {
        mesh.x_desc("offered (jobs/s)")
            .y_desc("finalized (jobs/s)")
            .x_label_formatter(&whole)
            .y_label_formatter(&whole);
    }
    mesh.draw().map_err(plot_error)?;
    if !text {
        chart.draw_series(axes(x_max, 0.0, y_max)).map_err(plot_error)?;
    }
    let diagonal = x_max.min(y_max);
    let offered = chart
        .draw_series(LineSeries::new([(0.0, 0.0), (diagonal, diagonal)], BLACK.mix(0.3).stroke_width(1)))
        .map_err(plot_error)?;
    if text {
        offered.label("offered").legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK.mix(0.3)));
    }
    let line: Vec<(f64, f64)> = points.iter().map(|p| (p.offered_per_s, p.finalized_per_s)).collect();
    let finalized = chart.draw_series(LineSeries::new(line.clone(), BLUE.stroke_width(2))).map_err(plot_error)?;
    if text {
        finalized.label("finalized").legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLUE.stroke_width(2)));
    }
    chart.draw_series(line.iter().map(|&(x, y)| Circle::new((x, y), 4, BLUE.filled()))).map_err(plot_error)?;
    if text {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(plot_error)?;
    }

    // Latency: submit→finalized p50 and p99, log scale.
    let (lo, hi) = log_range(points.iter().flat_map(|p| [p.finalized_p50_ms, p.finalized_p99_ms]));
    let mut builder = ChartBuilder::on(&right);
    builder.margin(20).x_label_area_size(x_label_area).y_label_area_size(y_label_area);
    if text {
        builder.caption("submit→finalized latency", ("sans-serif", 22));
    }
    let mut chart = builder.build_cartesian_2d(0.0..x_max, (lo..hi).log_scale()).map_err(plot_error)?;
    let mut mesh = chart.configure_mesh();
    if text {
        mesh.x_desc("offered (jobs/s)").y_desc("ms (log scale)").x_label_formatter(&whole).y_label_formatter(&whole);
    }
    mesh.draw().map_err(plot_error)?;
    if !text {
        chart.draw_series(axes(x_max, lo, hi)).map_err(plot_error)?;
    }
    for (name, color, pick) in [
        ("p50", GREEN, (|p: &SweepPoint| p.finalized_p50_ms) as fn(&SweepPoint) -> f64),
        ("p99", RED, |p: &SweepPoint| p.finalized_p99_ms),
    ] {
        // A point with no finalized job has no latency: left out.
        let line: Vec<(f64, f64)> =
            points.iter().filter(|p| pick(p) > 0.0).map(|p| (p.offered_per_s, pick(p))).collect();
        let series = chart.draw_series(LineSeries::new(line.clone(), color.stroke_width(2))).map_err(plot_error)?;
        if text {
            series.label(name).legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
        }
        chart.draw_series(line.iter().map(|&(x, y)| Circle::new((x, y), 4, color.filled()))).map_err(plot_error)?;
    }
    if text {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(plot_error)?;
    }
    root.present().map_err(plot_error)?;
    Ok(())
}

/// One sample of a long run: jobs finalized so far, and each node's resident memory and data
/// folder then.
#[derive(Clone, Debug, PartialEq)]
pub struct TimelinePoint {
    /// Jobs finalized so far.
    pub jobs: f64,
    /// Each node's resident memory, MiB.
    pub rss_mib: Vec<f64>,
    /// Each node's data folder, MB.
    pub disk_mb: Vec<f64>,
}

/// The line colours of the nodes, in turn.
const NODE_COLORS: [RGBColor; 6] = [BLUE, RED, GREEN, MAGENTA, CYAN, RGBColor(255, 140, 0)];

/// Draws a long run's memory and disk per node against jobs finalized into a PNG at `path`.
pub fn plot_timeline(points: &[TimelinePoint], path: &Path) -> anyhow::Result<Text> {
    anyhow::ensure!(!points.is_empty(), "no sample to plot");
    let text = if font_registered() { Text::Drawn } else { Text::NoFont };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let drawn = text == Text::Drawn;
    let root = BitMapBackend::new(path, SIZE_PX).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let (left, right) = root.split_horizontally(SIZE_PX.0 / 2);
    let x_max = upper(points.iter().map(|p| p.jobs));
    let (x_label_area, y_label_area) = if drawn { (50, 60) } else { (0, 0) };
    let nodes = points.iter().map(|p| p.rss_mib.len()).max().unwrap_or(0);
    for (area, title, unit, pick) in [
        (&left, "resident memory per node", "MiB", (|p: &TimelinePoint| &p.rss_mib) as fn(&TimelinePoint) -> &Vec<f64>),
        (&right, "data folder per node", "MB", |p: &TimelinePoint| &p.disk_mb),
    ] {
        let y_max = upper(points.iter().flat_map(|p| pick(p).iter().copied()));
        let mut builder = ChartBuilder::on(area);
        builder.margin(20).x_label_area_size(x_label_area).y_label_area_size(y_label_area);
        if drawn {
            builder.caption(title, ("sans-serif", 22));
        }
        let mut chart = builder.build_cartesian_2d(0.0..x_max, 0.0..y_max).map_err(plot_error)?;
        let mut mesh = chart.configure_mesh();
        if drawn {
            mesh.x_desc("jobs finalized").y_desc(unit).x_label_formatter(&whole).y_label_formatter(&whole);
        }
        mesh.draw().map_err(plot_error)?;
        if !drawn {
            chart.draw_series(axes(x_max, 0.0, y_max)).map_err(plot_error)?;
        }
        for node in 0..nodes {
            let color = NODE_COLORS[node % NODE_COLORS.len()];
            let line: Vec<(f64, f64)> = points.iter().filter_map(|p| pick(p).get(node).map(|v| (p.jobs, *v))).collect();
            let series = chart.draw_series(LineSeries::new(line, color.stroke_width(2))).map_err(plot_error)?;
            if drawn {
                series
                    .label(format!("node {node}"))
                    .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
            }
        }
        if drawn {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerRight)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(plot_error)?;
        }
    }
    root.present().map_err(plot_error)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeline_is_drawn_into_a_png() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("timeline.png");
        let points: Vec<TimelinePoint> = (0..20)
            .map(|i| TimelinePoint {
                jobs: f64::from(i) * 1000.0,
                rss_mib: vec![40.0 + f64::from(i), 60.0],
                disk_mb: vec![f64::from(i) * 2.0, f64::from(i) * 3.0],
            })
            .collect();
        plot_timeline(&points, &path).expect("drawn");
        let bytes = std::fs::read(&path).expect("written");
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        assert!(plot_timeline(&[], &path).is_err());
    }

    fn sweep() -> Vec<SweepPoint> {
        [(250.0, 250.0, 180.0, 300.0), (500.0, 498.0, 200.0, 450.0), (1000.0, 700.0, 2_500.0, 9_000.0)]
            .into_iter()
            .map(|(o, f, p50, p99)| SweepPoint {
                offered_per_s: o,
                finalized_per_s: f,
                finalized_p50_ms: p50,
                finalized_p99_ms: p99,
            })
            .collect()
    }

    fn is_png(path: &Path) -> bool {
        std::fs::read(path).is_ok_and(|b| b.starts_with(b"\x89PNG\r\n\x1a\n") && b.len() > 1_000)
    }

    #[test]
    fn a_sweep_is_drawn_with_text_when_a_font_is_installed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("plots").join("sweep.png");
        let text = plot_sweep(&sweep(), &path).expect("drawn");
        assert!(is_png(&path));
        assert_eq!(text == Text::Drawn, find_font(Path::new(FONT_ROOT)).is_some());
    }

    #[test]
    fn without_a_font_the_plot_is_drawn_without_text() {
        // Nothing registers a font in this path: any text drawn would fail here.
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sweep.png");
        draw(&sweep(), &path, Text::NoFont).expect("drawn without text");
        assert!(is_png(&path));
    }

    #[test]
    fn degenerate_sweeps_still_draw() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("one.png");
        let nothing_finalized =
            SweepPoint { offered_per_s: 20.0, finalized_per_s: 0.0, finalized_p50_ms: 0.0, finalized_p99_ms: 0.0 };
        draw(&[nothing_finalized], &path, Text::NoFont).expect("a single point with no latency");
        assert!(is_png(&path));
        assert!(draw(&[], &path, Text::NoFont).is_err());
    }

    #[test]
    fn fonts_are_found_by_preference_then_by_search() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(find_font(dir.path()), None);
        let other = dir.path().join("truetype").join("other").join("Other.ttf");
        std::fs::create_dir_all(other.parent().expect("parent")).expect("mkdir");
        std::fs::write(&other, b"font").expect("write");
        assert_eq!(find_font(dir.path()), Some(other));
        let dejavu = dir.path().join("truetype/dejavu/DejaVuSans.ttf");
        std::fs::create_dir_all(dejavu.parent().expect("parent")).expect("mkdir");
        std::fs::write(&dejavu, b"font").expect("write");
        assert_eq!(find_font(dir.path()), Some(dejavu));
    }

    #[test]
    fn axis_ranges_cover_the_values() {
        assert_eq!(upper([].into_iter()), 1.0);
        assert!((upper([2.0, 10.0].into_iter()) - 11.0).abs() < 1e-9);
        assert_eq!(log_range([0.0].into_iter()), (0.1, 10.0));
        let (lo, hi) = log_range([150.0, 3_000.0].into_iter());
        assert!(lo < 150.0 && hi > 3_000.0);
    }
}
