//! The ordered columns a model was trained on (base features, kind,
//! attributes one-hot with the vocabulary learned at training), which turn a
//! relationship and its snapshot into the model's input vector.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::domain::{AttributeValue, Relationship, RelationshipKind};
use crate::error::{Error, Result};
use crate::features::{Absence, BaseFeature, Snapshot};

/// One column of a model's input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Column {
    /// A base feature; `fill` (the training mean where present) stands in
    /// for the models where it is absent, beside its [`Column::Absent`].
    Base {
        feature: BaseFeature,
        fill: f64,
    },
    /// 1 when the relationship lacks what a group of base features needs.
    Absent(Absence),
    Kind(RelationshipKind),
    /// A numeric attribute; `fill` (the training mean) stands in when it is absent.
    Numeric {
        attribute: String,
        fill: f64,
    },
    /// 1 when the attribute is absent.
    Missing {
        attribute: String,
    },
    /// One-hot of a categorical attribute's value.
    Category {
        attribute: String,
        value: String,
    },
    /// 1 when a categorical attribute has a value outside the learned vocabulary.
    OtherCategory {
        attribute: String,
    },
}

impl Column {
    pub fn name(&self) -> String {
        match self {
            Column::Base { feature, .. } => feature.name().to_string(),
            Column::Absent(a) => a.name().to_string(),
            Column::Kind(k) => format!("kind={}", k.as_str()),
            Column::Numeric { attribute, .. } => attribute.clone(),
            Column::Missing { attribute } => format!("{attribute}_missing"),
            Column::Category { attribute, value } => format!("{attribute}={value}"),
            Column::OtherCategory { attribute } => format!("{attribute}=other"),
        }
    }
}

/// Which attributes become features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AttributeSelection {
    /// Every attribute seen at training, typed by its values.
    Auto,
    Named(Vec<String>),
}

/// The feature part of a model spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSpec {
    pub base: Vec<BaseFeature>,
    pub kind: bool,
    pub attributes: AttributeSelection,
    /// Categorical attributes keep their most frequent values; the rest are "other".
    pub max_categories: usize,
    /// Attribute names never used, e.g. ids and labels.
    pub drop: Vec<String>,
}

/// The ordered columns a model was trained on, learned from the training rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSchema {
    pub columns: Vec<Column>,
}

