//! The training report: one self-contained HTML file that `rapport train`
//! writes next to the model, for a data scientist to open in a browser.
//!
//! Why HTML with inline SVG: the file has to travel (attached to a ticket,
//! copied off a server) and still open anywhere, so it carries no scripts, no
//! external stylesheets and no network references; every figure is drawn by
//! `plotters`' SVG backend into a string and pasted into the page.
//!
//! The numbers come from the training pipeline in a [`ReportData`]; the curves
//! (ROC, precision–recall, reliability, gains) are derived here from the raw
//! holdout scores, while the headline metrics reuse [`crate::model::metrics`]
//! so the report and the stored model never disagree on a value.
//!
//! Everything is defensive about its input: names come from user data and are
//! escaped, and degenerate holdouts (empty, one class, NaN, all-equal scores)
//! produce a one-line note instead of a figure, never a panic.

use std::fmt::Write as _;
use std::path::Path;

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::error::Result;
use crate::model::metrics;
use crate::time::format_date;

/// Appends formatted text to a `String`. Writing into a `String` cannot fail,
/// so the `fmt::Result` is deliberately dropped rather than unwrapped.
macro_rules! out {
    ($buf:expr, $($arg:tt)*) => {{
        let _ = write!($buf, $($arg)*);
    }};
}

/// Everything a report shows, assembled by the training pipeline.
#[derive(Debug, Clone, Default)]
pub struct ReportData {
    /// Page heading, e.g. "Rapport model v3 — telco".
    pub title: String,
    pub version: u64,
    pub spec_name: String,
    /// Data file or "store".
    pub source: String,
    /// Unix seconds UTC; 0 is shown as "n/a".
    pub trained_at: i64,
    pub cutoff: Option<i64>,
    pub train_rows: u64,
    pub holdout_rows: u64,
    pub data_fingerprint: String,
    /// Name and value, e.g. ("churn.roc_auc", 0.81); grouped by the prefix before the first dot.
    pub metrics: Vec<(String, f64)>,
    pub churn: Option<ClassifierReport>,
    /// The timing curve's holdout evidence, one entry per horizon.
    pub timing: Vec<TimingReport>,
    pub value: Option<RegressionReport>,
    pub segments: Vec<SegmentReport>,
    /// Warnings, skipped rows, chosen learner, etc.
    pub notes: Vec<String>,
}

/// The churn classifier's holdout evidence.
#[derive(Debug, Clone, Default)]
pub struct ClassifierReport {
    /// The chosen learner.
    pub learner: String,
    /// Learner and its held-out (validation or cross-fitted) ROC AUC.
    pub candidates: Vec<(String, f64)>,
    /// Calibration method, e.g. "isotonic".
    pub calibration: String,
    /// Calibrated probabilities on the holdout.
    pub holdout_scores: Vec<f64>,
    pub holdout_labels: Vec<bool>,
    /// Feature and importance (any scale); the report sorts descending and shows the top 20.
    pub importance: Vec<(String, f64)>,
}

/// One horizon of the timing curve ("ended within N days") on the holdout.
#[derive(Debug, Clone, Default)]
pub struct TimingReport {
    pub days: u32,
    pub roc_auc: f64,
    pub brier: f64,
    pub ece: f64,
    /// Calibration method of this horizon, e.g. "platt".
    pub calibration: String,
}

/// The value regression's holdout predictions against what happened.
#[derive(Debug, Clone, Default)]
pub struct RegressionReport {
    pub horizon_days: u32,
    pub predicted: Vec<f64>,
    pub actual: Vec<f64>,
}

/// One customer segment: its size, persona and feature means.
#[derive(Debug, Clone, Default)]
pub struct SegmentReport {
    pub id: u32,
    pub size: u64,
    pub persona: String,
    pub means: Vec<(String, f64)>,
}

/// Renders the whole report as one HTML document.
pub fn render_html(data: &ReportData) -> String {
    let mut page = String::with_capacity(256 * 1024);
    let title = if data.title.trim().is_empty() {
        "Rapport training report".to_string()
    } else {
        data.title.clone()
    };
    out!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>\n{CSS}</style>\n</head>\n<body>\n",
        esc(&title)
    );
    header(&mut page, &title, data);
    out!(
        page,
        "<nav><a href=\"#metrics\">Metrics</a> · <a href=\"#churn\">Churn</a> · \
         <a href=\"#timing\">Timing</a> · <a href=\"#value\">Value</a> · \
         <a href=\"#segments\">Segments</a> · <a href=\"#notes\">Notes</a></nav>\n"
    );
    metrics_section(&mut page, &data.metrics);
    churn_section(&mut page, data.churn.as_ref());
    timing_section(&mut page, &data.timing);
    value_section(&mut page, data.value.as_ref());
    segments_section(&mut page, &data.segments);
    notes_section(&mut page, &data.notes);
    out!(
        page,
        "<footer>Generated by rapport {}.</footer>\n</body>\n</html>\n",
        esc(env!("CARGO_PKG_VERSION"))
    );
    page
}

/// Renders the report and writes it to `path`.
///
/// # Errors
/// `Error::Io` when the file cannot be written.
pub fn write_html(data: &ReportData, path: &Path) -> Result<()> {
    std::fs::write(path, render_html(data))?;
    Ok(())
}

// ---------------------------------------------------------------------------
// Page layout

const CSS: &str = "\
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; color: #222;
       max-width: 1180px; margin: 0 auto; padding: 1.5rem; line-height: 1.45; }
