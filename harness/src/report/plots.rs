//! The report's charts, drawn once per backend: SVG (inlined in REPORT.html, linked from
//! REPORT.md) and PNG (embedded in REPORT.md). Text is set in DejaVu Sans, embedded in the
//! binary (the `dejavu` crate) and registered with plotters' `ab_glyph` renderer, so drawing
//! needs no system fonts and no fontconfig.

use crate::record::BenchRow;
use anyhow::{anyhow, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Once;

pub const FONT: &str = "sans-serif";

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The embedded font is a valid TrueType file; if it were not, every text call would
        // fail loudly with plotters' font error, which is what the caller reports.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
    });
}

/// A chart the report draws, independent of the backend.
pub enum Chart<'a> {
    Speedup {
        title: String,
        rows: Vec<&'a BenchRow>,
        hosts: usize,
    },
    Roofline {
        title: String,
        rows: Vec<&'a BenchRow>,
    },
    E2eRates {
        title: String,
        rows: Vec<&'a crate::e2e::E2eRecord>,
    },
    E2eBreakdown {
        title: String,
        rows: Vec<&'a crate::e2e::E2eRecord>,
    },
}

impl Chart<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        match self {
            Chart::Speedup { title, rows, hosts } => speedup_chart(root, title, rows, *hosts),
            Chart::Roofline { title, rows } => roofline_chart(root, title, rows),
            Chart::E2eRates { title, rows } => super::e2e_plots::rates_chart(root, title, rows),
            Chart::E2eBreakdown { title, rows } => {
                super::e2e_plots::breakdown_chart(root, title, rows)
            }
        }
    }
}

/// Draws `chart` as PNG into `png_path` and returns it as an SVG document.
pub fn render(chart: &Chart, size: (u32, u32), png_path: &Path) -> Result<String> {
    register_font();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        chart.draw(&root)?;
        root.present().map_err(|e| anyhow!("svg: {e}"))?;
    }
    let root = BitMapBackend::new(png_path, size).into_drawing_area();
    chart.draw(&root)?;
    root.present()
        .map_err(|e| anyhow!("png {}: {e}", png_path.display()))?;
    Ok(svg)
}

/// Whether a design's inner loop is the int8 dot product (its roof is the int8 peak).
pub fn is_int8(design: &str) -> bool {
    // The bench's own rule, so a new int8 design (q8k-x8 was missed once) is never drawn
    // against the f32 roof.
    crate::registry::Design::from_name(design).is_some_and(|d| {
        crate::bench::variants::compute_kind(d) == crate::bench::probes::ComputeKind::Int8Dot
    })
}

/// Distinguishable colours for up to a dozen series (then they repeat).
pub fn colour(i: usize) -> RGBColor {
    const C: [RGBColor; 12] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
        RGBColor(188, 189, 34),
        RGBColor(23, 190, 207),
        RGBColor(0, 0, 128),
        RGBColor(128, 128, 0),
    ];
    C[i % C.len()]
}

/// A series label of a row: design, ISA, threads and (with several hosts) the host.
pub fn series_label(r: &BenchRow, hosts: usize) -> String {
    let mut s = format!("{} {} {} t{}", r.format, r.design, r.isa, r.threads);
    if hosts > 1 {
        s.push_str(&format!(" @ {}", short_cpu(&r.cpu)));
    }
    s
}

pub fn short_cpu(cpu: &str) -> String {
    cpu.split_whitespace().take(4).collect::<Vec<_>>().join(" ")
}

/// The x label of a row's shape.
pub fn shape_label(r: &BenchRow) -> String {
    if r.kernel == "attention" {
        format!(
            "{} kv{} q{}",
            r.shape.rsplit('.').next().unwrap_or(""),
            r.rows,
            r.n
        )
    } else if r.rows == 1 {
        format!("{}", r.k)
    } else {
        format!("{}x{} n{}", r.rows, r.k, r.n)
    }
}

