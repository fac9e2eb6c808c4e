//! The training report: one self-contained HTML file that `rapport train`
//! writes next to the model, for a data scientist to open in a browser.
//!
//! Why HTML with inline SVG: the file has to travel (attached to a ticket,
//! copied off a server) and still open anywhere, so it carries no scripts, no
//! external stylesheets and no network references; every figure is drawn by
//! `plotters`' SVG backend into a string and pasted into the page.
//!
//! The page is a `maud` template, so every name that comes from user data
//! (features, spec, personas, notes) is escaped by the template itself; the
//! only markup inserted unescaped is the SVG that plotters drew (plotters
//! escapes the text it draws) and the page's own constant stylesheet.
//!
//! The numbers come from the training pipeline in a [`ReportData`]; the curves
//! (ROC, precision–recall, reliability, gains), the threshold table and the
//! bootstrap intervals are derived here from the raw holdout scores, with
//! [`crate::model::metrics`] computing every metric so the report and the
//! stored model never disagree on how a value is defined.
//!
//! Everything is defensive about its input: degenerate holdouts (empty, one
//! class, NaN, all-equal scores) produce a one-line note instead of a figure
//! or a table, never a panic.

use std::path::Path;

use maud::{html, Markup, PreEscaped, DOCTYPE};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::error::Result;
use crate::model::metrics;
use crate::numbers;
use crate::time::format_date;

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
    /// Rows in the whole holdout; the scores below may be an even sample of them.
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
    /// The version this one is measured against (the active one), if any.
    pub compare: Option<ComparisonData>,
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
    /// Calibrated probabilities on the holdout (or an even sample of it).
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

/// Another model version's headline numbers, to set this one against.
#[derive(Debug, Clone, Default)]
pub struct ComparisonData {
    pub version: u64,
    pub spec_name: String,
    /// Name and value, named as in [`ReportData::metrics`].
    pub metrics: Vec<(String, f64)>,
}

/// Renders the whole report as one HTML document.
pub fn render_html(data: &ReportData) -> String {
    render_with(data, &Evidence::new(data))
}