h1 { margin-bottom: 0.3rem; }
h2 { border-bottom: 2px solid #ddd; padding-bottom: 0.2rem; margin-top: 2.2rem; }
h3 { margin-bottom: 0.4rem; }
nav { margin: 0.8rem 0 0; font-size: 0.95rem; }
a { color: #1f77b4; }
dl.summary { display: grid; grid-template-columns: max-content 1fr; gap: 0.2rem 1.2rem; margin: 0.8rem 0; }
dl.summary dt { font-weight: 600; color: #555; }
dl.summary dd { margin: 0; font-family: ui-monospace, SFMono-Regular, Menlo, monospace; word-break: break-all; }
table { border-collapse: collapse; margin: 0.4rem 0 1rem; font-size: 0.93rem; }
th, td { border: 1px solid #ddd; padding: 0.25rem 0.6rem; text-align: left; }
th { background: #f4f6f8; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.chosen td { font-weight: 600; background: #eef6ee; }
.scroll { overflow-x: auto; }
.figures { display: grid; grid-template-columns: repeat(auto-fit, minmax(460px, 1fr)); gap: 1.2rem; }
figure { margin: 0; border: 1px solid #e4e4e4; border-radius: 4px; padding: 0.5rem; background: #fff; }
figure svg { width: 100%; height: auto; display: block; }
figcaption { font-size: 0.9rem; color: #444; margin-top: 0.3rem; }
p.note { color: #777; font-style: italic; margin: 0.3rem 0; }
footer { margin-top: 3rem; color: #999; font-size: 0.85rem; }
";

fn header(page: &mut String, title: &str, data: &ReportData) {
    out!(
        page,
        "<header>\n<h1>{}</h1>\n<dl class=\"summary\">\n",
        esc(title)
    );
    let trained = if data.trained_at == 0 {
        "n/a".to_string()
    } else {
        fmt_datetime(data.trained_at)
    };
    let cutoff = data.cutoff.map_or_else(|| "none".to_string(), format_date);
    let rows: [(&str, String); 8] = [
        ("Version", data.version.to_string()),
        ("Spec", or_na(&data.spec_name)),
        ("Source", or_na(&data.source)),
        ("Trained at", trained),
        ("Cutoff", cutoff),
        ("Train rows", fmt_count(data.train_rows)),
        ("Holdout rows", fmt_count(data.holdout_rows)),
        ("Data fingerprint", or_na(&data.data_fingerprint)),
    ];
    for (k, v) in rows {
        out!(page, "<dt>{k}</dt><dd>{}</dd>\n", esc(&v));
    }
    out!(page, "</dl>\n</header>\n");
}

/// Metrics grouped by the prefix before the first dot, the model families
/// first in pipeline order, anything else after in first-seen order.
fn metrics_section(page: &mut String, all: &[(String, f64)]) {
    out!(page, "<section id=\"metrics\">\n<h2>Metrics</h2>\n");
    if all.is_empty() {
        note(page, "No metrics were recorded for this run.");
        out!(page, "</section>\n");
        return;
    }
    let mut groups: Vec<&str> = vec!["churn", "value", "segments"];
    for (name, _) in all {
        let prefix = name.split_once('.').map_or("", |(p, _)| p);
        if !groups.contains(&prefix) {
            groups.push(prefix);
        }
    }
    for group in groups {
        let rows: Vec<(&str, f64)> = all
            .iter()
            .filter_map(|(name, v)| match name.split_once('.') {
                Some((p, rest)) if p == group => Some((rest, *v)),
                None if group.is_empty() => Some((name.as_str(), *v)),
                _ => None,
            })
            .collect();
        if rows.is_empty() {
            continue;
        }
        let heading = match group {
            "churn" => "Churn".to_string(),
            "value" => "Value".to_string(),
            "segments" => "Segments".to_string(),
            "" => "Other".to_string(),
            other => other.to_string(),
        };
        out!(
            page,
            "<h3>{}</h3>\n<table>\n<tr><th>metric</th><th>value</th></tr>\n",
            esc(&heading)
        );
        for (name, v) in rows {
            out!(
                page,
                "<tr><td>{}</td><td class=\"num\">{}</td></tr>\n",
                esc(name),
                fmt_num(v)
            );
        }
        out!(page, "</table>\n");
    }
    out!(page, "</section>\n");
}

fn churn_section(page: &mut String, churn: Option<&ClassifierReport>) {
    out!(page, "<section id=\"churn\">\n<h2>Churn</h2>\n");
    let Some(c) = churn else {
        note(page, "No churn model in this run.");
        out!(page, "</section>\n");
        return;
    };
    out!(
        page,
        "<p>Chosen learner: <strong>{}</strong>; calibration: <strong>{}</strong>.</p>\n",
        esc(&or_na(&c.learner)),
        esc(&or_na(&c.calibration))
    );
    if !c.candidates.is_empty() {
        out!(
            page,
            "<table>\n<tr><th>candidate learner</th><th>held-out ROC AUC</th></tr>\n"
        );
        for (name, auc) in &c.candidates {
            let chosen = *name == c.learner;
            out!(
                page,
                "<tr{}><td>{}{}</td><td class=\"num\">{}</td></tr>\n",
                if chosen { " class=\"chosen\"" } else { "" },
                esc(name),
                if chosen { " (chosen)" } else { "" },
                fmt_num(*auc)
            );
        }
        out!(page, "</table>\n");
    }

    let h = Holdout::new(c);
    let positives = h.positives();
    let negatives = h.labels.len() - positives;
    out!(
        page,
        "<p>Holdout: {} rows, {} churned ({}).</p>\n",
        fmt_count(h.labels.len() as u64),
        fmt_count(positives as u64),
        fmt_pct(positives as f64 / h.labels.len().max(1) as f64)
    );
    if h.dropped > 0 {
        note(
            page,
            &format!(
                "{} holdout rows were left out of the figures: non-finite score or no label.",
                fmt_count(h.dropped as u64)
            ),
        );
    }

    out!(page, "<div class=\"figures\">\n");
    if h.labels.is_empty() {
        note(
            page,
            "Holdout curves omitted: no holdout scores were recorded.",
        );
    } else {
        let auc = metrics::roc_auc(&h.scores, &h.labels);
        let ap = metrics::pr_auc(&h.scores, &h.labels);
        let ece = metrics::expected_calibration_error(&h.scores, &h.labels);
        let base = positives as f64 / h.labels.len() as f64;
        let counts = cumulative_counts(&h.scores, &h.labels);

        if positives == 0 || negatives == 0 {
            note(
                page,
                "ROC curve omitted: the holdout has only one class, so the AUC is undefined.",
            );
        } else {
            figure(
                page,
                "ROC curve",
                &format!(
                    "ROC curve on the holdout — AUC {} (the diagonal is a random ranking).",
                    fmt_num(auc)
                ),
                roc_svg(&roc_points(&counts, positives, negatives)),
            );
        }
        if positives == 0 {
            note(
                page,
                "Precision–recall curve omitted: the holdout has no churned customers.",
            );
        } else {
            figure(
                page,
                "Precision–recall curve",
                &format!(
                    "Precision–recall on the holdout — average precision {} (base rate {}).",
                    fmt_num(ap),
                    fmt_pct(base)
                ),
                pr_svg(&pr_points(&counts, positives), base),
            );
        }
        figure(
            page,
            "Reliability diagram",
            &format!(
                "Reliability: mean predicted probability vs observed churn rate in 10 \
                 equal-width bins (bars: rows per bin) — ECE {}.",
                fmt_num(ece)
            ),
            reliability_svg(&reliability_bins(&h.scores, &h.labels)),
        );
        if positives == 0 {
            note(
                page,
                "Cumulative gain and lift omitted: the holdout has no churned customers.",
            );
        } else {
            figure(
                page,
                "Cumulative gain",
                "Cumulative gain: share of churners reached when contacting the top-scored \
                 share of customers (the diagonal is random contact).",
                gains_svg(&gains_points(&counts, h.labels.len(), positives)),
            );
            figure(
                page,
                "Lift by decile",
                "Lift by score decile (1 = highest scores): churn rate in the decile over \
                 the overall churn rate.",
                lift_svg(
                    &metrics::lift_by_decile(&h.scores, &h.labels),
                    h.labels.len(),
                ),
            );
        }
    }
    let top = top_importance(&c.importance);
    if top.is_empty() {
        note(page, "Feature importance omitted: none was recorded.");
    } else {
        figure(
            page,
            "Feature importance",
            &format!(
                "Feature importance, top {} of {} features.",
                top.len(),
                c.importance.len()
            ),
            importance_svg(&top),
        );
    }
    out!(page, "</div>\n</section>\n");
}

fn timing_section(page: &mut String, timing: &[TimingReport]) {
    out!(page, "<section id=\"timing\">\n<h2>Timing</h2>\n");
    if timing.is_empty() {
        note(page, "No timing models in this run.");
        out!(page, "</section>\n");
        return;
    }
    let mut rows = timing.to_vec();
    rows.sort_by_key(|t| t.days);
    let aucs: Vec<(u32, f64)> = rows.iter().map(|t| (t.days, t.roc_auc)).collect();
    out!(page, "<div class=\"figures\">\n");
    figure(
        page,
        "Timing AUC",
        "Holdout ROC AUC of the calibrated “churns within N days” curve, by horizon (0.5 is chance).",
        timing_svg(&aucs),
    );
    out!(
        page,
        "<div><table>\n<tr><th>horizon (days)</th><th>ROC AUC</th><th>Brier</th>\
         <th>ECE</th><th>calibration</th></tr>\n"
    );
    for t in &rows {
        out!(
            page,
            "<tr><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td>{}</td></tr>\n",
            t.days,
            fmt_num(t.roc_auc),
            fmt_num(t.brier),
            fmt_num(t.ece),
            esc(&or_na(&t.calibration))
        );
    }
    out!(page, "</table></div>\n</div>\n</section>\n");
}

fn value_section(page: &mut String, value: Option<&RegressionReport>) {
    out!(page, "<section id=\"value\">\n<h2>Value</h2>\n");
    let Some(v) = value else {
        note(page, "No value model in this run.");
        out!(page, "</section>\n");
        return;
    };
    let pairs: Vec<(f64, f64)> = v
        .predicted
        .iter()
        .zip(&v.actual)
        .map(|(p, a)| (*p, *a))
        .filter(|(p, a)| p.is_finite() && a.is_finite())
        .collect();
    let total = v.predicted.len().max(v.actual.len());
    out!(
        page,
        "<p>Value over the next {} days: {} holdout customers with a prediction and an outcome.</p>\n",
        v.horizon_days,
        fmt_count(pairs.len() as u64)
    );
    if pairs.len() < total {
        note(
            page,
            &format!(
                "{} rows were left out: non-finite value or no matching outcome.",
                fmt_count((total - pairs.len()) as u64)
            ),
        );
    }
    if pairs.is_empty() {
        note(
            page,
            "Value figures omitted: no holdout predictions were recorded.",
        );
        out!(page, "</section>\n");
        return;
    }
    let sample = sample_evenly(&pairs, MAX_SCATTER);
    out!(page, "<div class=\"figures\">\n");
    figure(
        page,
        "Predicted vs actual value",
        &format!(
            "Predicted vs actual value, log1p axes ({} of {} points, evenly sampled); \
             the diagonal is a perfect prediction.",
            fmt_count(sample.len() as u64),
            fmt_count(pairs.len() as u64)
        ),
        scatter_svg(&sample),
    );
    figure(
        page,
        "Value calibration by decile",
        "Mean actual vs mean predicted value in each predicted-value decile, log1p axes; \
         points on the diagonal are well calibrated.",
        decile_svg(&value_deciles(&pairs)),
    );
    out!(page, "</div>\n</section>\n");
}

fn segments_section(page: &mut String, segments: &[SegmentReport]) {
    out!(page, "<section id=\"segments\">\n<h2>Segments</h2>\n");
    if segments.is_empty() {
        note(page, "No segmentation in this run.");
        out!(page, "</section>\n");
        return;
    }
    // Columns are the union of every segment's means, in first-seen order,
    // so a segment missing a feature gets an empty cell rather than a shift.
    let mut columns: Vec<&str> = Vec::new();
    for s in segments {
        for (name, _) in &s.means {
            if !columns.contains(&name.as_str()) {
                columns.push(name);
            }
        }
    }
    let total: u64 = segments.iter().map(|s| s.size).sum();
    out!(
        page,
        "<div class=\"scroll\"><table>\n<tr><th>id</th><th>size</th><th>share</th><th>persona</th>"
    );
    for c in &columns {
        out!(page, "<th>{}</th>", esc(c));
    }
    out!(page, "</tr>\n");
    for s in segments {
        out!(
            page,
            "<tr><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td>",
            s.id,
            fmt_count(s.size),
            fmt_pct(s.size as f64 / total.max(1) as f64),
            esc(&s.persona)
        );
        for c in &columns {
            let cell = s
                .means
                .iter()
                .find(|(name, _)| name == c)
                .map_or_else(String::new, |(_, v)| fmt_mean(*v));
            out!(page, "<td class=\"num\">{cell}</td>");
        }
        out!(page, "</tr>\n");
    }
    out!(page, "</table></div>\n</section>\n");
}

fn notes_section(page: &mut String, notes: &[String]) {
    out!(page, "<section id=\"notes\">\n<h2>Notes</h2>\n");
    if notes.is_empty() {
        note(page, "No notes from the training run.");
    } else {
        out!(page, "<ul>\n");
        for n in notes {
            out!(page, "<li>{}</li>\n", esc(n));
        }
        out!(page, "</ul>\n");
    }
    out!(page, "</section>\n");
}

/// A drawn figure with its caption, or a one-line note saying why it is missing.
fn figure(page: &mut String, name: &str, caption: &str, svg: Drawn) {
    match svg {
        Ok(svg) => out!(
            page,
            "<figure>\n{svg}<figcaption>{}</figcaption>\n</figure>\n",
            esc(caption)
        ),
        Err(why) => note(page, &format!("{name} omitted: {why}")),
    }
}

fn note(page: &mut String, text: &str) {
    out!(page, "<p class=\"note\">{}</p>\n", esc(text));
}

// ---------------------------------------------------------------------------
// Formatting

/// Escapes text for HTML element content and attribute values.
fn esc(text: &str) -> String {
    let mut s = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => s.push_str("&amp;"),
            '<' => s.push_str("&lt;"),
            '>' => s.push_str("&gt;"),
            '"' => s.push_str("&quot;"),
            '\'' => s.push_str("&#39;"),
            c => s.push(c),
        }
    }
    s
}

fn or_na(text: &str) -> String {
    if text.trim().is_empty() {
        "n/a".to_string()
    } else {
        text.to_string()
    }
}

/// A metric value: "n/a" for NaN or infinite, integers without decimals,
/// otherwise four decimals (enough to compare AUCs) or scientific when tiny or huge.
fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".to_string();
    }
    let a = v.abs();
    if v.fract() == 0.0 && a < 1e15 {
        // Exact: the value is integral and well inside i64.
        let sign = if v < 0.0 { "-" } else { "" };
        format!("{sign}{}", fmt_count(a as u64))
    } else if !(1e-4..1e6).contains(&a) {
        format!("{v:.3e}")
    } else if a >= 100.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

/// A feature mean: two decimals are plenty to tell segments apart.
fn fmt_mean(v: f64) -> String {
    if !v.is_finite() {
        "n/a".to_string()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        fmt_num(v)
    } else if v.abs() >= 1e6 || (v != 0.0 && v.abs() < 1e-3) {
        format!("{v:.2e}")
    } else {
        format!("{v:.2}")
    }
}

fn fmt_pct(share: f64) -> String {
    if share.is_finite() {
        format!("{:.1}%", share * 100.0)
    } else {
        "n/a".to_string()
    }
}

/// A count with thousands separators, e.g. 12,345.
fn fmt_count(n: u64) -> String {
    let digits = n.to_string();
    let mut s = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            s.push(',');
        }
        s.push(c);
    }
    s
}

fn fmt_datetime(ts: i64) -> String {
    let secs = ts.rem_euclid(86_400);
    format!(
        "{} {:02}:{:02}:{:02} UTC",
        format_date(ts),
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Short tick label for money-like axes: 950, 1.2k, 3.4M.
fn fmt_tick(v: f64) -> String {
    let a = v.abs();
    if !v.is_finite() {
        String::new()
    } else if a >= 1e9 {
        format!("{:.1}G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else if a >= 10.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

// ---------------------------------------------------------------------------
// Curve data

const MAX_SCATTER: usize = 2_000;
const TOP_FEATURES: usize = 20;
/// Curves are thinned to points at least this far apart (L1, in unit axes):
/// a 100k-row holdout would otherwise put 100k vertices into the page.
const THIN_EPS: f64 = 0.002;

/// The holdout scores and labels that can be plotted: paired up to the shorter
/// vector, non-finite scores dropped.
struct Holdout {
    scores: Vec<f64>,
    labels: Vec<bool>,
    dropped: usize,
}

impl Holdout {
    fn new(c: &ClassifierReport) -> Self {
        let (scores, labels): (Vec<f64>, Vec<bool>) = c
            .holdout_scores
            .iter()
            .zip(&c.holdout_labels)
            .filter(|(s, _)| s.is_finite())
            .map(|(s, l)| (*s, *l))
            .unzip();
        let dropped = c.holdout_scores.len().max(c.holdout_labels.len()) - scores.len();
        Self {
            scores,
            labels,
            dropped,
        }
    }

    fn positives(&self) -> usize {
        self.labels.iter().filter(|l| **l).count()
    }
}

/// (true positives, false positives) after each distinct score, highest
/// score first; tied scores form one step so ties never fake a slope.
fn cumulative_counts(scores: &[f64], labels: &[bool]) -> Vec<(usize, usize)> {
    let mut order: Vec<usize> = (0..scores.len().min(labels.len())).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut steps = Vec::new();
    let (mut tp, mut fp) = (0, 0);
    for (i, &k) in order.iter().enumerate() {
        if labels[k] {
            tp += 1;
        } else {
            fp += 1;
        }
        let group_ends = order
            .get(i + 1)
            .is_none_or(|&next| scores[next] != scores[k]);
        if group_ends {
            steps.push((tp, fp));
        }
    }
    steps
}

/// ROC curve points (false positive rate, true positive rate) from (0, 0) to (1, 1).
fn roc_points(counts: &[(usize, usize)], positives: usize, negatives: usize) -> Vec<(f64, f64)> {
    let (p, n) = (positives.max(1) as f64, negatives.max(1) as f64);
    let mut pts = vec![(0.0, 0.0)];
    pts.extend(
        counts
            .iter()
            .map(|&(tp, fp)| (fp as f64 / n, tp as f64 / p)),
    );
    thin(pts, THIN_EPS)
}

/// Precision–recall points (recall, precision), starting at recall 0 with
/// the precision of the top-scored group.
fn pr_points(counts: &[(usize, usize)], positives: usize) -> Vec<(f64, f64)> {
    let p = positives.max(1) as f64;
    let mut pts: Vec<(f64, f64)> = counts
        .iter()
        .map(|&(tp, fp)| (tp as f64 / p, tp as f64 / (tp + fp).max(1) as f64))
        .collect();
    if let Some(&(_, first)) = pts.first() {
        pts.insert(0, (0.0, first));
    }
    thin(pts, THIN_EPS)
}

/// Cumulative gain points (share of customers contacted, share of churners reached).
fn gains_points(counts: &[(usize, usize)], rows: usize, positives: usize) -> Vec<(f64, f64)> {
    let (n, p) = (rows.max(1) as f64, positives.max(1) as f64);
    let mut pts = vec![(0.0, 0.0)];
    pts.extend(
        counts
            .iter()
            .map(|&(tp, fp)| ((tp + fp) as f64 / n, tp as f64 / p)),
    );
    thin(pts, THIN_EPS)
}

/// Drops points closer than `eps` to the last kept one, always keeping the ends.
fn thin(points: Vec<(f64, f64)>, eps: f64) -> Vec<(f64, f64)> {
    let len = points.len();
    let mut kept: Vec<(f64, f64)> = Vec::with_capacity(len.min(2_048));
    for (i, p) in points.into_iter().enumerate() {
        match kept.last() {
            Some(&(x, y)) if i + 1 < len && (p.0 - x).abs() + (p.1 - y).abs() < eps => {}
            _ => kept.push(p),
        }
    }
    kept
}

/// One reliability bin: mean predicted probability, observed positive rate, rows.
#[derive(Debug, Clone, Copy, Default)]
struct Bin {
    mean_pred: f64,
    observed: f64,
    count: usize,
}

/// Ten equal-width probability bins, binned exactly as
/// [`metrics::expected_calibration_error`] does so the figure matches the ECE.
fn reliability_bins(scores: &[f64], labels: &[bool]) -> [Bin; 10] {
    let mut sums = [(0.0f64, 0.0f64, 0usize); 10];
    for (p, y) in scores.iter().zip(labels) {
        // `as usize` saturates (negative and NaN go to 0), and min keeps 1.0 in the top bin.
        let b = ((p * 10.0) as usize).min(9);
        sums[b].0 += p;
        sums[b].1 += f64::from(u8::from(*y));
        sums[b].2 += 1;
    }
    let mut bins = [Bin::default(); 10];
    for (bin, (p, y, n)) in bins.iter_mut().zip(sums) {
        if n > 0 {
            *bin = Bin {
                mean_pred: p / n as f64,
                observed: y / n as f64,
                count: n,
            };
        }
    }
    bins
}

/// The top features by importance, descending; non-finite importances dropped.
fn top_importance(importance: &[(String, f64)]) -> Vec<(String, f64)> {
    let mut all: Vec<(String, f64)> = importance
        .iter()
        .filter(|(_, v)| v.is_finite())
        .cloned()
        .collect();
    all.sort_by(|a, b| b.1.total_cmp(&a.1));
    all.truncate(TOP_FEATURES);
    all
}

/// At most `max` points picked at even strides: deterministic, and it keeps
/// the input's spread without a random generator.
fn sample_evenly(pairs: &[(f64, f64)], max: usize) -> Vec<(f64, f64)> {
    if pairs.len() <= max {
        return pairs.to_vec();
    }
    (0..max)
        .filter_map(|i| pairs.get(i * pairs.len() / max).copied())
        .collect()
}

/// (mean predicted, mean actual) per predicted-value decile, lowest first.
fn value_deciles(pairs: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut sorted = pairs.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    (0..10)
        .filter_map(|d| {
            let chunk = sorted.get(d * sorted.len() / 10..(d + 1) * sorted.len() / 10)?;
            if chunk.is_empty() {
                return None;
            }
            let n = chunk.len() as f64;
            let p = chunk.iter().map(|c| c.0).sum::<f64>() / n;
            let a = chunk.iter().map(|c| c.1).sum::<f64>() / n;
            Some((p, a))
        })
        .collect()
}

/// log1p, mirrored for negatives so a refund cannot produce NaN.
fn slog1p(v: f64) -> f64 {
    v.signum() * v.abs().ln_1p()
}

fn sexpm1(v: f64) -> f64 {
    v.signum() * v.abs().exp_m1()
}

/// A plottable axis range covering `values`: padded by 5%, widened when all
/// values are equal, and (0, 1) when there is nothing finite to cover.
fn span(values: impl IntoIterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .into_iter()
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if !(lo.is_finite() && hi.is_finite()) {
        return (0.0, 1.0);
    }
    let width = hi - lo;
    let pad = if width > 1e-9 * lo.abs().max(hi.abs()).max(1e-12) {
        width * 0.05
    } else {
        lo.abs().max(1.0) * 0.5
    };
    let (a, b) = (lo - pad, hi + pad);
    if a.is_finite() && b.is_finite() && a < b {
        (a, b)
    } else {
        (0.0, 1.0)
    }
}

// ---------------------------------------------------------------------------
// Figures

type Drawn = std::result::Result<String, String>;
type DrawResult = std::result::Result<(), Box<dyn std::error::Error>>;
type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

const FIG: (u32, u32) = (640, 420);
const FONT: &str = "sans-serif";
const MODEL: RGBColor = RGBColor(31, 119, 180);
const ACCENT: RGBColor = RGBColor(255, 127, 14);
const BASELINE: RGBColor = RGBColor(150, 150, 150);
const GRID: RGBColor = RGBColor(236, 236, 236);

/// Runs `draw` on a fresh SVG canvas and returns the SVG markup.
fn draw_svg<F>(size: (u32, u32), draw: F) -> Drawn
where
    F: FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> DrawResult,
{
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        draw(&root).map_err(|e| format!("could not draw the figure ({e})."))?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(buf)
}

/// A chart on numeric axes with the house margins.
fn unit_chart<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, Shift>,
    x: (f64, f64),
    y: (f64, f64),
) -> std::result::Result<Chart<'a, 'b>, Box<dyn std::error::Error>> {
    Ok(ChartBuilder::on(root)
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d(x.0..x.1, y.0..y.1)?)
}

fn mesh(chart: &mut Chart<'_, '_>, x_desc: &str, y_desc: &str) -> DrawResult {
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .bold_line_style(GRID)
        .light_line_style(WHITE)
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 14))
        .draw()?;
    Ok(())
}

fn legend<'a, 'b: 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, SVGBackend<'b>, CT>,
    position: SeriesLabelPosition,
) -> DrawResult {
    chart
        .configure_series_labels()
        .position(position)
        .label_font((FONT, 13))
        .background_style(WHITE.mix(0.85))
        .border_style(BASELINE)
        .draw()?;
    Ok(())
}

fn legend_line(color: RGBColor) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
}

/// A line with a legend entry; the diagonal and other references use `BASELINE`.
fn line(
    chart: &mut Chart<'_, '_>,
    points: &[(f64, f64)],
    color: RGBColor,
    label: &str,
) -> DrawResult {
    let width = if color == BASELINE { 1 } else { 2 };
    chart
        .draw_series(LineSeries::new(
            points.iter().copied(),
            color.stroke_width(width),
        ))?
        .label(label)
        .legend(legend_line(color));
    Ok(())
}

fn roc_svg(points: &[(f64, f64)]) -> Drawn {
    draw_svg(FIG, |root| {
        let mut chart = unit_chart(root, (0.0, 1.0), (0.0, 1.0))?;
        mesh(&mut chart, "False positive rate", "True positive rate")?;
        line(&mut chart, &[(0.0, 0.0), (1.0, 1.0)], BASELINE, "random")?;
        line(&mut chart, points, MODEL, "model")?;
        legend(&mut chart, SeriesLabelPosition::LowerRight)
    })
}

fn pr_svg(points: &[(f64, f64)], base_rate: f64) -> Drawn {
    draw_svg(FIG, |root| {
        let mut chart = unit_chart(root, (0.0, 1.0), (0.0, 1.02))?;
        mesh(&mut chart, "Recall", "Precision")?;
        if base_rate.is_finite() {
            line(
                &mut chart,
                &[(0.0, base_rate), (1.0, base_rate)],
                BASELINE,
                "base rate",
            )?;
        }
        line(&mut chart, points, MODEL, "model")?;
        legend(&mut chart, SeriesLabelPosition::UpperRight)
    })
}

fn reliability_svg(bins: &[Bin; 10]) -> Drawn {
    let max_count = bins.iter().map(|b| b.count).max().unwrap_or(0).max(1) as f64;
    let used: Vec<Bin> = bins.iter().copied().filter(|b| b.count > 0).collect();
    if used.is_empty() {
        return Err("no scores to bin.".to_string());
    }
    draw_svg(FIG, |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(56)
            .right_y_label_area_size(56)
            .build_cartesian_2d(0.0..1.0, 0.0..1.0)?
            // Three times the tallest bar: the counts stay in the bottom third,
            // out of the way of the curve and the legend.
            .set_secondary_coord(0.0..1.0, 0.0..max_count * 3.0);
        chart
            .configure_mesh()
            .x_desc("Mean predicted probability")
            .y_desc("Observed churn rate")
            .bold_line_style(GRID)
            .light_line_style(WHITE)
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 14))
            .draw()?;
        chart
            .configure_secondary_axes()
            .y_desc("Rows per bin")
            .y_label_formatter(&|v| fmt_tick(*v))
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 14))
            .draw()?;
        // Counts first so the curve is drawn over the bars.
        chart
            .draw_secondary_series(bins.iter().enumerate().filter(|(_, b)| b.count > 0).map(
                |(i, b)| {
                    let left = i as f64 / 10.0;
                    Rectangle::new(
                        [(left + 0.006, 0.0), (left + 0.094, b.count as f64)],
                        ACCENT.mix(0.25).filled(),
                    )
                },
            ))?
            .label("rows per bin")
            .legend(|(x, y)| {
                Rectangle::new([(x, y - 5), (x + 20, y + 5)], ACCENT.mix(0.25).filled())
            });
        let count_style = TextStyle::from((FONT, 11).into_font())
            .color(&RGBColor(120, 120, 120))
            .pos(Pos::new(HPos::Center, VPos::Bottom));
        chart.draw_secondary_series(bins.iter().enumerate().filter(|(_, b)| b.count > 0).map(
            |(i, b)| {
                Text::new(
                    fmt_count(b.count as u64),
                    (i as f64 / 10.0 + 0.05, b.count as f64),
                    count_style.clone(),
                )
            },
        ))?;
        chart
            .draw_series(LineSeries::new(
                [(0.0, 0.0), (1.0, 1.0)],
                BASELINE.stroke_width(1),
            ))?
            .label("perfectly calibrated")
            .legend(legend_line(BASELINE));
        let pts: Vec<(f64, f64)> = used.iter().map(|b| (b.mean_pred, b.observed)).collect();
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), MODEL.stroke_width(2)))?
            .label("model")
            .legend(legend_line(MODEL));
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, MODEL.filled())))?;
        legend(&mut chart, SeriesLabelPosition::UpperLeft)
    })
}

