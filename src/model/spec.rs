//! Model specs: the TOML files in `models/` that data scientists edit. Parsed
//! leniently into a raw form, then checked into a [`ModelSpec`] whose every
//! value is valid, with one error per bad field.

use serde::{Deserialize, Serialize};

use crate::domain::{ModelSlot, RelationshipKind};
use crate::error::{Error, Result};
use crate::features::{AttributeSelection, BaseFeature, FeatureSpec};
use crate::model::credit::CreditParams;
use crate::model::partnership::PartnerParams;
use crate::model::supply::SupplyParams;
use crate::time::{parse_date, Timestamp};

/// The spec the demo book trains with, built into the binary.
pub const DEMO_SPEC: &str = include_str!("../../models/demo.toml");

/// A checked spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    pub name: String,
    pub source: DataSource,
    pub cutoff: Cutoff,
    pub holdout_fraction: f64,
    pub seed: u64,
    pub features: FeatureSpec,
    pub churn: ChurnParams,
    pub value: ValueParams,
    pub segments: SegmentParams,
    /// What a serious delivery failure is and how supply risk is fitted.
    #[serde(default)]
    pub supplier: SupplyParams,
    /// What a serious late payment is and how accounts' credit risk is fitted.
    #[serde(default)]
    pub account: CreditParams,
    /// The horizon of partners' lapse risk and sourced value.
    #[serde(default)]
    pub partner: PartnerParams,
    /// What a version of this spec must pass to be promoted.
    #[serde(default)]
    pub promotion: PromotionParams,
    /// `data.kind`: the one relationship kind the version is trained on and
    /// serves (its model slot); `None` trains on every kind for the default.
    #[serde(default)]
    pub kind: Option<RelationshipKind>,
}

impl ModelSpec {
    /// The slot a version of this spec serves: its kind's, or the default.
    pub fn slot(&self) -> ModelSlot {
        self.kind.map_or(ModelSlot::Default, ModelSlot::Kind)
    }
}

/// The `[promotion]` section: thresholds a version must meet before
/// PromoteModel makes it active (unless forced with a reason).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromotionParams {
    /// Largest population stability index of any feature, live book against
    /// training. The default is 1.0, past the usual 0.25 "major shift" line:
    /// features that grow with time shift for every retrain (a fresh demo
    /// model shows `tenure_days` at PSI 0.33 against the book it was trained
    /// on), while a model of another population shows PSI near 3.
    pub max_psi: f64,
    /// Holdout metrics that must be at least these values (`"churn.roc_auc" = 0.7`).
    pub min_metrics: std::collections::BTreeMap<String, f64>,
    /// Holdout metrics that must be at most these values (`"churn.ece" = 0.05`).
    pub max_metrics: std::collections::BTreeMap<String, f64>,
}

impl Default for PromotionParams {
    fn default() -> Self {
        PromotionParams {
            max_psi: 1.0,
            min_metrics: Default::default(),
            max_metrics: Default::default(),
        }
    }
}

/// Where training rows come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum DataSource {
    /// Relationships and events already in the store.
    Store,
    /// One row per relationship, as exported from a warehouse.
    Table(TableSource),
    /// One row per purchase; features and labels come from the events around the cutoff.
    Events(EventSource),
}

/// A snapshot table: every column is named by the spec, none is assumed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableSource {
    pub path: String,
    /// Ids are the row numbers when absent.
    pub id_column: Option<String>,
    pub label_column: String,
    /// Label values meaning "churned", compared case-insensitively.
    pub positive: Vec<String>,
    /// Spend in the value horizon, when the table has it.
    pub value_column: Option<String>,
    /// Explicit types; other columns are typed from their values.
    pub numeric: Vec<String>,
    pub categorical: Vec<String>,
    pub boolean: Vec<String>,
    pub drop: Vec<String>,
    pub skip_bad_rows: bool,
    /// A column saying which rows are held out (its value is one of
    /// `holdout_values`); it replaces the hashed split of `holdout_fraction`.
    #[serde(default)]
    pub split_column: Option<String>,
    /// Values of `split_column` meaning "held out", lower-cased.
    #[serde(default)]
    pub holdout_values: Vec<String>,
}