/// Grouped bars: speedup over the family's scalar baseline per shape, one bar per variant.
pub fn speedup_chart<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    rows: &[&BenchRow],
    hosts: usize,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("drawing: {e}");
    root.fill(&WHITE).map_err(e)?;
    let mut shapes: Vec<String> = Vec::new();
    let mut series: Vec<String> = Vec::new();
    for r in rows {
        let s = shape_label(r);
        if !shapes.contains(&s) {
            shapes.push(s);
        }
        let l = series_label(r, hosts);
        if !series.contains(&l) {
            series.push(l);
        }
    }
    let mut value: BTreeMap<(usize, usize), f64> = BTreeMap::new();
    for r in rows {
        if let Some(v) = r.speedup_vs_reference {
            let si = shapes
                .iter()
                .position(|s| *s == shape_label(r))
                .unwrap_or(0);
            let vi = series
                .iter()
                .position(|s| *s == series_label(r, hosts))
                .unwrap_or(0);
            value.insert((si, vi), v);
        }
    }
    let ymax = value.values().cloned().fold(1.0f64, f64::max) * 1.15;
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 22))
        .margin(12)
        .x_label_area_size(70)
        .y_label_area_size(60)
        .build_cartesian_2d(shapes.as_slice().nested_coord(|_| 0f64..1f64), 0f64..ymax)
        .map_err(e)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_label_formatter(&|v| match v {
            NestedValue::Category(c) | NestedValue::Value(c, _) => c.to_string(),
        })
        .x_label_style((FONT, 12).into_font().transform(FontTransform::Rotate90))
        .y_desc("speedup over scalar (baseline design)")
        .axis_desc_style((FONT, 14))
        .label_style((FONT, 12))
        .draw()
        .map_err(e)?;
    let nser = series.len().max(1) as f64;
    let width = 0.8 / nser;
    for (vi, name) in series.iter().enumerate() {
        let c = colour(vi);
        let bars: Vec<_> = value
            .iter()
            .filter(|((_, v), _)| *v == vi)
            .map(|((si, _), &y)| {
                let x0 = 0.1 + vi as f64 * width;
                let shape = &shapes[*si];
                Rectangle::new(
                    [
                        ((shape, x0).into(), 0.0),
                        ((shape, x0 + width * 0.9).into(), y),
                    ],
                    c.filled(),
                )
            })
            .collect();
        chart
            .draw_series(bars)
            .map_err(e)?
            .label(name.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.filled()));
    }
    if let (Some(first), Some(last)) = (shapes.first(), shapes.last()) {
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![((first, 0.0).into(), 1.0), ((last, 1.0).into(), 1.0)],
                BLACK.stroke_width(1),
            )))
            .map_err(e)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FONT, 12))
        .draw()
        .map_err(e)?;
    Ok(())
}