fn gains_svg(points: &[(f64, f64)]) -> Drawn {
    draw_svg(FIG, |root| {
        let mut chart = unit_chart(root, (0.0, 1.0), (0.0, 1.02))?;
        chart
            .configure_mesh()
            .x_desc("Share of customers contacted (highest scores first)")
            .y_desc("Share of churners reached")
            .bold_line_style(GRID)
            .light_line_style(WHITE)
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 14))
            .x_label_formatter(&|v| format!("{:.0}%", v * 100.0))
            .y_label_formatter(&|v| format!("{:.0}%", v * 100.0))
            .draw()?;
        line(&mut chart, &[(0.0, 0.0), (1.0, 1.0)], BASELINE, "random")?;
        line(&mut chart, points, MODEL, "model")?;
        legend(&mut chart, SeriesLabelPosition::LowerRight)
    })
}

fn lift_svg(lift: &[f64], rows: usize) -> Drawn {
    // With fewer than ten rows some deciles are empty; metrics::lift_by_decile
    // reports those as 0, which would read as "no churners", so skip them.
    let bars: Vec<(i32, f64)> = (0i32..)
        .zip(lift)
        .enumerate()
        .filter(|&(d, (_, v))| v.is_finite() && (d + 1) * rows / 10 > d * rows / 10)
        .map(|(_, (d, v))| (d, *v))
        .collect();
    if bars.is_empty() {
        return Err("the lift is undefined for this holdout.".to_string());
    }
    let top = bars.iter().map(|b| b.1).fold(1.0f64, f64::max) * 1.15;
    draw_svg(FIG, |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(56)
            .build_cartesian_2d((0i32..9).into_segmented(), 0.0..top)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc("Score decile (1 = highest scores)")
            .y_desc("Lift")
            .bold_line_style(GRID)
            .light_line_style(WHITE)
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 14))
            .x_labels(10)
            .x_label_formatter(&|v| match v {
                SegmentValue::Exact(d) | SegmentValue::CenterOf(d) => (d + 1).to_string(),
                SegmentValue::Last => String::new(),
            })
            .draw()?;
        chart.draw_series(bars.iter().map(|&(d, v)| {
            let mut bar = Rectangle::new(
                [
                    (SegmentValue::Exact(d), 0.0),
                    (SegmentValue::Exact(d + 1), v),
                ],
                MODEL.mix(0.85).filled(),
            );
            bar.set_margin(0, 0, 6, 6);
            bar
        }))?;
        let value_style = TextStyle::from((FONT, 12).into_font())
            .color(&RGBColor(60, 60, 60))
            .pos(Pos::new(HPos::Center, VPos::Bottom));
        chart.draw_series(bars.iter().map(|&(d, v)| {
            Text::new(
                format!("{v:.2}"),
                (SegmentValue::CenterOf(d), v),
                value_style.clone(),
            )
        }))?;
        chart
            .draw_series(LineSeries::new(
                [(SegmentValue::Exact(0), 1.0), (SegmentValue::Last, 1.0)],
                BASELINE.stroke_width(1),
            ))?
            .label("random (lift 1)")
            .legend(legend_line(BASELINE));
        legend(&mut chart, SeriesLabelPosition::UpperRight)
    })
}

