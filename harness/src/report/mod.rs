//! `harness report`: reads bench rows (CSV or JSON lines, from one machine or several) and writes
//! `REPORT.md` (tables, PNG plots embedded) and `REPORT.html` (the same, self-contained: SVG
//! inline, no scripts, no external resources) plus each plot as SVG and PNG.
//!
//! Plots: per kernel family, the speedup of every variant over the family's scalar baseline per
//! shape; per machine, a roofline (achieved GFLOP/s against arithmetic intensity, with that
//! machine's measured bandwidth and compute roofs). Rows of several machines are told apart by
//! their host columns (CPU model, cores).

pub mod e2e_plots;
pub mod plots;

use crate::e2e::{self as e2e_mod, E2eRecord, BREAKDOWN};
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
                .filter(|p| !is_e2e_file(p))
                .collect();
            entries.sort();
            for f in entries {
                files.push((f, false));
            }
        } else if !is_e2e_file(p) {
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

/// End-to-end rows live in files named `e2e*.csv` / `e2e*.jsonl` (ours and llama-bench's).
fn is_e2e_file(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("e2e"))
}

/// Collects the end-to-end rows (ours and llama-bench's) of every input; the same run saved as
/// CSV and JSONL counts once.
pub fn load_e2e(inputs: &[PathBuf]) -> Result<Vec<E2eRecord>> {
    let mut files = Vec::new();
    for p in inputs {
        if p.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("cannot list {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "csv" || e == "jsonl"))
                .filter(|p| is_e2e_file(p))
                .collect();
            entries.sort();
            files.extend(entries);
        } else if is_e2e_file(p) {
            files.push(p.clone());
        }
    }
    let mut rows: Vec<E2eRecord> = Vec::new();
    for f in files {
        let r = e2e_mod::read_records(&f)?;
        eprintln!("report: {} end-to-end rows from {}", r.len(), f.display());
        for row in r {
            if !rows.iter().any(|x| {
                x.series() == row.series()
                    && x.test_name() == row.test_name()
                    && x.test_time == row.test_time
                    && x.build_commit == row.build_commit
                    && (x.avg_ns - row.avg_ns).abs() < 1.0
            }) {
                rows.push(row);
            }
        }
    }
    Ok(rows)
}

/// The note paragraph of an existing `REPORT.md` in `dir` (the line after the title, unless it
/// is the generated-by line), so that regenerating the report from new rows keeps it.
pub fn existing_note(dir: &Path) -> Option<String> {
    let md = std::fs::read_to_string(dir.join("REPORT.md")).ok()?;
    let mut lines = md.lines();
    if lines.next()? != "# Kernel benchmark report" {
        return None;
    }
    let note = lines.find(|l| !l.trim().is_empty())?;
    (!note.starts_with("Generated by")).then(|| note.to_string())
}

