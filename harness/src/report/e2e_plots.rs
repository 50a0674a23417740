//! The end-to-end charts: tokens/s per test for every series (ours per ISA, design and threads;
//! llama.cpp per threads when its rows are present), and where our time goes as a stacked bar
//! (per cent of each test's time per category).

use super::plots::{colour, FONT};
use crate::e2e::{E2eRecord, BREAKDOWN};
use anyhow::{anyhow, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

fn tests_and_series(rows: &[&E2eRecord]) -> (Vec<String>, Vec<String>) {
    let (mut tests, mut series) = (Vec::new(), Vec::new());
    for r in rows {
        let t = r.test_name();
        if !tests.contains(&t) {
            tests.push(t);
        }
        let s = r.series();
        if !series.contains(&s) {
            series.push(s);
        }
    }
    (tests, series)
}

/// Grouped bars of mean tokens/s per test, one bar per series, with a +/- 1 stddev whisker.
pub fn rates_chart<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    rows: &[&E2eRecord],
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("drawing: {e}");
    root.fill(&WHITE).map_err(e)?;
    let (tests, series) = tests_and_series(rows);
    let ymax = rows
        .iter()
        .map(|r| r.avg_ts + r.stddev_ts)
        .fold(1.0f64, f64::max)
        * 1.2;
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(tests.as_slice().nested_coord(|_| 0f64..1f64), 0f64..ymax)
        .map_err(e)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_label_formatter(&|v| match v {
            NestedValue::Category(c) | NestedValue::Value(c, _) => c.to_string(),
        })
        .y_desc("tokens/s (mean of repetitions; whisker: 1 stddev)")
        .axis_desc_style((FONT, 14))
        .label_style((FONT, 13))
        .draw()
        .map_err(e)?;
    let width = 0.8 / series.len().max(1) as f64;
    for (si, name) in series.iter().enumerate() {
        let c = colour(si);
        let mine: Vec<&&E2eRecord> = rows.iter().filter(|r| r.series() == *name).collect();
        let bar = |r: &E2eRecord| {
            let x0 = 0.1 + si as f64 * width;
            let t = tests
                .iter()
                .find(|t| **t == r.test_name())
                .unwrap_or(&tests[0]);
            Rectangle::new(
                [
                    ((t, x0).into(), 0.0),
                    ((t, x0 + width * 0.9).into(), r.avg_ts),
                ],
                c.filled(),
            )
        };
        chart
            .draw_series(mine.iter().map(|r| bar(r)))
            .map_err(e)?
            .label(name.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.filled()));
        chart
            .draw_series(mine.iter().map(|r| {
                let xm = 0.1 + si as f64 * width + width * 0.45;
                let t = tests
                    .iter()
                    .find(|t| **t == r.test_name())
                    .unwrap_or(&tests[0]);
                PathElement::new(
                    vec![
                        ((t, xm).into(), (r.avg_ts - r.stddev_ts).max(0.0)),
                        ((t, xm).into(), r.avg_ts + r.stddev_ts),
                    ],
                    BLACK.stroke_width(2),
                )
            }))
            .map_err(e)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FONT, 13))
        .draw()
        .map_err(e)?;
    Ok(())
}

/// One stacked bar per (test, series) of our rows: each category's share of the test's time.
pub fn breakdown_chart<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    rows: &[&E2eRecord],
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("drawing: {e}");
    root.fill(&WHITE).map_err(e)?;
    let bars: Vec<(String, [f64; 10])> = rows
        .iter()
        .filter_map(|r| {
            let b = r.breakdown()?;
            let total: f64 = b.iter().sum();
            (total > 0.0).then(|| {
                let label = format!(
                    "{} {}",
                    r.test_name(),
                    r.series().trim_start_matches("ours ")
                );
                (label, b.map(|x| 100.0 * x / total))
            })
        })
        .collect();
    let labels: Vec<String> = bars.iter().map(|(l, _)| l.clone()).collect();
    let n = bars.len().max(1) as i32;
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(230)
        // `into_segmented` of `0..m` has the segments 0 to m inclusive: one per bar is `0..n-1`.
        .build_cartesian_2d(0f64..135f64, (0..n - 1).into_segmented())
        .map_err(e)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n as usize + 1)
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => labels.get(*i as usize).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .x_label_formatter(&|x| {
            if *x <= 100.0 {
                format!("{x:.0}")
            } else {
                String::new()
            }
        })
        .x_desc("per cent of the test's time")
        .axis_desc_style((FONT, 14))
        .label_style((FONT, 13))
        .draw()
        .map_err(e)?;
    for (ci, cat) in BREAKDOWN.iter().enumerate() {
        let c = colour(ci);
        let rects: Vec<_> = bars
            .iter()
            .enumerate()
            .map(|(i, (_, pct))| {
                let x0: f64 = pct[..ci].iter().sum();
                let mut r = Rectangle::new(
                    [
                        (x0, SegmentValue::Exact(i as i32)),
                        (x0 + pct[ci], SegmentValue::Exact(i as i32 + 1)),
                    ],
                    c.filled(),
                );
                r.set_margin(3, 3, 0, 0);
                r
            })
            .collect();
        chart
            .draw_series(rects)
            .map_err(e)?
            .label(cat.to_string())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font((FONT, 12))
        .draw()
        .map_err(e)?;
    Ok(())
}
