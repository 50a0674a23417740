//! `harness report`: reads bench rows (CSV or JSON lines, from one machine or several) and writes
//! `REPORT.md` (tables, PNG plots embedded) and `REPORT.html` (the same, self-contained: SVG
//! inline, no scripts, no external resources) plus each plot as SVG and PNG.
//!
//! Plots: per kernel family, the speedup of every variant over the family's scalar baseline per
//! shape; per machine, a roofline (achieved GFLOP/s against arithmetic intensity, with that
//! machine's measured bandwidth and compute roofs). Rows of several machines are told apart by
//! their host columns (CPU model, cores).

pub mod plots;

use crate::record::{self, BenchRow};
use anyhow::{bail, Context, Result};
use plots::Chart;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct ReportArgs {
    /// Bench result files (CSV or JSONL) or directories holding them.
    #[arg(long = "in", num_args = 1.., default_value = "reports")]
    pub inputs: Vec<PathBuf>,
    /// Where to write REPORT.md, REPORT.html and the plots.
    #[arg(long, default_value = "reports")]
    pub out: PathBuf,
    /// A paragraph for the top of the report (how and where the figures were taken).
    #[arg(long)]
    pub note: Option<String>,
}

/// Collects the rows of every input; files that hold no bench rows are skipped with a note.
pub fn load(inputs: &[PathBuf]) -> Result<Vec<BenchRow>> {
    let mut files = Vec::new();
    for p in inputs {
        if p.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("cannot list {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "csv" || e == "jsonl"))
                .collect();
            entries.sort();
            for f in entries {
                files.push((f, false));
            }
        } else {
            files.push((p.clone(), true));
        }
    }
    let mut rows: Vec<BenchRow> = Vec::new();
    for (f, named) in files {
        match record::read_rows(&f) {
            Ok(r) => {
                eprintln!("report: {} rows from {}", r.len(), f.display());
                for row in r {
                    // The same run saved as CSV and JSONL side by side counts once.
                    if !rows.iter().any(|x| {
                        x.key() == row.key()
                            && x.date == row.date
                            && x.cpu == row.cpu
                            && x.median_ns == row.median_ns
                    }) {
                        rows.push(row);
                    }
                }
            }
            Err(e) if !named => eprintln!("report: skipping {}: {e:#}", f.display()),
            Err(e) => return Err(e),
        }
    }
    Ok(rows)
}