fn render_with(data: &ReportData, evidence: &Evidence) -> String {
    let title = if data.title.trim().is_empty() {
        "Rapport training report"
    } else {
        data.title.as_str()
    };
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                // The stylesheet is a constant of this file, not data; escaping
                // it would turn a `>` selector into `&gt;` inside <style>.
                style { (PreEscaped(CSS)) }
            }
            body {
                (header(title, data))
                nav {
                    a href="#metrics" { "Metrics" } " · "
                    a href="#comparison" { "Comparison" } " · "
                    a href="#churn" { "Churn" } " · "
                    a href="#timing" { "Timing" } " · "
                    a href="#value" { "Value" } " · "
                    a href="#segments" { "Segments" } " · "
                    a href="#notes" { "Notes" }
                }
                (metrics_section(&data.metrics, evidence))
                (comparison_section(data, &evidence.headlines))
                (churn_section(data.churn.as_ref(), evidence))
                (timing_section(&data.timing))
                (value_section(data.value.as_ref(), evidence))
                (segments_section(&data.segments))
                (notes_section(&data.notes))
                footer { "Generated by rapport " (env!("CARGO_PKG_VERSION")) "." }
            }
        }
    };
    let mut out = page.into_string();
    out.push('\n');
    out
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
td.better { color: #1a7f37; font-weight: 600; }
td.worse { color: #c62828; font-weight: 600; }
tr.chosen td { font-weight: 600; background: #eef6ee; }
.scroll { overflow-x: auto; }
.figures { display: grid; grid-template-columns: repeat(auto-fit, minmax(460px, 1fr)); gap: 1.2rem; }
figure { margin: 0; border: 1px solid #e4e4e4; border-radius: 4px; padding: 0.5rem; background: #fff; }
figure svg { width: 100%; height: auto; display: block; }
figcaption { font-size: 0.9rem; color: #444; margin-top: 0.3rem; }
p.note { color: #777; font-style: italic; margin: 0.3rem 0; }
p.caption { font-size: 0.9rem; color: #444; margin: 0.2rem 0 0.4rem; }
footer { margin-top: 3rem; color: #999; font-size: 0.85rem; }
";

fn header(title: &str, data: &ReportData) -> Markup {
    let trained = if data.trained_at == 0 {
        numbers::NA.to_string()
    } else {
        fmt_datetime(data.trained_at)
    };
    let cutoff = data.cutoff.map_or_else(|| "none".to_string(), format_date);
    let mut rows: Vec<(&str, String)> = vec![
        ("Version", data.version.to_string()),
        ("Spec", or_na(&data.spec_name)),
        ("Source", or_na(&data.source)),
        ("Trained at", trained),
        ("Cutoff", cutoff),
        ("Train rows", numbers::thousands(data.train_rows)),
        ("Holdout rows", numbers::thousands(data.holdout_rows)),
        ("Data fingerprint", or_na(&data.data_fingerprint)),
    ];
    if let Some(c) = &data.compare {
        rows.push(("Compared with", version_label(c)));
    }
    html! {
        header {
            h1 { (title) }
            dl.summary {
                @for (k, v) in &rows {
                    dt { (k) }
                    dd { (v) }
                }
            }
        }
    }
}

/// Metrics grouped by the prefix before the first dot, the model families
/// first in pipeline order, anything else after in first-seen order; the
/// headline metrics with their bootstrap intervals come first.
fn metrics_section(all: &[(String, f64)], evidence: &Evidence) -> Markup {
    let mut groups: Vec<&str> = vec!["churn", "value", "segments"];
    for (name, _) in all {
        let prefix = name.split_once('.').map_or("", |(p, _)| p);
        if !groups.contains(&prefix) {
            groups.push(prefix);
        }
    }
    let grouped: Vec<(&str, Vec<(&str, f64)>)> = groups
        .into_iter()
        .map(|group| {
            let rows = all
                .iter()
                .filter_map(|(name, v)| match name.split_once('.') {
                    Some((p, rest)) if p == group => Some((rest, *v)),
                    None if group.is_empty() => Some((name.as_str(), *v)),
                    _ => None,
                })
                .collect();
            let heading = match group {
                "churn" => "Churn",
                "value" => "Value",
                "segments" => "Segments",
                "" => "Other",
                other => other,
            };
            (heading, rows)
        })
        .filter(|(_, rows): &(&str, Vec<(&str, f64)>)| !rows.is_empty())
        .collect();
    section(
        "metrics",
        "Metrics",
        html! {
            (headline_table(evidence))
            @if all.is_empty() {
                (note("No metrics were recorded for this run."))
            }
            @for (heading, rows) in &grouped {
                h3 { (heading) }
                table {
                    tr { th { "metric" } th { "value" } }
                    @for (name, v) in rows {
                        tr { td { (name) } td.num { (numbers::metric(*v)) } }
                    }
                }
            }
        },
    )
}

/// The headline metrics, each with its percentile bootstrap interval.
fn headline_table(evidence: &Evidence) -> Markup {
    if evidence.headlines.is_empty() {
        return html! {};
    }
    let churn_rows = evidence.holdout.as_ref().map_or(0, |h| h.labels.len());
    let value_rows = evidence.value.as_ref().map_or(0, |v| v.pairs.len());
    let mut basis = Vec::new();
    for (rows, model) in [(churn_rows, "churn"), (value_rows, "value")] {
        if rows > 0 {
            basis.push(format!(
                "{} rows for {model}",
                numbers::thousands(rows as u64)
            ));
        }
    }
    // Rows before the finite filter: dropped rows are not a sample.
    let kept = evidence
        .holdout
        .as_ref()
        .map_or(0, |h| h.labels.len() + h.dropped)
        .max(evidence.value.as_ref().map_or(0, |v| v.total));
    let sampled = (kept as u64) < evidence.holdout_rows;
    html! {
        h3 { "Headline metrics" }
        p.caption {
            "Each value with its 95% confidence interval from "
            (numbers::thousands(BOOTSTRAP_REPS as u64))
            " bootstrap resamples of the holdout (" (basis.join(", ")) "; percentile "
            "method, fixed seed, so the same model always shows the same interval)."
            @if sampled {
                " The model keeps an even sample of its "
                (numbers::thousands(evidence.holdout_rows))
                " holdout rows for this report, so these values come from that sample; the \
                 full-holdout values are in the tables below."
            }
        }
        table {
            tr { th { "metric" } th { "value" } th { "95% CI" } }
            @for h in &evidence.headlines {
                tr {
                    td { (h.label) }
                    td.num { (numbers::metric(h.value)) }
                    td.num { (fmt_interval(h.interval)) }
                }
            }
        }
    }
}

fn comparison_section(data: &ReportData, headlines: &[Headline]) -> Markup {
    let Some(other) = &data.compare else {
        return section(
            "comparison",
            "Comparison",
            note("No other version to compare with."),
        );
    };
    let cmp = compare_metrics(&data.metrics, &other.metrics);
    let this_label = format!("this version (v{})", data.version);
    let other_label = format!("v{}", other.version);
    section(
        "comparison",
        &format!("Comparison with {}", version_label(other)),
        html! {
            @if cmp.rows.is_empty() {
                (note("The two versions share no metric to compare."))
            } @else {
                p.caption {
                    "Difference is this version minus v" (other.version)
                    "; better and worse follow each metric's direction (AUC, precision and \
                     correlation up, Brier, log loss, ECE and errors down). Each version is \
                     measured on its own holdout; \u{201c}within noise\u{201d} marks a difference \
                     smaller than half this version's 95% interval."
                }
                table {
                    tr {
                        th { "metric" } th { (this_label) } th { (other_label) }
                        th { "difference" } th { "verdict" }
                    }
                    @for row in &cmp.rows {
                        @let verdict = row.verdict();
                        @let noise = verdict.is_directed() && within_noise(row, headlines);
                        tr {
                            td { (row.name) }
                            td.num { (numbers::metric(row.this)) }
                            td.num { (numbers::metric(row.other)) }
                            td.num { (numbers::signed_metric(row.this - row.other)) }
                            td class=[verdict.class()] {
                                (verdict.text()) @if noise { ", within noise" }
                            }
                        }
                    }
                }
            }
            @if cmp.unshared > 0 {
                (note(&format!(
                    "{} metrics appear in only one of the two versions and are not compared.",
                    numbers::thousands(cmp.unshared as u64)
                )))
            }
        },
    )
}

fn churn_section(churn: Option<&ClassifierReport>, evidence: &Evidence) -> Markup {
    let (Some(c), Some(h)) = (churn, evidence.holdout.as_ref()) else {
        return section("churn", "Churn", note("No churn model in this run."));
    };
    let positives = h.positives();
    let kept = c.holdout_scores.len().max(c.holdout_labels.len()) as u64;
    section(
        "churn",
        "Churn",
        html! {
            p {
                "Chosen learner: " strong { (or_na(&c.learner)) }
                "; calibration: " strong { (or_na(&c.calibration)) } "."
            }
            @if !c.candidates.is_empty() {
                table {
                    tr { th { "candidate learner" } th { "held-out ROC AUC" } }
                    @for (name, auc) in &c.candidates {
                        @let chosen = *name == c.learner;
                        tr.chosen[chosen] {
                            td { (name) @if chosen { " (chosen)" } }
                            td.num { (numbers::metric(*auc)) }
                        }
                    }
                }
            }
            p {
                "Holdout: " (numbers::thousands(h.labels.len() as u64)) " rows, "
                (numbers::thousands(positives as u64)) " churned ("
                (numbers::percent(positives as f64 / h.labels.len().max(1) as f64)) ")."
            }
            @if kept > 0 && kept < evidence.holdout_rows {
                (note(&format!(
                    "These are an even sample of {} of the {} holdout rows, the most the \
                     model keeps for its report; the figures, intervals and thresholds use \
                     that sample.",
                    numbers::thousands(kept),
                    numbers::thousands(evidence.holdout_rows)
                )))
            }
            @if h.dropped > 0 {
                (note(&format!(
                    "{} holdout rows were left out of the figures: non-finite score or no label.",
                    numbers::thousands(h.dropped as u64)
                )))
            }
            (threshold_table(h))
            div.figures {
                (churn_figures(h, &evidence.headlines))
                (importance_figure(&c.importance))
            }
        },
    )
}

/// Precision, recall and lift at the score cut-offs a campaign would use.
fn threshold_table(h: &Holdout) -> Markup {
    let positives = h.positives();
    if h.labels.is_empty() || positives == 0 {
        return html! {
            h3 { "Thresholds" }
            (note(if h.labels.is_empty() {
                "Threshold table omitted: no holdout scores were recorded."
            } else {
                "Threshold table omitted: the holdout has no churned customers."
            }))
        };
    }
    let n = h.labels.len();
    let base = positives as f64 / n as f64;
    let rows = threshold_rows(&h.scores, &h.labels);
    html! {
        h3 { "Thresholds" }
        p.caption {
            "Each row flags every holdout customer scored at or above its threshold; tied \
             scores can make the share flagged larger than the target. Lift is precision \
             over the base rate (" (numbers::percent(base)) ")."
        }
        table {
            tr {
                th { "cut-off" } th { "threshold" } th { "flagged" } th { "share flagged" }
                th { "precision" } th { "recall" } th { "lift" }
            }
            @for r in &rows {
                @let precision = r.precision();
                tr {
                    td { (r.rule) }
                    td.num { (numbers::metric(r.threshold)) }
                    td.num { (numbers::thousands(r.flagged as u64)) }
                    td.num { (numbers::percent(r.flagged as f64 / n as f64)) }
                    td.num { (numbers::percent(precision)) }
                    td.num { (numbers::percent(r.hits as f64 / positives as f64)) }
                    td.num { (numbers::brief(precision / base)) }
                }
            }
        }
    }
}

fn churn_figures(h: &Holdout, headlines: &[Headline]) -> Markup {
    if h.labels.is_empty() {
        return note("Holdout curves omitted: no holdout scores were recorded.");
    }
    let positives = h.positives();
    let negatives = h.labels.len() - positives;
    let base = positives as f64 / h.labels.len() as f64;
    let counts = cumulative_counts(&h.scores, &h.labels);
    let with_ci = |key: &str| {
        headlines
            .iter()
            .find(|x| x.key == key)
            .map_or_else(|| numbers::NA.to_string(), Headline::with_interval)
    };
    html! {
        @if positives == 0 || negatives == 0 {
            (note("ROC curve omitted: the holdout has only one class, so the AUC is undefined."))
        } @else {
            (figure(
                "ROC curve",
                &format!(
                    "ROC curve on the holdout — AUC {} (the diagonal is a random ranking).",
                    with_ci("churn.roc_auc")
                ),
                roc_svg(&roc_points(&counts, positives, negatives)),
            ))
        }
        @if positives == 0 {
            (note("Precision–recall curve omitted: the holdout has no churned customers."))
        } @else {
            (figure(
                "Precision–recall curve",
                &format!(
                    "Precision–recall on the holdout — average precision {} (base rate {}).",
                    with_ci("churn.pr_auc"),
                    numbers::percent(base)
                ),
                pr_svg(&pr_points(&counts, positives), base),
            ))
        }
        (figure(
            "Reliability diagram",
            &format!(
                "Reliability: mean predicted probability vs observed churn rate in 10 \
                 equal-width bins (bars: rows per bin) — ECE {}.",
                with_ci("churn.ece")
            ),
            reliability_svg(&reliability_bins(&h.scores, &h.labels)),
        ))
        @if positives == 0 {
            (note("Cumulative gain and lift omitted: the holdout has no churned customers."))
        } @else {
            (figure(
                "Cumulative gain",
                "Cumulative gain: share of churners reached when contacting the top-scored \
                 share of customers (the diagonal is random contact).",
                gains_svg(&gains_points(&counts, h.labels.len(), positives)),
            ))
            (figure(
                "Lift by decile",
                "Lift by score decile (1 = highest scores): churn rate in the decile over \
                 the overall churn rate.",
                lift_svg(&metrics::lift_by_decile(&h.scores, &h.labels), h.labels.len()),
            ))
        }
    }
}

fn importance_figure(importance: &[(String, f64)]) -> Markup {
    let top = top_importance(importance);
    if top.is_empty() {
        return note("Feature importance omitted: none was recorded.");
    }
    figure(
        "Feature importance",
        &format!(
            "Feature importance, top {} of {} features.",
            top.len(),
            importance.len()
        ),
        importance_svg(&top),
    )
}

fn timing_section(timing: &[TimingReport]) -> Markup {
    let mut rows = timing.to_vec();
    rows.sort_by_key(|t| t.days);
    let aucs: Vec<(u32, f64)> = rows.iter().map(|t| (t.days, t.roc_auc)).collect();
    section(
        "timing",
        "Timing",
        html! {
            @if rows.is_empty() {
                (note("No timing models in this run."))
            } @else {
                div.figures {
                    (figure(
                        "Timing AUC",
                        "Holdout ROC AUC of the calibrated \u{201c}churns within N days\u{201d} \
                         curve, by horizon (0.5 is chance).",
                        timing_svg(&aucs),
                    ))
                    div {
                        table {
                            tr {
                                th { "horizon (days)" } th { "ROC AUC" } th { "Brier" }
                                th { "ECE" } th { "calibration" }
                            }
                            @for t in &rows {
                                tr {
                                    td.num { (t.days) }
                                    td.num { (numbers::metric(t.roc_auc)) }
                                    td.num { (numbers::metric(t.brier)) }
                                    td.num { (numbers::metric(t.ece)) }
                                    td { (or_na(&t.calibration)) }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

fn value_section(value: Option<&RegressionReport>, evidence: &Evidence) -> Markup {
    let (Some(v), Some(points)) = (value, evidence.value.as_ref()) else {
        return section("value", "Value", note("No value model in this run."));
    };
    let pairs = &points.pairs;
    section(
        "value",
        "Value",
        html! {
            p {
                "Value over the next " (v.horizon_days) " days: "
                (numbers::thousands(pairs.len() as u64))
                " holdout customers with a prediction and an outcome."
            }
            @if points.total > 0 && (points.total as u64) < evidence.holdout_rows {
                (note(&format!(
                    "These are an even sample of {} of the {} holdout rows, the most the \
                     model keeps for its report.",
                    numbers::thousands(points.total as u64),
                    numbers::thousands(evidence.holdout_rows)
                )))
            }
            @if pairs.len() < points.total {
                (note(&format!(
                    "{} rows were left out: non-finite value or no matching outcome.",
                    numbers::thousands((points.total - pairs.len()) as u64)
                )))
            }
            @if pairs.is_empty() {
                (note("Value figures omitted: no holdout predictions were recorded."))
            } @else {
                @let sample = sample_evenly(pairs, MAX_SCATTER);
                div.figures {
                    (figure(
                        "Predicted vs actual value",
                        &format!(
                            "Predicted vs actual value, log1p axes ({} of {} points, evenly \
                             sampled); the diagonal is a perfect prediction.",
                            numbers::thousands(sample.len() as u64),
                            numbers::thousands(pairs.len() as u64)
                        ),
                        scatter_svg(&sample),
                    ))
                    (figure(
                        "Value calibration by decile",
                        "Mean actual vs mean predicted value in each predicted-value decile, \
                         log1p axes; points on the diagonal are well calibrated.",
                        decile_svg(&value_deciles(pairs)),
                    ))
                }
            }
        },
    )
}

fn segments_section(segments: &[SegmentReport]) -> Markup {
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
    section(
        "segments",
        "Segments",
        html! {
            @if segments.is_empty() {
                (note("No segmentation in this run."))
            } @else {
                div.scroll {
                    table {
                        tr {
                            th { "id" } th { "size" } th { "share" } th { "persona" }
                            @for c in &columns { th { (c) } }
                        }
                        @for s in segments {
                            tr {
                                td.num { (s.id) }
                                td.num { (numbers::thousands(s.size)) }
                                td.num { (numbers::percent(s.size as f64 / total.max(1) as f64)) }
                                td { (s.persona) }
                                @for c in &columns {
                                    td.num {
                                        @if let Some((_, v)) = s.means.iter().find(|(n, _)| n == c) {
                                            (numbers::brief(*v))
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

fn notes_section(notes: &[String]) -> Markup {
    section(
        "notes",
        "Notes",
        html! {
            @if notes.is_empty() {
                (note("No notes from the training run."))
            } @else {
                ul { @for n in notes { li { (n) } } }
            }
        },
    )
}

/// A drawn figure with its caption, or a one-line note saying why it is missing.
fn figure(name: &str, caption: &str, svg: Drawn) -> Markup {
    match svg {
        // Plotters' own SVG, whose text it escapes; the one unescaped insertion.
        Ok(svg) => html! { figure { (PreEscaped(svg)) figcaption { (caption) } } },
        Err(why) => note(&format!("{name} omitted: {why}")),
    }
}

/// A page section: its anchor, its heading, then `body`.
fn section(id: &str, heading: &str, body: Markup) -> Markup {
    html! { section id=(id) { h2 { (heading) } (body) } }
}

fn note(text: &str) -> Markup {
    html! { p.note { (text) } }
}

// ---------------------------------------------------------------------------
// Formatting

fn or_na(text: &str) -> String {
    if text.trim().is_empty() {
        numbers::NA.to_string()
    } else {
        text.to_string()
    }
}

fn version_label(c: &ComparisonData) -> String {
    if c.spec_name.trim().is_empty() {
        format!("v{}", c.version)
    } else {
        format!("v{} ({})", c.version, c.spec_name)
    }
}

fn fmt_interval(interval: Option<(f64, f64)>) -> String {
    match interval {
        Some((lo, hi)) => format!("{}–{}", numbers::metric(lo), numbers::metric(hi)),
        None => numbers::NA.to_string(),
    }
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

// ---------------------------------------------------------------------------
// Holdout evidence: intervals, thresholds, comparison

const BOOTSTRAP_REPS: usize = 1_000;
const BOOTSTRAP_LEVEL: f64 = 0.95;
/// Fixed so a report re-rendered from the same bundle shows the same intervals.
const BOOTSTRAP_SEED: u64 = 0x7261_7070_6f72_7401;

/// What the sections derive from the raw holdout points, computed once.
struct Evidence {
    holdout_rows: u64,
    holdout: Option<Holdout>,
    value: Option<ValuePoints>,
    headlines: Vec<Headline>,
}

/// The value holdout's (predicted, actual) pairs with both sides finite.
struct ValuePoints {
    pairs: Vec<(f64, f64)>,
    /// Rows before the finite filter.
    total: usize,
}

/// A headline metric recomputed on the report's holdout points, with its interval.
struct Headline {
    /// The metric's name in [`ReportData::metrics`].
    key: &'static str,
    label: &'static str,
    value: f64,
    interval: Option<(f64, f64)>,
}

impl Headline {
    /// "0.8420 (95% CI 0.8310–0.8530)", or just the value when there is no interval.
    fn with_interval(&self) -> String {
        match self.interval {
            Some(_) => format!(
                "{} (95% CI {})",
                numbers::metric(self.value),
                fmt_interval(self.interval)
            ),
            None => numbers::metric(self.value),
        }
    }
}

type PairMetric<A, B> = fn(&[A], &[B]) -> f64;

const CHURN_HEADLINES: [(&str, &str, PairMetric<f64, bool>); 5] = [
    ("churn.roc_auc", "churn ROC AUC", metrics::roc_auc),
    (
        "churn.pr_auc",
        "churn PR AUC (average precision)",
        metrics::pr_auc,
    ),
    ("churn.brier", "churn Brier score", metrics::brier),
    ("churn.log_loss", "churn log loss", metrics::log_loss),
    (
        "churn.ece",
        "churn expected calibration error",
        metrics::expected_calibration_error,
    ),
];

const VALUE_HEADLINES: [(&str, &str, PairMetric<f64, f64>); 3] = [
    ("value.mae", "value MAE", metrics::mae),
    ("value.rmse", "value RMSE", metrics::rmse),
    (
        "value.correlation",
        "value correlation",
        metrics::correlation,
    ),
];

impl Evidence {
    fn new(data: &ReportData) -> Self {
        let holdout = data.churn.as_ref().map(Holdout::new);
        let value = data.value.as_ref().map(|v| ValuePoints {
            pairs: v
                .predicted
                .iter()
                .zip(&v.actual)
                .map(|(p, a)| (*p, *a))
                .filter(|(p, a)| p.is_finite() && a.is_finite())
                .collect(),
            total: v.predicted.len().max(v.actual.len()),
        });
        let mut headlines = Vec::new();
        if let Some(h) = holdout.as_ref().filter(|h| !h.labels.is_empty()) {
            // Sorted by score once: the bootstrap hands over ascending indices,
            // so every resample is already sorted for the rank metrics.
            let mut order: Vec<usize> = (0..h.scores.len()).collect();
            order.sort_by(|&a, &b| h.scores[a].total_cmp(&h.scores[b]));
            let scores: Vec<f64> = order.iter().map(|&i| h.scores[i]).collect();
            let labels: Vec<bool> = order.iter().map(|&i| h.labels[i]).collect();
            headlines.extend(headlines_of(&scores, &labels, &CHURN_HEADLINES));
        }
        if let Some(v) = value.as_ref().filter(|v| !v.pairs.is_empty()) {
            let (predicted, actual): (Vec<f64>, Vec<f64>) = v.pairs.iter().copied().unzip();
            headlines.extend(headlines_of(&predicted, &actual, &VALUE_HEADLINES));
        }
        Self {
            holdout_rows: data.holdout_rows,
            holdout,
            value,
            headlines,
        }
    }
}

/// Each metric on the paired rows `a` and `b`, with its bootstrap interval.
fn headlines_of<A: Copy, B: Copy>(
    a: &[A],
    b: &[B],
    wanted: &[(&'static str, &'static str, PairMetric<A, B>)],
) -> Vec<Headline> {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let (mut ra, mut rb) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let intervals = metrics::bootstrap_intervals(
        n,
        BOOTSTRAP_REPS,
        BOOTSTRAP_SEED,
        BOOTSTRAP_LEVEL,
        wanted.len(),
        |idx, out| {
            ra.clear();
            rb.clear();
            ra.extend(idx.iter().map(|&i| a[i]));
            rb.extend(idx.iter().map(|&i| b[i]));
            for (slot, (_, _, metric)) in out.iter_mut().zip(wanted) {
                *slot = metric(&ra, &rb);
            }
        },
    );
    wanted
        .iter()
        .zip(intervals)
        .map(|(&(key, label, metric), interval)| Headline {
            key,
            label,
            value: metric(a, b),
            interval,
        })
        .collect()
}

/// Top shares of the holdout by score, in percent, and fixed probability cut-offs.
const TOP_PERCENTS: [usize; 5] = [5, 10, 20, 30, 50];
const FIXED_THRESHOLDS: [f64; 3] = [0.3, 0.5, 0.7];

/// One cut-off: everyone scored at or above `threshold` is flagged.
#[derive(Debug, Clone, PartialEq)]
struct ThresholdRow {
    rule: String,
    threshold: f64,
    flagged: usize,
    /// Churners among the flagged.
    hits: usize,
}

impl ThresholdRow {
    /// NaN when nobody is flagged.
    fn precision(&self) -> f64 {
        if self.flagged == 0 {
            f64::NAN
        } else {
            self.hits as f64 / self.flagged as f64
        }
    }
}

/// The threshold table's rows over finite `scores` and their `labels`.
fn threshold_rows(scores: &[f64], labels: &[bool]) -> Vec<ThresholdRow> {
    let n = scores.len().min(labels.len());
    if n == 0 {
        return Vec::new();
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let sorted: Vec<f64> = order.iter().map(|&i| scores[i]).collect();
    // hits_above[k]: churners among the k highest scores.
    let mut hits_above = vec![0usize; n + 1];
    for (k, &i) in order.iter().enumerate() {
        hits_above[k + 1] = hits_above[k] + usize::from(labels[i]);
    }
    let row = |rule: String, threshold: f64| {
        let flagged = sorted.partition_point(|&s| s >= threshold);
        ThresholdRow {
            rule,
            threshold,
            flagged,
            hits: hits_above[flagged],
        }
    };
    let mut rows: Vec<ThresholdRow> = TOP_PERCENTS
        .iter()
        .map(|&pct| {
            // Integer arithmetic: 0.3 * 10 as f64 is 3.0000000000000004.
            let k = (pct * n).div_ceil(100).clamp(1, n);
            row(format!("top {pct}% by score"), sorted[k - 1])
        })
        .collect();
    rows.extend(
        FIXED_THRESHOLDS
            .iter()
            .map(|&t| row(format!("probability \u{2265} {t:.1}"), t)),
    );
    rows
}

/// Which way a metric improves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Higher,
    Lower,
}

/// The direction of a metric from the last part of its name; `None` for
/// descriptive numbers (base rate, means, counts) that are neither.
fn direction(name: &str) -> Option<Direction> {
    let last = name.rsplit('.').next().unwrap_or(name);
    match last {
        "roc_auc" | "pr_auc" | "auc" | "top_decile_lift" | "correlation" | "silhouette"
        | "precision" | "recall" | "r2" => Some(Direction::Higher),
        "brier" | "log_loss" | "ece" | "mae" | "rmse" => Some(Direction::Lower),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Better,
    Worse,
    Same,
    /// A metric with no better direction.
    Undirected,
    /// One side is not finite.
    Undefined,
}

impl Verdict {
    fn text(self) -> &'static str {
        match self {
            Verdict::Better => "better",
            Verdict::Worse => "worse",
            Verdict::Same => "same",
            Verdict::Undirected => "\u{2014}",
            Verdict::Undefined => numbers::NA,
        }
    }

    fn class(self) -> Option<&'static str> {
        match self {
            Verdict::Better => Some("better"),
            Verdict::Worse => Some("worse"),
            _ => None,
        }
    }

    fn is_directed(self) -> bool {
        matches!(self, Verdict::Better | Verdict::Worse)
    }
}

#[derive(Debug, Clone, PartialEq)]
struct ComparisonRow<'a> {
    name: &'a str,
    this: f64,
    other: f64,
}

impl ComparisonRow<'_> {
    fn verdict(&self) -> Verdict {
        let diff = self.this - self.other;
        if !diff.is_finite() {
            return Verdict::Undefined;
        }
        // Relative tolerance: equal up to rounding is "same", not "better".
        let scale = self.this.abs().max(self.other.abs()).max(1.0);
        if diff.abs() <= 1e-9 * scale {
            return Verdict::Same;
        }
        match (direction(self.name), diff > 0.0) {
            (None, _) => Verdict::Undirected,
            (Some(Direction::Higher), true) | (Some(Direction::Lower), false) => Verdict::Better,
            _ => Verdict::Worse,
        }
    }
}

struct Comparison<'a> {
    /// Metrics both versions have, in this version's order.
    rows: Vec<ComparisonRow<'a>>,
    /// Metrics only one of the two has.
    unshared: usize,
}

fn compare_metrics<'a>(this: &'a [(String, f64)], other: &[(String, f64)]) -> Comparison<'a> {
    let rows: Vec<ComparisonRow<'a>> = this
        .iter()
        .filter_map(|(name, v)| {
            other
                .iter()
                .find(|(o, _)| o == name)
                .map(|(_, o)| ComparisonRow {
                    name,
                    this: *v,
                    other: *o,
                })
        })
        .collect();
    let unshared = this
        .iter()
        .filter(|(name, _)| !other.iter().any(|(o, _)| o == name))
        .count()
        + other
            .iter()
            .filter(|(name, _)| !this.iter().any(|(t, _)| t == name))
            .count();
    Comparison { rows, unshared }
}

/// Whether a difference is smaller than half this version's 95% interval:
/// the difference of two estimates is noisier than either, so such a
/// difference says nothing.
fn within_noise(row: &ComparisonRow<'_>, headlines: &[Headline]) -> bool {
    headlines
        .iter()
        .find(|h| h.key == row.name)
        .and_then(|h| h.interval)
        .is_some_and(|(lo, hi)| (row.this - row.other).abs() < (hi - lo) / 2.0)
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
            .y_label_formatter(&|v| numbers::short(*v))
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
                    numbers::thousands(b.count as u64),
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
            .x_label_formatter(&|v| numbers::short(sexpm1(*v)))
            .y_label_formatter(&|v| numbers::short(sexpm1(*v)))
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
            .x_label_formatter(&|v| numbers::short(sexpm1(*v)))
            .y_label_formatter(&|v| numbers::short(sexpm1(*v)))
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
            compare: Some(ComparisonData {
                version: 2,
                spec_name: "telco".into(),
                metrics: vec![
                    ("churn.roc_auc".into(), 0.70),
                    ("churn.brier".into(), 0.30),
                    ("value.mae".into(), 100.0),
                ],
            }),
        }
    }

    /// The full report's evidence and page, computed once: the bootstrap
    /// takes seconds in an unoptimised test build.
    fn full() -> &'static (Evidence, String) {
        static FULL: std::sync::OnceLock<(Evidence, String)> = std::sync::OnceLock::new();
        FULL.get_or_init(|| {
            let data = full_report();
            let evidence = Evidence::new(&data);
            let html = render_with(&data, &evidence);
            (evidence, html)
        })
    }

    fn full_html() -> &'static str {
        &full().1
    }

    #[test]
    fn full_report_has_every_section() {
        let data = full_report();
        let html = full_html();
        if let Ok(path) = std::env::var("RAPPORT_REPORT_EXAMPLE") {
            // Lets a person look at the synthetic report in a browser.
            std::fs::write(path, html).expect("write example report");
        }
        assert!(html.matches("<svg").count() >= 6, "too few figures");
        assert!(html.contains("Rapport model v3 — &lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!html.contains("<script"));
        assert!(!html.contains("<b>"), "feature names must be escaped");
        let churn = data.churn.as_ref().expect("churn");
        let auc = metrics::roc_auc(&churn.holdout_scores, &churn.holdout_labels);
        assert!(html.contains(&format!("AUC {auc:.4}")));
        assert!(html.contains("n/a"), "NaN metrics show as n/a");
        for section in [
            "metrics",
            "comparison",
            "churn",
            "timing",
            "value",
            "segments",
            "notes",
        ] {
            assert!(html.contains(&format!("<section id=\"{section}\">")));
        }
        // Every horizon shows its calibration evidence.
        assert!(html.contains("<th>Brier</th><th>ECE</th><th>calibration</th>"));
        assert_eq!(html.matches("<td>platt</td>").count(), 3);
        // The only URL allowed is the SVG namespace, which is not a fetched resource.
        let rest = html.replace("http://www.w3.org/2000/svg", "");
        assert!(!rest.contains("http://") && !rest.contains("https://"));
        assert!(!html.contains("omitted"), "no figure should be missing");
        assert!(html.contains("1,000 bootstrap resamples of the holdout"));
        assert!(html.contains("<h3>Thresholds</h3>"));
        assert!(html.contains("Comparison with v2 (telco)"));
    }

    #[test]
    fn headline_intervals_bracket_the_holdout_metrics() {
        let data = full_report();
        let evidence = &full().0;
        let churn = data.churn.as_ref().expect("churn");
        let value = data.value.as_ref().expect("value");
        let (scores, labels) = (&churn.holdout_scores, &churn.holdout_labels);
        let (predicted, actual) = (&value.predicted, &value.actual);
        let expected = [
            ("churn.roc_auc", metrics::roc_auc(scores, labels)),
            ("churn.pr_auc", metrics::pr_auc(scores, labels)),
            ("churn.brier", metrics::brier(scores, labels)),
            ("churn.log_loss", metrics::log_loss(scores, labels)),
            (
                "churn.ece",
                metrics::expected_calibration_error(scores, labels),
            ),
            ("value.mae", metrics::mae(predicted, actual)),
            ("value.rmse", metrics::rmse(predicted, actual)),
            ("value.correlation", metrics::correlation(predicted, actual)),
        ];
        assert_eq!(evidence.headlines.len(), 8);
        for (key, want) in expected {
            let h = evidence.headlines.iter().find(|h| h.key == key).expect(key);
            assert!((h.value - want).abs() < 1e-9 * want.abs().max(1.0), "{key}");
            let (lo, hi) = h.interval.expect("interval");
            assert!(
                lo < h.value && h.value < hi,
                "{key}: {lo} < {} < {hi}",
                h.value
            );
        }
        let auc = &evidence.headlines[0];
        let html = full_html();
        assert!(html.contains(&format!("AUC {}", auc.with_interval())));
        assert!(auc.with_interval().contains(" (95% CI "));
    }

    #[test]
    fn user_controlled_names_come_out_escaped() {
        let evil = "<script>alert('x')</script> & co";
        let data = ReportData {
            title: format!("v1 {evil}"),
            spec_name: evil.into(),
            source: evil.into(),
            data_fingerprint: evil.into(),
            metrics: vec![(format!("churn.{evil}"), 1.5)],
            churn: Some(ClassifierReport {
                learner: evil.into(),
                candidates: vec![(evil.into(), 0.7)],
                calibration: evil.into(),
                holdout_scores: vec![0.9, 0.2, 0.7, 0.1],
                holdout_labels: vec![true, false, true, false],
                importance: vec![(evil.into(), 1.0), ("tenure".into(), 0.5)],
            }),
            timing: vec![TimingReport {
                days: 30,
                calibration: evil.into(),
                ..Default::default()
            }],
            segments: vec![SegmentReport {
                id: 0,
                size: 4,
                persona: evil.into(),
                means: vec![(evil.into(), 1.0)],
            }],
            notes: vec![evil.into()],
            compare: Some(ComparisonData {
                version: 1,
                spec_name: evil.into(),
                metrics: vec![(format!("churn.{evil}"), 1.0)],
            }),
            ..Default::default()
        };
        let html = render_html(&data);
        assert!(!html.contains("<script"), "a raw <script> got through");
        assert!(!html.contains(evil));
        // Every place the name went: header, tables, notes, the importance SVG.
        let escaped = html.matches("&lt;script&gt;alert(").count();
        assert!(escaped >= 12, "only {escaped} escaped copies");
        assert!(html.contains("&lt;/script&gt; &amp; co"));
        // No bare ampersand: each one starts an entity.
        for (i, _) in html.match_indices('&') {
            let rest = &html[i..];
            assert!(
                ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;", "&#"]
                    .iter()
                    .any(|e| rest.starts_with(e)),
                "bare & at {i}: {}",
                &rest[..rest.len().min(20)]
            );
        }
    }

    #[test]
    fn threshold_rows_count_a_hand_made_holdout() {
        // Shuffled so the function has to sort: scores 0.95 down to 0.05,
        // churners at 0.95, 0.85, 0.65 and 0.35 (4 of 10, base rate 40%).
        let rows: [(f64, bool); 10] = [
            (0.45, false),
            (0.95, true),
            (0.05, false),
            (0.65, true),
            (0.25, false),
            (0.85, true),
            (0.15, false),
            (0.55, false),
            (0.35, true),
            (0.75, false),
        ];
        let (scores, labels): (Vec<f64>, Vec<bool>) = rows.into_iter().unzip();
        let got: Vec<(String, f64, usize, usize)> = threshold_rows(&scores, &labels)
            .into_iter()
            .map(|r| (r.rule, r.threshold, r.flagged, r.hits))
            .collect();
        let want = [
            ("top 5% by score", 0.95, 1, 1),
            ("top 10% by score", 0.95, 1, 1),
            ("top 20% by score", 0.85, 2, 2),
            ("top 30% by score", 0.75, 3, 2),
            ("top 50% by score", 0.55, 5, 3),
            ("probability \u{2265} 0.3", 0.3, 7, 4),
            ("probability \u{2265} 0.5", 0.5, 5, 3),
            ("probability \u{2265} 0.7", 0.7, 3, 2),
        ]
        .map(|(rule, t, f, h)| (rule.to_string(), t, f, h));
        assert_eq!(got, want);

        let data = ReportData {
            holdout_rows: 10,
            churn: Some(ClassifierReport {
                holdout_scores: scores,
                holdout_labels: labels,
                ..Default::default()
            }),
            ..Default::default()
        };
        let html = render_html(&data);
        // Top 30%: precision 2/3, recall 2/4, lift (2/3) / 0.4.
        assert!(html.contains(
            "<tr><td>top 30% by score</td><td class=\"num\">0.7500</td><td class=\"num\">3</td>\
             <td class=\"num\">30.0%</td><td class=\"num\">66.7%</td>\
             <td class=\"num\">50.0%</td><td class=\"num\">1.67</td></tr>"
        ));
        assert!(!html.contains("even sample"), "nothing was sampled");
    }

    #[test]
    fn tied_scores_flag_the_whole_tie_and_empty_cut_offs_show_na() {
        let rows = threshold_rows(&[0.2, 0.2, 0.2, 0.1], &[true, false, false, false]);
        // The top 5% is one row, but a threshold cannot split the tie at 0.2.
        assert_eq!(
            (rows[0].threshold, rows[0].flagged, rows[0].hits),
            (0.2, 3, 1)
        );
        // Nobody is scored 0.3 or above.
        let high = &rows[5];
        assert_eq!((high.flagged, high.hits), (0, 0));
        assert!(high.precision().is_nan());
        let html = render_html(&ReportData {
            churn: Some(ClassifierReport {
                holdout_scores: vec![0.2, 0.2, 0.2, 0.1],
                holdout_labels: vec![true, false, false, false],
                ..Default::default()
            }),
            ..Default::default()
        });
        assert!(html.contains(
            "<tr><td>probability \u{2265} 0.3</td><td class=\"num\">0.3000</td>\
             <td class=\"num\">0</td><td class=\"num\">0.0%</td><td class=\"num\">n/a</td>\
             <td class=\"num\">0.0%</td><td class=\"num\">n/a</td></tr>"
        ));
    }

    #[test]
    fn comparison_follows_each_metrics_direction() {
        let this: Vec<(String, f64)> = [
            ("churn.roc_auc", 0.80),
            ("churn.brier", 0.15),
            ("value.mae", 100.0),
            ("value.correlation", 0.5),
            ("churn.base_rate", 0.2),
            ("churn.ece", f64::NAN),
            ("churn.timing.30d.roc_auc", 0.70),
            ("only.here", 1.0),
        ]
        .map(|(n, v)| (n.to_string(), v))
        .into();
        let other: Vec<(String, f64)> = [
            ("churn.roc_auc", 0.78),
            ("churn.brier", 0.12),
            ("value.mae", 120.0),
            ("value.correlation", 0.5),
            ("churn.base_rate", 0.25),
            ("churn.ece", 0.02),
            ("churn.timing.30d.roc_auc", 0.75),
            ("only.there", 1.0),
        ]
        .map(|(n, v)| (n.to_string(), v))
        .into();
        let cmp = compare_metrics(&this, &other);
        let verdicts: Vec<(&str, Verdict)> =
            cmp.rows.iter().map(|r| (r.name, r.verdict())).collect();
        assert_eq!(
            verdicts,
            [
                ("churn.roc_auc", Verdict::Better),
                ("churn.brier", Verdict::Worse),
                ("value.mae", Verdict::Better),
                ("value.correlation", Verdict::Same),
                ("churn.base_rate", Verdict::Undirected),
                ("churn.ece", Verdict::Undefined),
                ("churn.timing.30d.roc_auc", Verdict::Worse),
            ]
        );
        assert_eq!(cmp.unshared, 2);

        // A difference inside this version's interval is flagged as noise.
        let headline = |interval| Headline {
            key: "churn.roc_auc",
            label: "",
            value: 0.8,
            interval,
        };
        assert!(within_noise(&cmp.rows[0], &[headline(Some((0.75, 0.85)))]));
        assert!(!within_noise(
            &cmp.rows[0],
            &[headline(Some((0.795, 0.805)))]
        ));
        assert!(!within_noise(&cmp.rows[0], &[headline(None)]));

        let html = render_html(&ReportData {
            version: 5,
            metrics: this,
            compare: Some(ComparisonData {
                version: 4,
                spec_name: String::new(),
                metrics: other,
            }),
            ..Default::default()
        });
        assert!(html.contains("<h2>Comparison with v4</h2>"));
        assert!(html.contains(
            "<tr><td>churn.brier</td><td class=\"num\">0.1500</td>\
             <td class=\"num\">0.1200</td><td class=\"num\">+0.0300</td>\
             <td class=\"worse\">worse</td></tr>"
        ));
        assert!(html.contains(
            "<td>value.mae</td><td class=\"num\">100</td><td class=\"num\">120</td>\
             <td class=\"num\">-20</td><td class=\"better\">better</td>"
        ));
        assert!(html.contains("<td>same</td>"));
        assert!(html.contains("2 metrics appear in only one of the two versions"));
    }

    #[test]
    fn a_sampled_holdout_says_so() {
        let data = ReportData {
            holdout_rows: 50_000,
            churn: Some(ClassifierReport {
                holdout_scores: vec![0.9, 0.1, 0.8, 0.3],
                holdout_labels: vec![true, false, false, true],
                ..Default::default()
            }),
            value: Some(RegressionReport {
                horizon_days: 90,
                predicted: vec![1.0, 2.0, 3.0],
                actual: vec![1.5, 2.5, 2.0],
            }),
            ..Default::default()
        };
        let html = render_html(&data);
        assert!(html.contains("an even sample of 4 of the 50,000 holdout rows"));
        assert!(html.contains("an even sample of 3 of the 50,000 holdout rows"));
        assert!(html.contains("The model keeps an even sample of its 50,000 holdout rows"));
    }

    #[test]
    fn empty_report_renders_notes_not_figures() {
        let html = render_html(&ReportData::default());
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(!html.contains("<svg"));
        assert!(html.contains("No churn model in this run."));
        assert!(html.contains("No value model in this run."));
        assert!(html.contains("No segmentation in this run."));
        assert!(html.contains("No other version to compare with."));
        assert!(!html.contains("Headline metrics"));
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
                holdout_rows: 3,
                compare: Some(ComparisonData {
                    metrics: vec![("churn.roc_auc".into(), f64::NAN)],
                    ..Default::default()
                }),
                ..Default::default()
            };
            let html = render_html(&data);
            assert!(html.ends_with("</html>\n"));
            assert!(html.contains("n/a"));
            if i < 2 {
                // Empty, or no churner: nothing to threshold.
                assert!(html.contains("Threshold table omitted"), "case {i}");
            }
        }
        // One class: the AUC and its interval are undefined, the Brier score is not.
        let evidence = Evidence::new(&ReportData {
            churn: Some(ClassifierReport {
                holdout_scores: vec![0.3; 50],
                holdout_labels: vec![false; 50],
                ..Default::default()
            }),
            ..Default::default()
        });
        let by_key = |key| evidence.headlines.iter().find(|h| h.key == key).expect(key);
        assert!(by_key("churn.roc_auc").value.is_nan());
        assert_eq!(by_key("churn.roc_auc").interval, None);
        assert_eq!(by_key("churn.roc_auc").with_interval(), "n/a");
        let (lo, hi) = by_key("churn.brier").interval.expect("brier interval");
        assert!((lo - 0.09).abs() < 1e-12 && (hi - 0.09).abs() < 1e-12);
    }

    #[test]
    fn write_html_round_trips() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("report.html");
        let mut rng = Lcg(11);
        let scores: Vec<f64> = (0..300).map(|_| rng.next()).collect();
        let labels: Vec<bool> = scores.iter().map(|s| rng.next() < *s).collect();
        let data = ReportData {
            churn: Some(ClassifierReport {
                holdout_scores: scores,
                holdout_labels: labels,
                ..Default::default()
            }),
            ..Default::default()
        };
        write_html(&data, &path).expect("write");
        let back = std::fs::read_to_string(&path).expect("read back");
        // A second render: the seeded bootstrap makes the page reproducible.
        assert!(back.contains("95% CI"));
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
        assert_eq!(fmt_interval(Some((0.831, 0.85349))), "0.8310–0.8535");
        assert_eq!(fmt_interval(None), "n/a");
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