impl FeatureSchema {
    /// Learns columns from training rows: attribute types, fills and vocabularies.
    /// `snapshots` gives base-feature means for imputing (e.g. no survey yet).
    ///
    /// # Errors
    /// `InvalidArgument` when a named attribute never occurs, `Training` when no column is left.
    pub fn learn<'a>(
        spec: &FeatureSpec,
        relationships: impl Iterator<Item = &'a Relationship> + Clone,
        snapshots: &[Snapshot],
    ) -> Result<FeatureSchema> {
        let mut columns = Vec::new();
        for &feature in &spec.base {
            let (sum, n) = snapshots
                .iter()
                .map(|s| s.get(feature))
                .filter(|v| v.is_finite())
                .fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
            let fill = if n > 0 { sum / n as f64 } else { 0.0 };
            columns.push(Column::Base { feature, fill });
        }
        let mut absences: Vec<Absence> = spec.base.iter().filter_map(|f| f.absence()).collect();
        absences.sort_unstable();
        absences.dedup();
        for absence in absences {
            // `has_survey` already says what `no_survey` would.
            let said = absence == Absence::NoSurvey && spec.base.contains(&BaseFeature::HasSurvey);
            if !said && snapshots.iter().any(|s| s.is_absent(absence)) {
                columns.push(Column::Absent(absence));
            }
        }
        let mut rows = 0usize;
        let mut kinds = BTreeSet::new();
        let mut numbers: BTreeMap<&str, (f64, usize)> = BTreeMap::new();
        let mut texts: BTreeMap<&str, BTreeMap<&str, usize>> = BTreeMap::new();
        for r in relationships.clone() {
            rows += 1;
            kinds.insert(r.kind);
            for (name, value) in &r.attributes {
                match value {
                    AttributeValue::Number(v) => {
                        let e = numbers.entry(name).or_default();
                        e.0 += v;
                        e.1 += 1;
                    }
                    AttributeValue::Text(t) => {
                        *texts.entry(name).or_default().entry(t).or_default() += 1
                    }
                }
            }
        }
        if spec.kind && kinds.len() > 1 {
            columns.extend(kinds.iter().map(|k| Column::Kind(*k)));
        }
        let names: Vec<String> = match &spec.attributes {
            AttributeSelection::Auto => {
                let all: BTreeSet<&str> = numbers.keys().chain(texts.keys()).copied().collect();
                all.into_iter().map(str::to_string).collect()
            }
            AttributeSelection::Named(names) => {
                for n in names {
                    if !numbers.contains_key(n.as_str()) && !texts.contains_key(n.as_str()) {
                        return Err(Error::invalid(
                            "features.attributes",
                            format!("attribute {n:?} never occurs in the training data"),
                        ));
                    }
                }
                names.clone()
            }
        };
        for name in names.iter().filter(|n| !spec.drop.contains(n)) {
            if let Some(values) = texts.get(name.as_str()) {
                // Text wins over numbers: a column with any text is categorical.
                let mut by_count: Vec<(&str, usize)> =
                    values.iter().map(|(v, c)| (*v, *c)).collect();
                by_count.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
                if by_count.len() < 2 {
                    continue;
                }
                let keep = spec.max_categories.max(1).min(by_count.len());
                for (value, _) in &by_count[..keep] {
                    columns.push(Column::Category {
                        attribute: name.clone(),
                        value: value.to_string(),
                    });
                }
                if keep < by_count.len() {
                    columns.push(Column::OtherCategory {
                        attribute: name.clone(),
                    });
                }
            } else if let Some((sum, n)) = numbers.get(name.as_str()) {
                columns.push(Column::Numeric {
                    attribute: name.clone(),
                    fill: sum / *n as f64,
                });
                if *n < rows {
                    columns.push(Column::Missing {
                        attribute: name.clone(),
                    });
                }
            }
        }
        if columns.is_empty() {
            return Err(Error::training("the spec leaves no feature column"));
        }
        Ok(FeatureSchema { columns })
    }

    pub fn width(&self) -> usize {
        self.columns.len()
    }

    pub fn names(&self) -> Vec<String> {
        self.columns.iter().map(Column::name).collect()
    }

    /// Whether any column needs events (otherwise aggregates can be skipped).
    pub fn uses_events(&self) -> bool {
        self.columns
            .iter()
            .any(|c| matches!(c, Column::Base { .. }))
    }

    /// Human-readable values, one per column, as reasons and GetRelationship
    /// show them; an absent base feature is `NaN` (see [`Self::to_model_scale`]).
    pub fn raw_values(&self, relationship: &Relationship, snapshot: &Snapshot, out: &mut Vec<f64>) {
        out.clear();
        // `learn` puts an attribute's columns side by side, its categories
        // before their "other": look the attribute up once for all of them
        // and remember whether one of its categories matched.
        let mut current: Option<(&str, Option<&AttributeValue>)> = None;
        let mut category_matched = false;
        for c in &self.columns {
            let v = match c {
                Column::Base { feature, .. } => snapshot.get(*feature),
                Column::Absent(absence) => indicator(snapshot.is_absent(*absence)),
                Column::Kind(k) => indicator(relationship.kind == *k),
                Column::Numeric { attribute, fill } => {
                    match attribute_value(
                        relationship,
                        attribute,
                        &mut current,
                        &mut category_matched,
                    ) {
                        Some(v) => v.as_number().unwrap_or(*fill),
                        None => *fill,
                    }
                }
                Column::Missing { attribute } => indicator(
                    attribute_value(relationship, attribute, &mut current, &mut category_matched)
                        .and_then(AttributeValue::as_number)
                        .is_none(),
                ),
                Column::Category { attribute, value } => {
                    let hit = matches!(
                        attribute_value(relationship, attribute, &mut current, &mut category_matched),
                        Some(v) if v.is_category(value)
                    );
                    category_matched |= hit;
                    indicator(hit)
                }
                Column::OtherCategory { attribute } => {
                    let follows_its_categories = current.is_some_and(|(a, _)| a == attribute);
                    match attribute_value(relationship, attribute, &mut current, &mut category_matched) {
                        Some(_) if follows_its_categories => indicator(!category_matched),
                        Some(v) => indicator(!self.columns.iter().any(|c| {
                            matches!(c, Column::Category { attribute: a, value } if a == attribute && v.is_category(value))
                        })),
                        None => 0.0,
                    }
                }
            };
            out.push(v);
        }
    }

    /// Maps raw values to what the models see, in place: an absent base
    /// feature takes its fill, and heavy tails go on a log scale.
    pub fn to_model_scale(&self, values: &mut [f64]) {
        for (v, c) in values.iter_mut().zip(&self.columns) {
            if let Column::Base { feature, fill } = c {
                if !v.is_finite() {
                    *v = *fill;
                }
                if feature.log_scaled() {
                    *v = v.signum() * v.abs().ln_1p();
                }
            }
        }
    }
}

/// `relationship`'s value of `attribute`, looked up once for a run of
/// columns of the same attribute; a new attribute resets `category_matched`.
fn attribute_value<'a>(
    relationship: &'a Relationship,
    attribute: &'a str,
    current: &mut Option<(&'a str, Option<&'a AttributeValue>)>,
    category_matched: &mut bool,
) -> Option<&'a AttributeValue> {
    match *current {
        Some((a, value)) if a == attribute => value,
        _ => {
            let value = relationship.attributes.get(attribute);
            *current = Some((attribute, value));
            *category_matched = false;
            value
        }
    }
}

fn indicator(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}