fn importance_svg(top: &[(String, f64)]) -> Drawn {
    // Long feature names are cut so the label column stays readable.
    let names: Vec<String> = top
        .iter()
        .map(|(name, _)| {
            if name.chars().count() > 32 {
                format!("{}…", name.chars().take(31).collect::<String>())
            } else {
                name.clone()
            }
        })
        .collect();
    let n = names.len();
    let longest = names.iter().map(|s| s.chars().count()).max().unwrap_or(0);
    let label_width = (16 + 7 * longest).min(260) as u32;
    let height = (90 + 24 * n).max(200) as u32;
    let (lo, hi) = span(top.iter().map(|t| t.1).chain([0.0]));
    // Bars start at zero, so the axis must too unless importances are signed.
    let lo = if top.iter().all(|t| t.1 >= 0.0) {
        0.0
    } else {
        lo
    };
    // Row 0 is the bottom of the chart; the most important feature goes on top.
    let row = |i: usize| (n - 1 - i) as i32;
    let last = (n.max(2) - 1) as i32;
    draw_svg((FIG.0 + label_width / 2, height), |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(label_width)
            .build_cartesian_2d(lo..hi, (0i32..last).into_segmented())?;
        let label = |v: &SegmentValue<i32>| match v {
            SegmentValue::Exact(r) | SegmentValue::CenterOf(r) => usize::try_from(*r)
                .ok()
                .and_then(|r| (n - 1).checked_sub(r))
                .and_then(|i| names.get(i))
                .cloned()
                .unwrap_or_default(),
            SegmentValue::Last => String::new(),
        };
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_desc("Importance")
            .bold_line_style(GRID)
            .light_line_style(WHITE)
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 14))
            .y_labels(n.max(2))
            .y_label_formatter(&label)
            .draw()?;
        chart.draw_series(top.iter().enumerate().map(|(i, (_, v))| {
            let mut bar = Rectangle::new(
                [
                    (0.0, SegmentValue::Exact(row(i))),
                    (*v, SegmentValue::Exact(row(i) + 1)),
                ],
                MODEL.mix(0.85).filled(),
            );
            bar.set_margin(3, 3, 0, 0);
            bar
        }))?;
        Ok(())
    })
}