/// Values of `data.split_column` that hold a row out unless the spec names others.
pub const DEFAULT_HOLDOUT_VALUES: [&str; 6] = ["test", "holdout", "1", "true", "yes", "y"];

/// A purchase log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventSource {
    pub path: String,
    pub id_column: String,
    pub time_column: String,
    /// `strftime`-like (`%Y %m %d %H %M %S`), or "auto" for ISO dates and Unix seconds.
    pub time_format: String,
    /// The purchase amount; or `price_column` × `quantity_column`.
    pub amount_column: Option<String>,
    pub price_column: Option<String>,
    pub quantity_column: Option<String>,
    pub product_column: Option<String>,
    pub skip_bad_rows: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Cutoff {
    /// As late as the data allows every label to be observed.
    Auto,
    At(Timestamp),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChurnParams {
    /// `churn_probability` is the curve at this horizon (one of `timing_horizons_days`).
    pub horizon_days: u32,
    /// A relationship churns on the day it completes this many days without
    /// a purchase (from its last purchase, or its start when it has none).
    pub inactivity_days: u32,
    /// Horizons of the timing curve, ascending; `horizon_days` is one of them.
    pub timing_horizons_days: Vec<u32>,
    pub l2: f64,
    pub max_iterations: u64,
    /// Learners competing on held-out rows: "logistic", "boosting".
    pub learners: Vec<String>,
    /// The churn and timing learners fit on a seeded sample of at most this
    /// many training rows (evaluation still uses every holdout row).
    #[serde(default = "default_max_fit_rows")]
    pub max_fit_rows: usize,
    pub seed: u64,
}

/// Past ~200k rows the churn AUC of the demo book gains under 0.002 while
/// fitting time grows linearly (BENCHMARKS.md, training at 1M).
pub const DEFAULT_MAX_FIT_ROWS: usize = 200_000;

fn default_max_fit_rows() -> usize {
    DEFAULT_MAX_FIT_ROWS
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValueParams {
    /// Value = spend within this many days after the cutoff.
    pub horizon_days: u32,
    /// Ridge penalty of the log-spend regression.
    pub l2: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentParams {
    /// Feature columns (schema names) the clusters are learned on.
    pub features: Vec<String>,
    /// k-means is fitted for every k in this range; the best silhouette wins.
    pub clusters_min: usize,
    pub clusters_max: usize,
    pub seed: u64,
}

impl ChurnParams {
    pub fn longest_horizon(&self) -> u32 {
        self.timing_horizons_days.last().copied().unwrap_or(0)
    }
}

impl ModelSpec {
    /// Days of data after the cutoff that observe every label: the longest
    /// timing horizon (a relationship's churn day is known once it is past)
    /// and the value horizon.
    pub fn label_window_days(&self) -> u32 {
        self.churn.longest_horizon().max(self.value.horizon_days)
    }

    /// Parses and checks a spec; `path` names the file in errors.
    ///
    /// # Errors
    /// `BadInput` naming the file, the field and the reason.
    pub fn parse(path: &str, text: &str) -> Result<ModelSpec> {
        let raw: RawSpec = toml::from_str(text).map_err(|e| Error::BadInput {
            path: path.to_string(),
            reason: e.to_string(),
        })?;
        raw.check().map_err(|e| Error::BadInput {
            path: path.to_string(),
            reason: e.to_string(),
        })
    }

    pub fn demo() -> ModelSpec {
        ModelSpec::parse("models/demo.toml", DEMO_SPEC).expect("the built-in demo spec is valid")
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    name: String,
    #[serde(default)]
    data: RawData,
    #[serde(default)]
    features: RawFeatures,
    #[serde(default)]
    churn: RawChurn,
    #[serde(default)]
    value: RawValue,
    #[serde(default)]
    segments: RawSegments,
    #[serde(default)]
    supplier: SupplyParams,
    #[serde(default)]
    account: CreditParams,
    #[serde(default)]
    partner: PartnerParams,
    #[serde(default)]
    promotion: RawPromotion,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawPromotion {
    max_psi: f64,
    min: std::collections::BTreeMap<String, f64>,
    max: std::collections::BTreeMap<String, f64>,
}

impl Default for RawPromotion {
    fn default() -> Self {
        let d = PromotionParams::default();
        RawPromotion {
            max_psi: d.max_psi,
            min: d.min_metrics,
            max: d.max_metrics,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawData {
    source: String,
    kind: Option<String>,
    path: Option<String>,
    cutoff: String,
    holdout_fraction: f64,
    seed: u64,
    id_column: Option<String>,
    label_column: Option<String>,
    positive: Vec<String>,
    value_column: Option<String>,
    numeric: Vec<String>,
    categorical: Vec<String>,
    boolean: Vec<String>,
    drop: Vec<String>,
    bad_rows: String,
    time_column: Option<String>,
    time_format: String,
    amount_column: Option<String>,
    price_column: Option<String>,
    quantity_column: Option<String>,
    product_column: Option<String>,
    split_column: Option<String>,
    holdout_values: Vec<String>,
}

impl Default for RawData {
    fn default() -> Self {
        RawData {
            source: "store".into(),
            kind: None,
            path: None,
            cutoff: "auto".into(),
            holdout_fraction: 0.2,
            seed: 42,
            id_column: None,
            label_column: None,
            positive: ["yes", "y", "true", "1", "churn", "churned"]
                .map(String::from)
                .to_vec(),
            value_column: None,
            numeric: vec![],
            categorical: vec![],
            boolean: vec![],
            drop: vec![],
            bad_rows: "skip".into(),
            time_column: None,
            time_format: "auto".into(),
            amount_column: None,
            price_column: None,
            quantity_column: None,
            product_column: None,
            split_column: None,
            holdout_values: DEFAULT_HOLDOUT_VALUES.map(String::from).to_vec(),
        }
    }
}

impl RawData {
    fn source(&self) -> Result<DataSource> {
        let skip_bad_rows = match self.bad_rows.as_str() {
            "skip" => true,
            "reject" => false,
            other => {
                return Err(Error::invalid(
                    "data.bad_rows",
                    format!("{other:?}: use \"skip\" or \"reject\""),
                ))
            }
        };
        let need = |field: &str, v: &Option<String>| {
            v.clone().filter(|s| !s.trim().is_empty()).ok_or_else(|| {
                Error::invalid(
                    format!("data.{field}"),
                    format!("is required when source = {:?}", self.source),
                )
            })
        };
        let split_column = self.split_column.clone().filter(|c| !c.trim().is_empty());
        if split_column.is_some() && self.source != "table" {
            return Err(Error::invalid(
                "data.split_column",
                "a split column is read from a table (source = \"table\"); a store or event log is split by a hash of the id (data.holdout_fraction)",
            ));
        }
        if split_column.is_some() && self.holdout_values.is_empty() {
            return Err(Error::invalid(
                "data.holdout_values",
                "must list at least one value of data.split_column that holds a row out",
            ));
        }
        match self.source.as_str() {
            "store" => Ok(DataSource::Store),
            "table" => {
                if self.positive.is_empty() {
                    return Err(Error::invalid(
                        "data.positive",
                        "must list at least one label value",
                    ));
                }
                Ok(DataSource::Table(TableSource {
                    path: need("path", &self.path)?,
                    id_column: self.id_column.clone(),
                    label_column: need("label_column", &self.label_column)?,
                    positive: self
                        .positive
                        .iter()
                        .map(|p| p.trim().to_ascii_lowercase())
                        .collect(),
                    value_column: self.value_column.clone(),
                    numeric: self.numeric.clone(),
                    categorical: self.categorical.clone(),
                    boolean: self.boolean.clone(),
                    drop: self.drop.clone(),
                    skip_bad_rows,
                    split_column,
                    holdout_values: self
                        .holdout_values
                        .iter()
                        .map(|v| v.trim().to_ascii_lowercase())
                        .collect(),
                }))
            }
            "events" => {
                if self.amount_column.is_none() && self.price_column.is_none() {
                    return Err(Error::invalid(
                        "data.amount_column",
                        "name amount_column, or price_column (times quantity_column)",
                    ));
                }
                Ok(DataSource::Events(EventSource {
                    path: need("path", &self.path)?,
                    id_column: need("id_column", &self.id_column)?,
                    time_column: need("time_column", &self.time_column)?,
                    time_format: self.time_format.clone(),
                    amount_column: self.amount_column.clone(),
                    price_column: self.price_column.clone(),
                    quantity_column: self.quantity_column.clone(),
                    product_column: self.product_column.clone(),
                    skip_bad_rows,
                }))
            }
            other => Err(Error::invalid(
                "data.source",
                format!("{other:?}: use \"store\", \"table\" or \"events\""),
            )),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum AllOrList {
    Word(String),
    List(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawFeatures {
    base: AllOrList,
    kind: bool,
    attributes: AllOrList,
    max_categories: usize,
    drop: Vec<String>,
}

impl Default for RawFeatures {
    fn default() -> Self {
        RawFeatures {
            base: AllOrList::Word("all".into()),
            kind: true,
            attributes: AllOrList::Word("auto".into()),
            max_categories: 12,
            drop: vec![],
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawChurn {
    horizon_days: u32,
    inactivity_days: u32,
    timing_horizons_days: Vec<u32>,
    l2: f64,
    max_iterations: u64,
    learners: Vec<String>,
    max_fit_rows: usize,
}

impl Default for RawChurn {
    fn default() -> Self {
        RawChurn {
            horizon_days: 90,
            inactivity_days: 90,
            timing_horizons_days: vec![30, 90, 180, 365],
            l2: 1.0,
            max_iterations: 200,
            learners: vec!["logistic".into(), "boosting".into()],
            max_fit_rows: DEFAULT_MAX_FIT_ROWS,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawValue {
    horizon_days: u32,
    l2: f64,
}

impl Default for RawValue {
    fn default() -> Self {
        RawValue {
            horizon_days: 365,
            l2: 1.0,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawSegments {
    features: Vec<String>,
    clusters: Clusters,
    seed: u64,
}

/// `clusters = 6`, or `clusters = [3, 8]` to choose k by silhouette.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Clusters {
    Fixed(usize),
    Range(Vec<usize>),
}

impl Default for RawSegments {
    fn default() -> Self {
        RawSegments {
            features: [
                "recency_days",
                "frequency_per_year",
                "monetary_avg",
                "product_breadth",
                "tickets_90d",
                "tenure_days",
            ]
            .map(String::from)
            .to_vec(),
            clusters: Clusters::Range(vec![4, 8]),
            seed: 7,
        }
    }
}

impl RawSpec {
    fn check(self) -> Result<ModelSpec> {
        let supplier = self.supplier.clone();
        supplier
            .check()
            .map_err(|reason| Error::invalid("supplier", reason))?;
        let account = self.account.clone();
        account
            .check()
            .map_err(|reason| Error::invalid("account", reason))?;
        let partner = self.partner.clone();
        partner
            .check()
            .map_err(|reason| Error::invalid("partner", reason))?;
        if self.name.trim().is_empty() {
            return Err(Error::invalid("name", "must not be empty"));
        }
        let source = self.data.source()?;
        let kind = self
            .data
            .kind
            .as_deref()
            .map(|k| RelationshipKind::parse("data.kind", k))
            .transpose()?;
        if kind.is_some() && !matches!(source, DataSource::Store) {
            return Err(Error::invalid(
                "data.kind",
                "a model for one kind is trained from the store (data.source = \"store\"), whose relationships have kinds",
            ));
        }
        let cutoff = match self.data.cutoff.trim() {
            "auto" => Cutoff::Auto,
            date => Cutoff::At(parse_date("data.cutoff", date)?),
        };
        let fraction = self.data.holdout_fraction;
        if fraction != 0.0 && !(0.05..=0.5).contains(&fraction) {
            return Err(Error::invalid(
                "data.holdout_fraction",
                format!("{fraction} is outside [0.05, 0.5] (or 0: train on every row, no holdout metrics)"),
            ));
        }
        let base = match self.features.base {
            AllOrList::Word(w) if w == "all" => BaseFeature::ALL.to_vec(),
            AllOrList::Word(w) if w == "none" => vec![],
            AllOrList::Word(w) => {
                return Err(Error::invalid(
                    "features.base",
                    format!("{w:?}: use \"all\", \"none\" or a list"),
                ))
            }
            AllOrList::List(names) => names
                .iter()
                .map(|n| BaseFeature::parse("features.base", n))
                .collect::<Result<_>>()?,
        };
        let attributes = match self.features.attributes {
            AllOrList::Word(w) if w == "auto" => AttributeSelection::Auto,
            AllOrList::Word(w) if w == "none" => AttributeSelection::Named(vec![]),
            AllOrList::Word(w) => {
                return Err(Error::invalid(
                    "features.attributes",
                    format!("{w:?}: use \"auto\", \"none\" or a list"),
                ))
            }
            AllOrList::List(names) => AttributeSelection::Named(names),
        };
        if self.features.max_categories == 0 || self.features.max_categories > 200 {
            return Err(Error::invalid(
                "features.max_categories",
                "must be in 1..=200",
            ));
        }
        let c = self.churn;
        if c.horizon_days == 0 || c.horizon_days > 3650 {
            return Err(Error::invalid("churn.horizon_days", "must be in 1..=3650"));
        }
        if c.timing_horizons_days.windows(2).any(|w| w[0] >= w[1])
            || c.timing_horizons_days.first() == Some(&0)
        {
            return Err(Error::invalid(
                "churn.timing_horizons_days",
                "must be positive and strictly ascending",
            ));
        }
        if !c.timing_horizons_days.contains(&c.horizon_days) {
            return Err(Error::invalid(
                "churn.horizon_days",
                format!(
                    "{} must be one of churn.timing_horizons_days {:?}: churn_probability is the timing curve read at this horizon",
                    c.horizon_days, c.timing_horizons_days
                ),
            ));
        }
        if c.inactivity_days == 0 || c.inactivity_days > 3650 {
            return Err(Error::invalid(
                "churn.inactivity_days",
                "must be in 1..=3650",
            ));
        }
        check_l2("churn.l2", c.l2)?;
        if c.max_iterations == 0 {
            return Err(Error::invalid("churn.max_iterations", "must be at least 1"));
        }
        if c.max_fit_rows < 1_000 {
            return Err(Error::invalid(
                "churn.max_fit_rows",
                "must be at least 1000",
            ));
        }
        if c.learners.is_empty() {
            return Err(Error::invalid(
                "churn.learners",
                "must name at least one learner",
            ));
        }
        for l in &c.learners {
            if !crate::model::CHURN_LEARNERS.contains(&l.as_str()) {
                return Err(Error::invalid(
                    "churn.learners",
                    format!(
                        "unknown learner {l:?}; known: {}",
                        crate::model::CHURN_LEARNERS.join(", ")
                    ),
                ));
            }
        }
        let v = self.value;
        if v.horizon_days == 0 || v.horizon_days > 3650 {
            return Err(Error::invalid("value.horizon_days", "must be in 1..=3650"));
        }
        check_l2("value.l2", v.l2)?;
        let s = self.segments;
        let (clusters_min, clusters_max) = match s.clusters {
            Clusters::Fixed(k) => (k, k),
            Clusters::Range(r) if r.len() == 2 => (r[0], r[1]),
            Clusters::Range(_) => {
                return Err(Error::invalid(
                    "segments.clusters",
                    "a range is two numbers: [min, max]",
                ))
            }
        };
        if !(2..=50).contains(&clusters_min) || !(clusters_min..=50).contains(&clusters_max) {
            return Err(Error::invalid(
                "segments.clusters",
                "must be in 2..=50, min before max",
            ));
        }
        if s.features.is_empty() {
            return Err(Error::invalid(
                "segments.features",
                "must name at least one feature",
            ));
        }
        let p = self.promotion;
        if !p.max_psi.is_finite() || p.max_psi <= 0.0 {
            return Err(Error::invalid(
                "promotion.max_psi",
                format!("{} must be finite and > 0", p.max_psi),
            ));
        }
        for (table, bounds) in [("promotion.min", &p.min), ("promotion.max", &p.max)] {
            if let Some((name, v)) = bounds.iter().find(|(_, v)| !v.is_finite()) {
                return Err(Error::invalid(
                    format!("{table}.{name:?}"),
                    format!("{v} must be finite"),
                ));
            }
        }
        Ok(ModelSpec {
            name: self.name,
            source,
            cutoff,
            holdout_fraction: self.data.holdout_fraction,
            seed: self.data.seed,
            features: FeatureSpec {
                base,
                kind: self.features.kind,
                attributes,
                max_categories: self.features.max_categories,
                drop: self.features.drop,
            },
            churn: ChurnParams {
                horizon_days: c.horizon_days,
                inactivity_days: c.inactivity_days,
                timing_horizons_days: c.timing_horizons_days,
                l2: c.l2,
                max_iterations: c.max_iterations,
                learners: c.learners,
                max_fit_rows: c.max_fit_rows,
                seed: self.data.seed,
            },
            value: ValueParams {
                horizon_days: v.horizon_days,
                l2: v.l2,
            },
            segments: SegmentParams {
                features: s.features,
                clusters_min,
                clusters_max,
                seed: s.seed,
            },
            supplier,
            account,
            partner,
            promotion: PromotionParams {
                max_psi: p.max_psi,
                min_metrics: p.min,
                max_metrics: p.max,
            },
            kind,
        })
    }
}

fn check_l2(field: &str, v: f64) -> Result<()> {
    if !v.is_finite() || v < 0.0 {
        return Err(Error::invalid(
            field,
            format!("{v} must be finite and >= 0"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_spec_parses() {
        let spec = ModelSpec::demo();
        assert_eq!(spec.churn.horizon_days, 90);
        assert!(spec.label_window_days() >= spec.value.horizon_days);
    }

    #[test]
    fn bad_fields_are_named() {
        let err =
            ModelSpec::parse("x.toml", "name = \"x\"\n[churn]\nhorizon_days = 0\n").unwrap_err();
        assert!(err.to_string().contains("churn.horizon_days"), "{err}");
        let err = ModelSpec::parse("x.toml", "name = \"x\"\n[features]\nbase = [\"nope\"]\n")
            .unwrap_err();
        assert!(
            err.to_string().contains("unknown feature \"nope\""),
            "{err}"
        );
        let err = ModelSpec::parse("x.toml", "name = \"x\"\ncolour = 3\n").unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
    }

    #[test]
    fn an_impossible_cutoff_date_is_refused_with_its_key() {
        let err = ModelSpec::parse("x.toml", "name = \"x\"\n[data]\ncutoff = \"2025-02-31\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("data.cutoff") && err.contains("2025-02-31"),
            "{err}"
        );
    }
}