/// Achieved GFLOP/s against arithmetic intensity, log-log, with the measured roofs: one sloped
/// line per memory roof (DRAM, cache) and one flat line per compute peak, for one host.
pub fn roofline_chart<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    rows: &[&BenchRow],
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("drawing: {e}");
    root.fill(&WHITE).map_err(e)?;
    let ai = |r: &BenchRow| r.flops as f64 / r.bytes.max(1) as f64;
    let xs: Vec<f64> = rows.iter().map(|r| ai(r)).collect();
    let (mut xmin, mut xmax) = xs
        .iter()
        .fold((f64::INFINITY, 0f64), |(a, b), &x| (a.min(x), b.max(x)));
    if !xmin.is_finite() {
        (xmin, xmax) = (0.1, 10.0);
    }
    let (xmin, xmax) = (xmin / 2.0, xmax * 2.0);
    // One thread count's roofs: the largest thread count present is the machine's ceiling,
    // the smallest its single-thread one; draw both sets.
    let mut mem: BTreeMap<String, f64> = BTreeMap::new();
    let mut peak: BTreeMap<String, f64> = BTreeMap::new();
    for r in rows {
        let which = if r.cache == "cold" || r.mem_roof_gb_per_s < 0.0 {
            "DRAM"
        } else {
            "cache/DRAM"
        };
        mem.entry(format!("{which} t{}", r.threads))
            .and_modify(|v| *v = v.max(r.mem_roof_gb_per_s))
            .or_insert(r.mem_roof_gb_per_s);
        let kind = if is_int8(&r.design) {
            "int8"
        } else {
            "f32 FMA"
        };
        peak.entry(format!("{kind} {} t{}", r.isa, r.threads))
            .and_modify(|v| *v = v.max(r.compute_roof_gflop_per_s))
            .or_insert(r.compute_roof_gflop_per_s);
    }
    let ymax = peak
        .values()
        .chain(rows.iter().map(|r| &r.gflop_per_s))
        .cloned()
        .fold(1.0f64, f64::max)
        * 2.0;
    let ymin = rows
        .iter()
        .map(|r| r.gflop_per_s)
        .fold(f64::INFINITY, f64::min)
        .min(ymax / 1e3)
        / 2.0;
    let ymin = if ymin.is_finite() && ymin > 0.0 {
        ymin
    } else {
        1e-3
    };
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 22))
        .margin(12)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d((xmin..xmax).log_scale(), (ymin..ymax).log_scale())
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc("arithmetic intensity (flop per byte moved)")
        .y_desc("achieved GFLOP/s (int8 GOP/s for q8k/q8_0/q8_1)")
        .axis_desc_style((FONT, 14))
        .label_style((FONT, 12))
        .draw()
        .map_err(e)?;
    for (name, bw) in &mem {
        let pts: Vec<(f64, f64)> = (0..=40)
            .map(|i| xmin * (xmax / xmin).powf(i as f64 / 40.0))
            .map(|x| (x, bw * x))
            .filter(|&(_, y)| y <= ymax && y >= ymin)
            .collect();
        let bw = *bw;
        chart
            .draw_series(std::iter::once(PathElement::new(
                pts,
                BLACK.stroke_width(2),
            )))
            .map_err(e)?
            .label(format!("{name}: {bw:.1} GB/s"))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], BLACK.stroke_width(2)));
    }
    for (i, (name, p)) in peak.iter().enumerate() {
        let c = colour(i + 6).mix(0.8);
        let p = *p;
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(xmin, p), (xmax, p)],
                c.stroke_width(1),
            )))
            .map_err(e)?
            .label(format!("peak {name}: {p:.1} G/s"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], c.stroke_width(1)));
    }
    // Colour = design and ISA; marker = kind of kernel (matmul, attention, op).
    let mut groups: Vec<String> = Vec::new();
    for r in rows {
        let g = format!("{} {}", r.design, r.isa);
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
    for (gi, g) in groups.iter().enumerate() {
        let c = colour(gi);
        let mine: Vec<&&BenchRow> = rows
            .iter()
            .filter(|r| format!("{} {}", r.design, r.isa) == *g)
            .collect();
        let at = |r: &BenchRow| (ai(r), r.gflop_per_s.max(ymin));
        chart
            .draw_series(
                mine.iter()
                    .filter(|r| r.kernel.starts_with("matmul"))
                    .map(|r| Circle::new(at(r), 4, c.filled())),
            )
            .map_err(e)?
            .label(g.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 4), (x + 10, y + 4)], c.filled()));
        chart
            .draw_series(
                mine.iter()
                    .filter(|r| r.kernel == "attention")
                    .map(|r| TriangleMarker::new(at(r), 6, c.filled())),
            )
            .map_err(e)?;
        chart
            .draw_series(
                mine.iter()
                    .filter(|r| !r.kernel.starts_with("matmul") && r.kernel != "attention")
                    .map(|r| Cross::new(at(r), 4, c.stroke_width(2))),
            )
            .map_err(e)?;
    }
    for (name, marker) in [("matmul", 0), ("attention", 1), ("per-layer op", 2)] {
        if !rows.iter().any(|r| match marker {
            0 => r.kernel.starts_with("matmul"),
            1 => r.kernel == "attention",
            _ => !r.kernel.starts_with("matmul") && r.kernel != "attention",
        }) {
            continue;
        }
        // An empty series carries the marker's legend entry.
        chart
            .draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())
            .map_err(e)?
            .label(name)
            .legend(move |(x, y)| -> DynElement<'static, _, _> {
                match marker {
                    0 => Circle::new((x + 5, y), 4, BLACK.filled()).into_dyn(),
                    1 => TriangleMarker::new((x + 5, y), 6, BLACK.filled()).into_dyn(),
                    _ => Cross::new((x + 5, y), 4, BLACK.stroke_width(2)).into_dyn(),
                }
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FONT, 10))
        .draw()
        .map_err(e)?;
    Ok(())
}