fn timing_svg(rows: &[(u32, f64)]) -> Drawn {
    let pts: Vec<(f64, f64)> = rows
        .iter()
        .filter(|(_, auc)| auc.is_finite())
        .map(|(d, auc)| (f64::from(*d), *auc))
        .collect();
    if pts.is_empty() {
        return Err("no horizon has a defined AUC.".to_string());
    }
    let x = span(pts.iter().map(|p| p.0));
    let lowest = pts.iter().map(|p| p.1).fold(0.5f64, f64::min);
    let y = ((lowest - 0.05).max(0.0), 1.0f64.max(lowest + 0.1));
    draw_svg(FIG, |root| {
        let mut chart = unit_chart(root, x, y)?;
        chart
            .configure_mesh()
            .x_desc("Horizon (days)")
            .y_desc("Holdout ROC AUC")
            .bold_line_style(GRID)
            .light_line_style(WHITE)
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 14))
            .x_label_formatter(&|v| format!("{v:.0}"))
            .draw()?;
        line(&mut chart, &[(x.0, 0.5), (x.1, 0.5)], BASELINE, "chance")?;
        line(&mut chart, &pts, MODEL, "model")?;
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, MODEL.filled())))?;
        let style = TextStyle::from((FONT, 12).into_font())
            .color(&RGBColor(60, 60, 60))
            .pos(Pos::new(HPos::Center, VPos::Bottom));
        chart.draw_series(
            pts.iter()
                .map(|&(d, auc)| Text::new(format!("{auc:.3}"), (d, auc + 0.01), style.clone())),
        )?;
        legend(&mut chart, SeriesLabelPosition::LowerLeft)
    })
}