pub fn run(args: ReportArgs) -> Result<ExitCode> {
    let rows = load(&args.inputs)?;
    let e2e = load_e2e(&args.inputs)?;
    if rows.is_empty() && e2e.is_empty() {
        bail!("no bench or e2e rows found in {:?}", args.inputs);
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let written = write_report(&rows, &e2e, &args.out, args.note.as_deref())?;
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
pub fn write_report(
    rows: &[BenchRow],
    e2e: &[E2eRecord],
    out: &Path,
    note: Option<&str>,
) -> Result<Vec<PathBuf>> {
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

    if !e2e.is_empty() {
        let title = "end to end: tokens/s by test, ISA, design and threads".to_string();
        let n_series = e2e
            .iter()
            .map(|r| r.series())
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        let n_tests = e2e
            .iter()
            .map(|r| r.test_name())
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        let width = (300 + 30 * (n_series * n_tests) as u32).clamp(900, 1600);
        add(
            Chart::E2eRates {
                title: title.clone(),
                rows: e2e.iter().collect(),
            },
            title,
            "e2e_tokens_per_s".into(),
            (width, 600),
        )?;
        let ours: Vec<&E2eRecord> = e2e.iter().filter(|r| r.breakdown().is_some()).collect();
        if !ours.is_empty() {
            let title = "end to end: where the time goes (ours)".to_string();
            let height = (140 + 34 * ours.len() as u32).clamp(400, 1400);
            add(
                Chart::E2eBreakdown {
                    title: title.clone(),
                    rows: ours,
                },
                title,
                "e2e_breakdown".into(),
                (1200, height),
            )?;
        }
    }
    let figures_e2e: Vec<&Figure> = figures
        .iter()
        .filter(|f| f.stem.starts_with("e2e"))
        .collect();
    let e2e_md = e2e_markdown(e2e, &figures_e2e);
    let figures: Vec<Figure> = figures
        .iter()
        .filter(|f| !f.stem.starts_with("e2e"))
        .map(|f| Figure {
            title: f.title.clone(),
            stem: f.stem.clone(),
            svg: f.svg.clone(),
        })
        .collect();
    let md = markdown(rows, &hosts, &families, &figures, note, &e2e_md);
    let md_path = out.join("REPORT.md");
    std::fs::write(&md_path, md).with_context(|| format!("cannot write {}", md_path.display()))?;
    written.push(md_path);
    let html = html(
        rows,
        &hosts,
        &families,
        &figures,
        note,
        &e2e_md,
        &figures_e2e,
    );
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
            let m = format!(
                "{} {:.1} GB/s (t{})",
                r.cache, r.mem_roof_gb_per_s, r.threads
            );
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
    e2e_md: &str,
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
    s.push_str(e2e_md);
    let _ = writeln!(s, "## Kernel tables\n\n{COLUMNS_NOTE}\n");
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
    e2e_md: &str,
    e2e_figures: &[&Figure],
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
    s.push_str(&e2e_html(e2e_md, e2e_figures));
    let _ = writeln!(
        s,
        "<h2>Kernel tables</h2><p>{}</p>",
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

/// The end-to-end section of REPORT.md: the charts, the rates table with llama.cpp beside ours
/// and their ratio, and the time breakdown table. Empty without e2e rows.
fn e2e_markdown(e2e: &[E2eRecord], figures: &[&Figure]) -> String {
    let mut s = String::new();
    if e2e.is_empty() {
        return s;
    }
    let _ = writeln!(s, "## End to end\n\n{E2E_NOTE}\n");
    for f in figures {
        let _ = writeln!(
            s,
            "### {}\n\n![{}]({}.png)\n\n([SVG]({}.svg))\n",
            f.title, f.title, f.stem, f.stem
        );
    }
    let _ = writeln!(
        s,
        "### Tokens/s\n\n| model | test | threads | ours (isa, design) | ours t/s | llama.cpp t/s | ours / llama.cpp | prompt t/s | gen t/s | TTFT ms | roofline | peak RSS MiB | load ms | machine | commit |\n|---|---|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|---|"
    );
    let opt = |v: Option<f64>, prec: usize| v.map_or("".to_string(), |x| format!("{x:.prec$}"));
    for r in e2e.iter().filter(|r| r.is_ours()) {
        let peer = e2e
            .iter()
            .filter(|p| {
                !p.is_ours() && p.test_name() == r.test_name() && p.n_threads == r.n_threads
            })
            .max_by(|a, b| a.test_time.cmp(&b.test_time));
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} {} | {:.2} ± {:.2} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.model_type,
            r.test_name(),
            r.n_threads,
            r.isa.as_deref().unwrap_or(""),
            r.design.as_deref().unwrap_or(""),
            r.avg_ts,
            r.stddev_ts,
            peer.map_or("".into(), |p| format!("{:.2} ± {:.2}", p.avg_ts, p.stddev_ts)),
            peer.map_or("".into(), |p| format!("{:.2}", r.avg_ts / p.avg_ts)),
            opt(r.prompt_ts, 2),
            opt(r.gen_ts, 2),
            opt(r.ttft_ms, 1),
            r.roofline_fraction
                .map_or("".into(), |f| format!("{:.0}%", 100.0 * f)),
            opt(r.peak_rss_bytes.map(|b| b / (1024.0 * 1024.0)), 0),
            opt(r.load_ms, 0),
            plots::short_cpu(&r.cpu_info),
            r.build_commit,
        );
    }
    let peers: Vec<&E2eRecord> = e2e.iter().filter(|r| !r.is_ours()).collect();
    if let Some(p) = peers.first() {
        let _ = writeln!(
            s,
            "\nllama.cpp rows: llama-bench build {} on {}, flash attention {} ({} rows).\n",
            p.build_commit,
            p.cpu_info,
            p.flash_attn,
            peers.len()
        );
    }
    let _ = write!(
        s,
        "\n### Where the time goes (ours, ms per repetition)\n\n| test | threads | isa, design |"
    );
    for c in BREAKDOWN {
        let _ = write!(s, " {c} |");
    }
    let _ = writeln!(
        s,
        " total |\n|---|--:|---|{}--:|",
        "--:|".repeat(BREAKDOWN.len())
    );
    for r in e2e.iter().filter(|r| r.is_ours()) {
        if let Some(b) = r.breakdown() {
            let total: f64 = b.iter().sum();
            let _ = write!(
                s,
                "| {} | {} | {} {} |",
                r.test_name(),
                r.n_threads,
                r.isa.as_deref().unwrap_or(""),
                r.design.as_deref().unwrap_or("")
            );
            for x in b {
                let _ = write!(s, " {:.1} ({:.0}%) |", x / 1e6, 100.0 * x / total.max(1.0));
            }
            let _ = writeln!(s, " {:.1} |", total / 1e6);
        }
    }
    s.push('\n');
    s
}

const E2E_NOTE: &str = "`harness e2e` in llama-bench's manner: t/s is the mean of the per-repetition rates (stddev with n-1); \
each repetition starts from an empty KV cache, after one untimed warm-up per test. `pp` = one batched prefill of random token ids, \
`tg` = tokens generated one at a time (greedy), `pp+tg` = both (its t/s counts all tokens over the whole time; prompt and generation rates and \
the time to first token separately). `roofline` = bytes streamed per generated token (weights + KV cache) x generation t/s over the measured read bandwidth. \
The breakdown is the forward pass's own profile (matmuls by tensor class with their activation quantization, attention, norms, rope), \
the sampling, and `other` (embedding, SwiGLU, residual adds, loop) = the repetition's wall time minus the rest. \
Timings come from a shared 2-core machine: noisy.";

/// The end-to-end section as HTML (tables from the markdown, figures inline).
fn e2e_html(e2e_md: &str, figures: &[&Figure]) -> String {
    let mut s = String::new();
    if e2e_md.is_empty() {
        return s;
    }
    let _ = writeln!(
        s,
        "<h2>End to end</h2><p>{}</p>",
        esc(&E2E_NOTE.replace('`', ""))
    );
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
    let mut in_table = false;
    for line in e2e_md.lines() {
        if let Some(h) = line.strip_prefix("### ") {
            if h.starts_with("Tokens") || h.starts_with("Where") {
                let _ = writeln!(s, "<h3>{}</h3>", esc(h));
            }
        } else if line.starts_with('|') {
            if line.starts_with("|---") {
                continue;
            }
            if !in_table {
                let _ = writeln!(s, "<table class=\"e2e\">{}", md_line_to_html(line, "th"));
                in_table = true;
            } else {
                let _ = writeln!(s, "{}", md_line_to_html(line, "td"));
            }
        } else {
            if in_table {
                s.push_str("</table>\n");
                in_table = false;
            }
            if line.starts_with("llama.cpp rows") {
                let _ = writeln!(s, "<p>{}</p>", esc(line));
            }
        }
    }
    if in_table {
        s.push_str("</table>\n");
    }
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
        let written = write_report(&rows, &[], &dir, Some("test note")).unwrap();
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