pub fn run(args: ReportArgs) -> Result<ExitCode> {
    let rows = load(&args.inputs)?;
    if rows.is_empty() {
        bail!("no bench rows found in {:?}", args.inputs);
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let written = write_report(&rows, &args.out, args.note.as_deref())?;
    for w in written {
        eprintln!("report: wrote {}", w.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn hosts_of(rows: &[BenchRow]) -> Vec<String> {
    let mut h: Vec<String> = Vec::new();
    for r in rows {
        let l = r.host().label();
        if !h.contains(&l) {
            h.push(l);
        }
    }
    h
}

fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect::<String>()
        .split('_')
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("_")
}

/// One figure of the report.
struct Figure {
    title: String,
    stem: String,
    svg: String,
}

/// Writes the report into `out`; returns the files written.
pub fn write_report(rows: &[BenchRow], out: &Path, note: Option<&str>) -> Result<Vec<PathBuf>> {
    let hosts = hosts_of(rows);
    let mut families: Vec<&str> = Vec::new();
    for r in rows {
        if !families.contains(&r.kernel.as_str()) {
            families.push(&r.kernel);
        }
    }
    let mut figures = Vec::new();
    let mut written = Vec::new();
    let mut add = |chart: Chart, title: String, stem: String, size| -> Result<()> {
        let png = out.join(format!("{stem}.png"));
        let svg = plots::render(&chart, size, &png).with_context(|| format!("drawing {title}"))?;
        let svg_path = out.join(format!("{stem}.svg"));
        std::fs::write(&svg_path, &svg)
            .with_context(|| format!("cannot write {}", svg_path.display()))?;
        written.push(png);
        written.push(svg_path);
        figures.push(Figure { title, stem, svg });
        Ok(())
    };
    for fam in &families {
        let fr: Vec<&BenchRow> = rows.iter().filter(|r| r.kernel == *fam).collect();
        let title = format!("{fam}: speedup over scalar per shape");
        let width = (300 + 40 * fr.len() as u32).clamp(900, 1600);
        add(
            Chart::Speedup {
                title: title.clone(),
                rows: fr,
                hosts: hosts.len(),
            },
            title,
            format!("speedup_{fam}"),
            (width, 560),
        )?;
    }
    for h in &hosts {
        let hr: Vec<&BenchRow> = rows.iter().filter(|r| r.host().label() == *h).collect();
        let title = format!("roofline: {h}");
        add(
            Chart::Roofline {
                title: title.clone(),
                rows: hr,
            },
            title,
            format!("roofline_{}", slug(h)),
            (1100, 700),
        )?;
    }

    let md = markdown(rows, &hosts, &families, &figures, note);
    let md_path = out.join("REPORT.md");
    std::fs::write(&md_path, md).with_context(|| format!("cannot write {}", md_path.display()))?;
    written.push(md_path);
    let html = html(rows, &hosts, &families, &figures, note);
    let html_path = out.join("REPORT.html");
    std::fs::write(&html_path, html)
        .with_context(|| format!("cannot write {}", html_path.display()))?;
    written.push(html_path);
    Ok(written)
}

fn host_lines(rows: &[BenchRow], hosts: &[String]) -> Vec<String> {
    hosts
        .iter()
        .filter_map(|h| rows.iter().find(|r| r.host().label() == *h))
        .map(|r| {
            format!(
                "{} — {} cores; features: {}; {}; commit {}{}; {}",
                r.cpu,
                r.cores,
                r.features,
                r.rustc,
                r.git_commit,
                if r.git_dirty { " (dirty)" } else { "" },
                r.date
            )
        })
        .collect()
}

/// The roofs each run measured, once per run (machine and start time).
fn limits_lines(rows: &[BenchRow]) -> Vec<String> {
    let mut runs: Vec<(String, String)> = Vec::new();
    for r in rows {
        let k = (plots::short_cpu(&r.cpu), r.date.clone());
        if !runs.contains(&k) {
            runs.push(k);
        }
    }
    let mut out = Vec::new();
    for (cpu, date) in runs {
        let mut mem: Vec<String> = Vec::new();
        let mut peak: Vec<String> = Vec::new();
        for r in rows
            .iter()
            .filter(|r| plots::short_cpu(&r.cpu) == cpu && r.date == date)
        {
            let m = format!("{:.1} GB/s (t{})", r.mem_roof_gb_per_s, r.threads);
            if !mem.contains(&m) {
                mem.push(m);
            }
            let kind = if plots::is_int8(&r.design) {
                "int8 dot"
            } else {
                "f32 FMA"
            };
            let p = format!(
                "{kind} {} t{}: {:.1} G/s",
                r.isa, r.threads, r.compute_roof_gflop_per_s
            );
            if !peak.contains(&p) {
                peak.push(p);
            }
        }
        out.push(format!(
            "{cpu}, run of {date}: memory roofs {}; peaks {}",
            mem.join(", "),
            peak.join(", ")
        ));
    }
    out
}

const COLUMNS_NOTE: &str = "Times are per call (median of the samples; CI = 95% bootstrap interval of the median). \
`roof` = achieved GFLOP/s over min(compute peak, memory roof x intensity); `bound` = the lower roof. \
`x scalar` = speedup over scalar of the same design; `x ref` = over the family's scalar baseline (matmuls: scalar `f32`). \
The integer designs (`q8k`, `q8_0`, `q8_1`) count int8 multiply-adds as flops and exclude quantizing the activations. \
Outliers (Tukey fences) are flagged with `!` and kept.";

fn markdown(
    rows: &[BenchRow],
    hosts: &[String],
    families: &[&str],
    figures: &[Figure],
    note: Option<&str>,
) -> String {
    let mut s = String::from("# Kernel benchmark report\n\n");
    if let Some(n) = note {
        let _ = writeln!(s, "{n}\n");
    }
    let _ = writeln!(
        s,
        "Generated by `harness report` from {} rows.\n\n## Machines\n",
        rows.len()
    );
    for l in host_lines(rows, hosts) {
        let _ = writeln!(s, "- {l}");
    }
    let _ = writeln!(s, "\nMeasured limits (per run):\n");
    for l in limits_lines(rows) {
        let _ = writeln!(s, "- {l}");
    }
    let _ = writeln!(s, "\n## Plots\n");
    for f in figures {
        let _ = writeln!(
            s,
            "### {}\n\n![{}]({}.png)\n\n([SVG]({}.svg))\n",
            f.title, f.title, f.stem, f.stem
        );
    }
    let _ = writeln!(
        s,
        "End-to-end rows (tokens/s by ISA, design and threads; time breakdown): none yet in these inputs.\n\n## Tables\n\n{COLUMNS_NOTE}\n"
    );
    for fam in families {
        let _ = writeln!(s, "### {fam}\n\n{}", record::md_header());
        for r in rows.iter().filter(|r| r.kernel == *fam) {
            let _ = writeln!(s, "{}", record::md_line(r));
        }
        s.push('\n');
    }
    s
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A markdown table line `| a | b |` as HTML cells.
fn md_line_to_html(line: &str, cell: &str) -> String {
    let cells: Vec<&str> = line.trim().trim_matches('|').split(" | ").collect();
    let mut s = String::from("<tr>");
    for c in cells {
        let c = c.trim();
        let class = if c.contains('!') {
            " class=\"outlier\""
        } else {
            ""
        };
        let _ = write!(s, "<{cell}{class}>{}</{cell}>", esc(c));
    }
    s.push_str("</tr>");
    s
}

fn html(
    rows: &[BenchRow],
    hosts: &[String],
    families: &[&str],
    figures: &[Figure],
    note: Option<&str>,
) -> String {
    let mut s = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Kernel benchmark report</title>\n<style>\n\
         body{font-family:'DejaVu Sans',Verdana,sans-serif;margin:24px;max-width:1700px;color:#222}\n\
         table{border-collapse:collapse;font-size:12px;margin-bottom:18px}\n\
         th,td{border:1px solid #ccc;padding:2px 6px;text-align:right}\n\
         th{background:#eee}td:nth-child(-n+8){text-align:left}\n\
         td.outlier{background:#fff3cd}\n\
         figure{margin:12px 0}svg{max-width:100%;height:auto;border:1px solid #ddd}\n\
         </style></head><body>\n<h1>Kernel benchmark report</h1>\n",
    );
    if let Some(n) = note {
        let _ = writeln!(s, "<p>{}</p>", esc(n));
    }
    let _ = writeln!(
        s,
        "<p>Generated by <code>harness report</code> from {} rows.</p><h2>Machines</h2><ul>",
        rows.len()
    );
    for l in host_lines(rows, hosts) {
        let _ = writeln!(s, "<li>{}</li>", esc(&l));
    }
    let _ = writeln!(s, "</ul><p>Measured limits (per run):</p><ul>");
    for l in limits_lines(rows) {
        let _ = writeln!(s, "<li>{}</li>", esc(&l));
    }
    let _ = writeln!(s, "</ul><h2>Plots</h2>");
    for f in figures {
        let svg = match f.svg.find("<svg") {
            Some(i) => &f.svg[i..],
            None => &f.svg,
        };
        let _ = writeln!(
            s,
            "<figure><figcaption><b>{}</b></figcaption>\n{svg}\n</figure>",
            esc(&f.title)
        );
    }
    let _ = writeln!(
        s,
        "<p>End-to-end rows (tokens/s by ISA, design and threads; time breakdown): none yet in these inputs.</p><h2>Tables</h2><p>{}</p>",
        esc(&COLUMNS_NOTE.replace('`', ""))
    );
    let header = record::md_header();
    let head_line = header.lines().next().unwrap_or("");
    for fam in families {
        let _ = writeln!(
            s,
            "<h3>{}</h3><table>{}",
            esc(fam),
            md_line_to_html(head_line, "th")
        );
        for r in rows.iter().filter(|r| r.kernel == *fam) {
            let _ = writeln!(s, "{}", md_line_to_html(&record::md_line(r), "td"));
        }
        s.push_str("</table>\n");
    }
    s.push_str("</body></html>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_of_two_hosts_writes_plots_and_self_contained_html() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let mut rows = vec![record::sample_row()];
        let mut scalar = record::sample_row();
        scalar.isa = "scalar".into();
        scalar.median_ns = 900.0;
        scalar.speedup_vs_reference = Some(1.0);
        rows.push(scalar);
        let mut other = record::sample_row();
        other.cpu = "Other CPU".into();
        rows.push(other);
        let written = write_report(&rows, &dir, Some("test note")).unwrap();
        let html = std::fs::read_to_string(dir.join("REPORT.html")).unwrap();
        assert!(html.contains("<svg") && !html.contains("<script") && !html.contains("src=\"http"));
        assert!(html.contains("Other CPU") && html.contains("test note"));
        let md = std::fs::read_to_string(dir.join("REPORT.md")).unwrap();
        assert!(md.contains("![") && md.contains("| matmul_q4k |"));
        // One roofline per machine, one speedup chart per family.
        assert_eq!(
            written
                .iter()
                .filter(|p| p.extension().is_some_and(|e| e == "png"))
                .count(),
            3
        );
        for p in written
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "png"))
        {
            let bytes = std::fs::read(p).unwrap();
            assert_eq!(&bytes[1..4], b"PNG", "{}", p.display());
        }
    }
}