fn scatter_svg(sample: &[(f64, f64)]) -> Drawn {
    let pts: Vec<(f64, f64)> = sample
        .iter()
        .map(|&(p, a)| (slog1p(p), slog1p(a)))
        .collect();
    // One range for both axes, so the diagonal means "predicted = actual".
    let r = span(pts.iter().flat_map(|&(p, a)| [p, a]));
    draw_svg((FIG.0, FIG.1 + 60), |root| {
        let mut chart = unit_chart(root, r, r)?;
        chart
            .configure_mesh()
            .x_desc("Predicted value (log1p scale)")
            .y_desc("Actual value (log1p scale)")
            .bold_line_style(GRID)
            .light_line_style(WHITE)
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 14))
            .x_label_formatter(&|v| fmt_tick(sexpm1(*v)))
            .y_label_formatter(&|v| fmt_tick(sexpm1(*v)))
            .draw()?;
        chart.draw_series(
            pts.iter()
                .map(|&p| Circle::new(p, 2, MODEL.mix(0.35).filled())),
        )?;
        line(
            &mut chart,
            &[(r.0, r.0), (r.1, r.1)],
            BASELINE,
            "predicted = actual",
        )?;
        legend(&mut chart, SeriesLabelPosition::UpperLeft)
    })
}

fn decile_svg(deciles: &[(f64, f64)]) -> Drawn {
    if deciles.is_empty() {
        return Err("no predictions to group.".to_string());
    }
    // log1p axes like the scatter: value is heavily skewed, and on linear
    // axes the low deciles pile up in one corner.
    let pts: Vec<(f64, f64)> = deciles
        .iter()
        .map(|&(p, a)| (slog1p(p), slog1p(a)))
        .collect();
    let r = span(pts.iter().flat_map(|&(p, a)| [p, a]));
    draw_svg(FIG, |root| {
        let mut chart = unit_chart(root, r, r)?;
        chart
            .configure_mesh()
            .x_desc("Mean predicted value in decile (log1p scale)")
            .y_desc("Mean actual value (log1p scale)")
            .bold_line_style(GRID)
            .light_line_style(WHITE)
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 14))
            .x_label_formatter(&|v| fmt_tick(sexpm1(*v)))
            .y_label_formatter(&|v| fmt_tick(sexpm1(*v)))
            .draw()?;
        line(
            &mut chart,
            &[(r.0, r.0), (r.1, r.1)],
            BASELINE,
            "perfectly calibrated",
        )?;
        line(&mut chart, &pts, MODEL, "model")?;
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, MODEL.filled())))?;
        legend(&mut chart, SeriesLabelPosition::UpperLeft)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator so the tests need no seed plumbing.
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> f64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    fn full_report() -> ReportData {
        let mut rng = Lcg(7);
        let (mut scores, mut labels) = (Vec::new(), Vec::new());
        for _ in 0..3_000 {
            let risk = rng.next();
            scores.push((risk * 0.8 + rng.next() * 0.2).clamp(0.0, 1.0));
            labels.push(rng.next() < risk * 0.6);
        }
        let (mut predicted, mut actual) = (Vec::new(), Vec::new());
        for _ in 0..5_000 {
            let v = (rng.next() * 8.0).exp() - 1.0;
            predicted.push(v);
            actual.push((v * (0.5 + rng.next())).max(0.0));
        }
        ReportData {
            title: "Rapport model v3 — <script>alert(1)</script>".into(),
            version: 3,
            spec_name: "telco".into(),
            source: "data/telco & co.csv".into(),
            trained_at: 1_717_243_200,
            cutoff: Some(1_714_521_600),
            train_rows: 120_000,
            holdout_rows: 3_000,
            data_fingerprint: "9f2c1e".into(),
            metrics: vec![
                ("churn.roc_auc".into(), metrics::roc_auc(&scores, &labels)),
                ("churn.brier".into(), metrics::brier(&scores, &labels)),
                ("value.mae".into(), 123.456),
                ("value.correlation".into(), f64::NAN),
                ("segments.silhouette".into(), 0.41),
                ("rows.skipped".into(), 12.0),
            ],
            churn: Some(ClassifierReport {
                learner: "gbm".into(),
                candidates: vec![("logistic".into(), 0.79), ("gbm".into(), 0.83)],
                calibration: "isotonic".into(),
                holdout_scores: scores,
                holdout_labels: labels,
                importance: (0..30)
                    .map(|i| (format!("feature_{i}<b>"), f64::from(i) * 0.1))
                    .collect(),
            }),
            timing: [(90, 0.74), (30, 0.81), (60, f64::NAN)]
                .into_iter()
                .map(|(days, roc_auc)| TimingReport {
                    days,
                    roc_auc,
                    brier: 0.12,
                    ece: 0.03,
                    calibration: "platt".into(),
                })
                .collect(),
            value: Some(RegressionReport {
                horizon_days: 180,
                predicted,
                actual,
            }),
            segments: vec![
                SegmentReport {
                    id: 0,
                    size: 700,
                    persona: "Loyal <heavy> users".into(),
                    means: vec![("tenure".into(), 40.5), ("spend".into(), 1_234.5)],
                },
                SegmentReport {
                    id: 1,
                    size: 300,
                    persona: "At risk".into(),
                    means: vec![("spend".into(), f64::NAN), ("support_calls".into(), 4.0)],
                },
            ],
            notes: vec!["12 rows skipped: unparseable date".into()],
        }
    }

    #[test]
    fn full_report_has_every_section() {
        let data = full_report();
        let html = render_html(&data);
        if let Ok(path) = std::env::var("RAPPORT_REPORT_EXAMPLE") {
            // Lets a person look at the synthetic report in a browser.
            std::fs::write(path, &html).expect("write example report");
        }
        assert!(html.matches("<svg").count() >= 6, "too few figures");
        assert!(html.contains("Rapport model v3 — &lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!html.contains("<script"));
        assert!(!html.contains("<b>"), "feature names must be escaped");
        let churn = data.churn.as_ref().expect("churn");
        let auc = metrics::roc_auc(&churn.holdout_scores, &churn.holdout_labels);
        assert!(html.contains(&format!("AUC {auc:.4}")));
        assert!(html.contains("n/a"), "NaN metrics show as n/a");
        for section in ["metrics", "churn", "timing", "value", "segments", "notes"] {
            assert!(html.contains(&format!("<section id=\"{section}\">")));
        }
        // Every horizon shows its calibration evidence.
        assert!(html.contains("<th>Brier</th><th>ECE</th><th>calibration</th>"));
        assert_eq!(html.matches("<td>platt</td>").count(), 3);
        // The only URL allowed is the SVG namespace, which is not a fetched resource.
        let rest = html.replace("http://www.w3.org/2000/svg", "");
        assert!(!rest.contains("http://") && !rest.contains("https://"));
        assert!(!html.contains("omitted"), "no figure should be missing");
    }

    #[test]
    fn empty_report_renders_notes_not_figures() {
        let html = render_html(&ReportData::default());
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(!html.contains("<svg"));
        assert!(html.contains("No churn model in this run."));
        assert!(html.contains("No value model in this run."));
        assert!(html.contains("No segmentation in this run."));
    }

    #[test]
    fn degenerate_data_does_not_panic() {
        let cases = [
            ClassifierReport::default(),
            ClassifierReport {
                holdout_scores: vec![0.3; 50],
                holdout_labels: vec![false; 50],
                importance: vec![("only".into(), f64::NAN)],
                ..Default::default()
            },
            ClassifierReport {
                holdout_scores: vec![0.5; 7],
                holdout_labels: vec![true, false, true, false, false, true, false],
                importance: vec![("a".into(), -1.0), ("b".into(), 2.0)],
                ..Default::default()
            },
            ClassifierReport {
                holdout_scores: vec![f64::NAN, 1.5, -0.2, f64::INFINITY, 0.9],
                holdout_labels: vec![true, true, false],
                importance: vec![("same".into(), 0.0), ("same2".into(), 0.0)],
                ..Default::default()
            },
            ClassifierReport {
                holdout_scores: vec![0.8, 0.2],
                holdout_labels: vec![true, true],
                importance: vec![("x".repeat(200), 1e300)],
                ..Default::default()
            },
        ];
        let values = [
            RegressionReport::default(),
            RegressionReport {
                horizon_days: 30,
                predicted: vec![5.0; 3],
                actual: vec![5.0; 3],
            },
            RegressionReport {
                horizon_days: 30,
                predicted: vec![f64::NAN, -50.0, 1e12],
                actual: vec![1.0, -3.0],
            },
        ];
        for (i, churn) in cases.into_iter().enumerate() {
            let data = ReportData {
                metrics: vec![("churn.roc_auc".into(), f64::NAN), ("bare".into(), 1.0)],
                churn: Some(churn),
                timing: vec![TimingReport {
                    days: 30,
                    roc_auc: f64::NAN,
                    brier: f64::NAN,
                    ece: f64::NAN,
                    calibration: String::new(),
                }],
                value: values.get(i).cloned(),
                segments: vec![SegmentReport::default()],
                ..Default::default()
            };
            let html = render_html(&data);
            assert!(html.ends_with("</html>\n"));
            assert!(html.contains("n/a"));
        }
    }

    #[test]
    fn write_html_round_trips() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("report.html");
        let data = full_report();
        write_html(&data, &path).expect("write");
        let back = std::fs::read_to_string(&path).expect("read back");
        assert_eq!(back, render_html(&data));
        let missing = dir.path().join("no/such/dir/report.html");
        assert!(matches!(
            write_html(&data, &missing),
            Err(crate::error::Error::Io(_))
        ));
    }

    #[test]
    fn curves_run_corner_to_corner() {
        let scores = [0.9, 0.8, 0.8, 0.3, 0.1];
        let labels = [true, false, true, false, false];
        let counts = cumulative_counts(&scores, &labels);
        // Tied scores form one step.
        assert_eq!(counts, vec![(1, 0), (2, 1), (2, 2), (2, 3)]);
        let roc = roc_points(&counts, 2, 3);
        assert_eq!(roc.first(), Some(&(0.0, 0.0)));
        assert_eq!(roc.last(), Some(&(1.0, 1.0)));
        let gains = gains_points(&counts, 5, 2);
        assert_eq!(gains.last(), Some(&(1.0, 1.0)));
        let pr = pr_points(&counts, 2);
        assert_eq!(pr.first(), Some(&(0.0, 1.0)));
        assert_eq!(pr.last(), Some(&(1.0, 0.4)));
    }

    #[test]
    fn reliability_bins_match_the_ece() {
        let probs = [0.05, 0.15, 0.15, 0.95, 1.0];
        let labels = [false, true, false, true, true];
        let bins = reliability_bins(&probs, &labels);
        assert_eq!(bins[1].count, 2);
        assert!((bins[1].observed - 0.5).abs() < 1e-12);
        assert_eq!(bins[9].count, 2);
        let ece: f64 = bins
            .iter()
            .map(|b| (b.mean_pred - b.observed).abs() * b.count as f64 / probs.len() as f64)
            .sum();
        assert!((ece - metrics::expected_calibration_error(&probs, &labels)).abs() < 1e-12);
    }

    #[test]
    fn helpers_format_and_sample() {
        assert_eq!(
            esc("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
        assert_eq!(fmt_num(f64::NAN), "n/a");
        assert_eq!(fmt_num(f64::INFINITY), "n/a");
        assert_eq!(fmt_num(0.81234), "0.8123");
        assert_eq!(fmt_num(-1234.0), "-1,234");
        assert_eq!(fmt_count(1_234_567), "1,234,567");
        assert_eq!(fmt_datetime(86_400 + 3_661), "1970-01-02 01:01:01 UTC");
        let pairs: Vec<(f64, f64)> = (0..10_000).map(|i| (f64::from(i), 0.0)).collect();
        let s = sample_evenly(&pairs, MAX_SCATTER);
        assert_eq!(s.len(), MAX_SCATTER);
        assert_eq!(s, sample_evenly(&pairs, MAX_SCATTER));
        assert_eq!(span([2.0, 2.0]), (1.0, 3.0));
        assert_eq!(span([f64::NAN]), (0.0, 1.0));
        assert!((sexpm1(slog1p(-42.0)) + 42.0).abs() < 1e-9);
    }
}
