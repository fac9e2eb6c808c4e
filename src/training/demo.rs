//! The demo book: a deterministic, realistic set of relationships, products
//! and events that the service ingests and trains on at first start, so a new
//! install answers every RPC with something meaningful before any real data
//! arrives.
//!
//! The story follows the buy-till-you-die models the scorers are built on
//! (Pareto/NBD and BG/NBD for purchases, Gamma-Gamma for spend). Each
//! relationship draws a purchase rate, a dropout probability applied after
//! every purchase, and a mean spend; purchases are a Poisson process until it
//! drops out or the book ends, and a few lapsed ones come back after more than
//! a year. Around that skeleton sit the signals a churn model should be able
//! to learn: support tickets and complaints that are more frequent for fragile
//! relationships and rise in the months before dropout, survey scores that
//! sag, logins that fade, and (for accounts and suppliers) invoices paid later
//! and later. Baskets come from a small catalogue with skewed popularity,
//! basic/pro tiers in some families and a few truly complementary pairs (a
//! printer makes toner purchases likely), so the recommender and the lift
//! statistics have real structure to find.
//!
//! Every relationship is generated from `(seed, index)` alone, so a book of a
//! million relationships can be streamed or generated in parallel, and the
//! same configuration always yields byte-identical output.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_distr::{Beta, Distribution, Exp1, Gamma, LogNormal, StandardNormal};
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::domain::{
    AttributeValue, Event, EventBody, InteractionKind, Product, Relationship, RelationshipKind,
    MIN_TIMESTAMP,
};
use crate::time::{Timestamp, SECONDS_PER_DAY};

const DAY: f64 = SECONDS_PER_DAY as f64;
const DAYS_PER_MONTH: f64 = 30.44;
const DAYS_PER_YEAR: f64 = 365.25;

/// Salt for the catalogue's generator, so its stream never lines up with a relationship's.
const CATALOGUE_SALT: u64 = 0xC47A_1061_E5EE_D5A1;
/// Seeds the kind-specific stream (`demo_kinds`), apart from the shared one.
const KINDS_SALT: u64 = 0x5D9B_71E3_0A44_C2F7;

/// Share of relationships that never buy (leads in the CRM).
const PROSPECT_SHARE: f64 = 0.03;
/// Share of dropped relationships that come back after a long silence.
const WIN_BACK_SHARE: f64 = 0.03;
/// Silence before a win-back: over a year, so "won back" is unambiguous.
const WIN_BACK_MIN_GAP_DAYS: f64 = 370.0;
/// How long before dropout the warning signs build up.
const WARNING_DAYS: f64 = 120.0;
/// How long a dropped relationship still logs in or complains after its last purchase.
const AFTERGLOW_DAYS: f64 = 45.0;
/// Payment terms on an invoice; `days_late` counts from the due date.
const PAYMENT_TERMS_DAYS: f64 = 14.0;
/// Width, in log-price, of how far from its budget a basket line strays.
const PRICE_KERNEL_WIDTH: f64 = 1.1;

/// What the book contains and when it ends.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// Seed for every random draw; the same config always gives the same book.
    pub seed: u64,
    /// Number of relationships in the book.
    pub relationships: usize,
    /// The book's "now": no event or relationship is dated after it.
    pub end: Timestamp,
    /// How far back relationships are created, in days before `end`.
    pub history_days: u32,
}

impl DemoConfig {
    /// A book of 20,000 relationships over four years ending at `end`, seed 42.
    pub fn new(end: Timestamp) -> Self {
        DemoConfig {
            seed: 42,
            relationships: 20_000,
            end,
            history_days: 1_460,
        }
    }
}

/// One catalogue line: id, name, list price, popularity with consumers and
/// with businesses (accounts, suppliers, partners).
type Entry = (&'static str, &'static str, f64, f64, f64);

/// The catalogue by category. Tiered families share a stem (`laptop-basic`,
/// `laptop-pro`) so the tier is readable from the id; popularity is
/// deliberately skewed (mice and chargers sell far more than treadmills).
const CATALOGUE: [(&str, &[Entry]); 8] = [
    (
        "coffee",
        &[
            (
                "espresso-machine-basic",
                "Espresso machine (basic)",
                199.0,
                3.0,
                1.0,
            ),
            (
                "espresso-machine-pro",
                "Espresso machine (pro)",
                649.0,
                1.2,
                1.5,
            ),
            ("coffee-beans", "Coffee beans, 1 kg", 18.0, 0.8, 0.6),
            ("coffee-grinder", "Coffee grinder", 89.0, 1.5, 0.3),
            ("milk-frother", "Milk frother", 39.0, 1.2, 0.2),
        ],
    ),
    (
        "printing",
        &[
            ("printer-basic", "Printer (basic)", 129.0, 2.5, 4.0),
            ("printer-pro", "Printer (pro)", 449.0, 0.5, 3.0),
            ("toner", "Toner cartridge", 59.0, 0.3, 1.0),
            ("paper-ream", "Paper, 500 sheets", 7.0, 2.0, 8.0),
            ("label-maker", "Label maker", 49.0, 0.6, 1.5),
        ],
    ),
    (
        "computing",
        &[
            ("laptop-basic", "Laptop (basic)", 549.0, 4.0, 6.0),
            ("laptop-pro", "Laptop (pro)", 1899.0, 1.5, 4.0),
            ("laptop-sleeve", "Laptop sleeve", 29.0, 0.4, 0.3),
            ("monitor-basic", "Monitor (basic)", 179.0, 3.0, 6.0),
            ("monitor-pro", "Monitor (pro)", 549.0, 0.8, 3.0),
            ("keyboard", "Keyboard", 49.0, 4.0, 5.0),
            ("mouse", "Mouse", 25.0, 12.0, 8.0),
            ("usb-c-hub", "USB-C hub", 39.0, 3.0, 4.0),
        ],
    ),
    (
        "phones",
        &[
            ("phone-basic", "Phone (basic)", 299.0, 6.0, 2.0),
            ("phone-pro", "Phone (pro)", 1099.0, 2.5, 2.0),
            ("phone-case", "Phone case", 25.0, 0.6, 0.2),
            ("charger", "Charger", 29.0, 12.0, 3.0),
            ("earbuds", "Earbuds", 129.0, 6.0, 1.0),
        ],
    ),
    (
        "kitchen",
        &[
            ("blender", "Blender", 79.0, 2.0, 0.2),
            ("kettle", "Kettle", 45.0, 3.0, 0.8),
            ("cookware-set", "Cookware set", 199.0, 1.0, 0.1),
            ("knife-set", "Knife set", 119.0, 0.8, 0.1),
        ],
    ),
    (
        "garden",
        &[
            ("lawnmower-basic", "Lawnmower (basic)", 249.0, 1.0, 0.2),
            ("lawnmower-pro", "Lawnmower (pro)", 799.0, 0.3, 0.3),
            ("garden-hose", "Garden hose", 35.0, 1.5, 0.2),
            ("plant-food", "Plant food", 12.0, 1.5, 0.3),
            ("pruning-shears", "Pruning shears", 29.0, 0.8, 0.1),
        ],
    ),
    (
        "fitness",
        &[
            ("yoga-mat", "Yoga mat", 29.0, 2.5, 0.2),
            ("dumbbells", "Dumbbells", 89.0, 1.5, 0.2),
            ("treadmill", "Treadmill", 999.0, 0.4, 0.3),
            ("protein-powder", "Protein powder", 39.0, 2.0, 0.1),
        ],
    ),
    (
        "services",
        &[
            ("extended-warranty", "Extended warranty", 79.0, 2.0, 2.0),
            (
                "cloud-backup-basic",
                "Cloud backup (basic), monthly",
                5.0,
                1.5,
                2.0,
            ),
            (
                "cloud-backup-pro",
                "Cloud backup (pro), monthly",
                15.0,
                0.5,
                3.0,
            ),
            ("setup-service", "Setup service", 99.0, 0.8, 2.5),
        ],
    ),
];

const fn product_count() -> usize {
    let mut n = 0;
    let mut i = 0;
    while i < CATALOGUE.len() {
        n += CATALOGUE[i].1.len();
        i += 1;
    }
    n
}

const PRODUCT_COUNT: usize = product_count();
// Owned products are tracked as bits of a u64.
const _: () = assert!(PRODUCT_COUNT <= 64);

/// Truly complementary pairs: owning any of the anchors makes the complement
/// a likely later (or same-basket) purchase. Consumables are bought again and
/// again by owners; accessories once.
const COMPLEMENTS: [(&[&str], &str, bool); 4] = [
    (
        &["espresso-machine-basic", "espresso-machine-pro"],
        "coffee-beans",
        true,
    ),
    (&["printer-basic", "printer-pro"], "toner", true),
    (&["laptop-basic", "laptop-pro"], "laptop-sleeve", false),
    (&["phone-basic", "phone-pro"], "phone-case", false),
];

/// Chance that an owner of an anchor adds its complement to a later basket.
const COMPLEMENT_REPEAT: f64 = 0.35;
/// Chance that the complement joins the anchor in the same basket.
const COMPLEMENT_SAME_BASKET: f64 = 0.35;

const REGIONS: [&str; 4] = ["north", "south", "east", "west"];
const REGION_WEIGHTS: [f64; 4] = [0.3, 0.25, 0.25, 0.2];
const INDUSTRIES: [&str; 6] = [
    "retail",
    "manufacturing",
    "healthcare",
    "finance",
    "technology",
    "education",
];
/// Median account size, in employees; size effects are relative to it.
const MEDIAN_COMPANY_SIZE: f64 = 60.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    Basic,
    Plus,
    Pro,
}

impl Plan {
    fn as_str(self) -> &'static str {
        match self {
            Plan::Basic => "basic",
            Plan::Plus => "plus",
            Plan::Pro => "pro",
        }
    }
}

/// The per-kind shape of the story.
struct KindParams {
    purchases_per_month: f64,
    spend_mean: f64,
    visits_per_month: f64,
    tickets_per_month: f64,
    complaints_per_month: f64,
    /// Cumulative chance of a basket having at most 1 and at most 2 lines.
    lines: [f64; 2],
    /// Buys by the box: units fill the budget; otherwise one or a few per line.
    bulk: bool,
    /// Monthly fee on an invoice as a share of mean spend; `None`: not invoiced.
    retainer_share: Option<f64>,
}

fn kind_params(kind: RelationshipKind) -> KindParams {
    match kind {
        RelationshipKind::Customer => KindParams {
            purchases_per_month: 0.7,
            spend_mean: 90.0,
            visits_per_month: 1.2,
            tickets_per_month: 0.06,
            complaints_per_month: 0.025,
            lines: [0.55, 0.85],
            bulk: false,
            retainer_share: None,
        },
        RelationshipKind::Account => KindParams {
            purchases_per_month: 1.8,
            spend_mean: 900.0,
            visits_per_month: 1.5,
            tickets_per_month: 0.12,
            complaints_per_month: 0.04,
            lines: [0.35, 0.75],
            bulk: true,
            retainer_share: Some(0.1),
        },
        RelationshipKind::Supplier => KindParams {
            purchases_per_month: 1.0,
            spend_mean: 500.0,
            visits_per_month: 0.6,
            tickets_per_month: 0.08,
            complaints_per_month: 0.03,
            lines: [0.45, 0.8],
            bulk: true,
            retainer_share: Some(0.05),
        },
        RelationshipKind::Partner => KindParams {
            purchases_per_month: 1.2,
            spend_mean: 1_200.0,
            visits_per_month: 1.0,
            tickets_per_month: 0.08,
            complaints_per_month: 0.02,
            lines: [0.35, 0.7],
            bulk: true,
            retainer_share: None,
        },
    }
}

const RATE_SHAPE_CUSTOMER: f64 = 1.5;
const RATE_SHAPE_BUSINESS: f64 = 2.0;
const SPEND_LEVEL_SHAPE: f64 = 2.5;
const SPEND_OCCASION_SHAPE: f64 = 3.0;
const ENGAGEMENT_SHAPE: f64 = 2.0;

/// Distributions with constant parameters, built once per book; per-relationship
/// scales are applied by multiplying unit-scale draws, so no constructor can
/// fail on a drawn value.
#[derive(Debug, Clone)]
struct Dists {
    rate_customer: Gamma<f64>,
    rate_business: Gamma<f64>,
    spend_level: Gamma<f64>,
    spend_occasion: Gamma<f64>,
    engagement: Gamma<f64>,
    dropout_basic: Beta<f64>,
    dropout_plus: Beta<f64>,
    dropout_pro: Beta<f64>,
    dropout_account: Beta<f64>,
    dropout_other: Beta<f64>,
    company_size: LogNormal<f64>,
}

impl Dists {
    fn new() -> Self {
        let gamma = |shape: f64| Gamma::new(shape, 1.0).expect("constant gamma shape is positive");
        let beta = |a: f64, b: f64| Beta::new(a, b).expect("constant beta parameters are positive");
        Dists {
            rate_customer: gamma(RATE_SHAPE_CUSTOMER),
            rate_business: gamma(RATE_SHAPE_BUSINESS),
            spend_level: gamma(SPEND_LEVEL_SHAPE),
            spend_occasion: gamma(SPEND_OCCASION_SHAPE),
            engagement: gamma(ENGAGEMENT_SHAPE),
            // Means 0.13, 0.10 and 0.07: a higher plan is a stickier customer.
            dropout_basic: beta(1.3, 8.7),
            dropout_plus: beta(1.3, 11.7),
            dropout_pro: beta(1.3, 17.3),
            dropout_account: beta(1.5, 18.5),
            dropout_other: beta(1.4, 14.0),
            company_size: LogNormal::new(MEDIAN_COMPANY_SIZE.ln(), 1.3)
                .expect("constant log-normal parameters are valid"),
        }
    }
}

/// A complementary pair as catalogue indexes.
#[derive(Debug, Clone)]
struct Complement {
    /// Bit `i` set when product `i` is an anchor of this pair.
    anchors: u64,
    complement: usize,
    /// Bought again by owners, not just once.
    consumable: bool,
}

/// The latent truth behind one relationship: what the models try to recover.
#[derive(Debug, Clone)]
struct Profile {
    kind: RelationshipKind,
    /// Purchase occasions per day while active.
    rate: f64,
    /// Chance of dropping out after each purchase.
    dropout: f64,
    /// Mean spend per purchase occasion.
    spend: f64,
    /// Logins per day while fully engaged.
    visit_rate: f64,
    ticket_rate: f64,
    complaint_rate: f64,
    /// Survey score this relationship gives when nothing is wrong.
    mood: f64,
    /// Days late it pays when nothing is wrong.
    lateness: f64,
    prospect: bool,
}

/// One stretch of activity: from its start until dropout or the end of the book.
#[derive(Debug, Clone, Copy)]
struct Spell {
    start: f64,
    /// Last purchase when dropped, else the end of the book.
    stop: f64,
    dropped: bool,
    /// When dropped: the time warning signs start to show.
    warning_from: f64,
}

impl Spell {
    /// 0 while all is well, rising to 1 at dropout and staying there after.
    fn strain(&self, t: f64) -> f64 {
        if !self.dropped {
            return 0.0;
        }
        if t >= self.stop {
            return 1.0;
        }
        let span = self.stop - self.warning_from;
        if span <= 0.0 {
            return 1.0;
        }
        ((t - self.warning_from) / span).clamp(0.0, 1.0)
    }

    /// Last moment any interaction of this spell can happen.
    fn fade_out(&self, end: f64) -> f64 {
        if self.dropped {
            (self.stop + AFTERGLOW_DAYS).min(end)
        } else {
            end
        }
    }
}

/// Everything generated for one relationship, with its hidden truth for tests.
struct Generated {
    relationship: Relationship,
    events: Vec<Event>,
    #[cfg_attr(not(test), allow(dead_code))]
    profile: Profile,
    /// Whether it lapsed and came back for a second spell.
    #[cfg_attr(not(test), allow(dead_code))]
    won_back: bool,
}

/// A deterministic demo book: a product catalogue and relationships generated on demand.
#[derive(Debug, Clone)]
pub struct DemoBook {
    config: DemoConfig,
    products: Vec<Product>,
    ln_price: Vec<f64>,
    /// Popularity by segment: `[consumer, business]`.
    popularity: [Vec<f64>; 2],
    complements: Vec<Complement>,
    dists: Dists,
    /// Earliest creation time, in fractional days since the epoch.
    start_day: f64,
    end_day: f64,
}

impl DemoBook {
    /// Builds the catalogue; relationships are generated later, one index at a time.
    pub fn new(config: DemoConfig) -> Self {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(config.seed ^ CATALOGUE_SALT);
        let mut products = Vec::with_capacity(PRODUCT_COUNT);
        let mut popularity = [
            Vec::with_capacity(PRODUCT_COUNT),
            Vec::with_capacity(PRODUCT_COUNT),
        ];
        for (category, entries) in CATALOGUE {
            for &(id, name, list_price, b2c, b2b) in entries {
                // Prices end in .99 like a real price list and vary a little by seed.
                let jittered = list_price * (1.0 + 0.08 * (rng.gen::<f64>() - 0.5));
                products.push(Product {
                    id: id.to_string(),
                    name: name.to_string(),
                    category: category.to_string(),
                    price: (jittered.round() - 0.01).max(0.99),
                });
                let wobble = (0.15 * rng.sample::<f64, _>(StandardNormal)).exp();
                popularity[0].push(b2c * wobble);
                popularity[1].push(b2b * wobble);
            }
        }
        let index_of = |id: &str| products.iter().position(|p| p.id == id);
        let complements = COMPLEMENTS
            .iter()
            .filter_map(|&(anchors, complement, consumable)| {
                let anchors = anchors
                    .iter()
                    .filter_map(|a| index_of(a))
                    .fold(0u64, |mask, i| mask | (1 << i));
                Some(Complement {
                    anchors,
                    complement: index_of(complement)?,
                    consumable,
                })
            })
            .collect();
        let ln_price = products.iter().map(|p| p.price.ln()).collect();
        let earliest = config
            .end
            .saturating_sub(i64::from(config.history_days) * SECONDS_PER_DAY)
            .max(MIN_TIMESTAMP.min(config.end));
        DemoBook {
            start_day: earliest as f64 / DAY,
            end_day: config.end as f64 / DAY,
            config,
            products,
            ln_price,
            popularity,
            complements,
            dists: Dists::new(),
        }
    }

    /// The product catalogue every purchase draws from.
    pub fn products(&self) -> &[Product] {
        &self.products
    }

    /// Relationship `index` with its events sorted by time.
    ///
    /// Deterministic from `(seed, index)` alone, so relationships can be
    /// generated in any order or in parallel. Indexes past [`len`](Self::len)
    /// follow the same rule but are not part of the book.
    pub fn relationship(&self, index: usize) -> (Relationship, Vec<Event>) {
        let generated = self.generate(index);
        (generated.relationship, generated.events)
    }

    /// Number of relationships in the book.
    pub fn len(&self) -> usize {
        self.config.relationships
    }

    /// Whether the book has no relationships.
    pub fn is_empty(&self) -> bool {
        self.config.relationships == 0
    }

    fn generate(&self, index: usize) -> Generated {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(self.config.seed ^ mix(index as u64));
        let kind = match rng.gen::<f64>() {
            u if u < 0.80 => RelationshipKind::Customer,
            u if u < 0.94 => RelationshipKind::Account,
            u if u < 0.98 => RelationshipKind::Supplier,
            _ => RelationshipKind::Partner,
        };
        // Later creation dates are denser: the business has been growing.
        let created = self.start_day + (self.end_day - self.start_day) * rng.gen::<f64>().powf(0.8);
        let created_at = self.timestamp(created, MIN_TIMESTAMP);
        let params = kind_params(kind);
        let (attributes, profile) = self.profile(&mut rng, kind, &params);
        let prefix = match kind {
            RelationshipKind::Customer => 'c',
            RelationshipKind::Account => 'a',
            RelationshipKind::Supplier => 's',
            RelationshipKind::Partner => 'p',
        };
        let relationship = Relationship {
            id: format!("{prefix}-{index:06}"),
            kind,
            created_at,
            attributes,
        };

        let mut draft = Draft {
            book: self,
            rng,
            profile,
            params,
            created: created_at as f64 / DAY,
            floor: created_at,
            events: Vec::new(),
            purchases: Vec::new(),
            owned: 0,
        };
        let spells = if draft.profile.prospect {
            draft.prospect_visits();
            Vec::new()
        } else {
            draft.purchase_spells()
        };
        for spell in &spells {
            draft.interactions(spell);
            if let Some(share) = draft.params.retainer_share {
                draft.payments(spell, share, kind == RelationshipKind::Account);
            }
        }
        if kind == RelationshipKind::Partner {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(
                self.config.seed ^ mix(index as u64) ^ KINDS_SALT,
            );
            let bounds: Vec<(f64, f64)> = spells
                .iter()
                .map(|s| (s.start, if s.dropped { s.stop } else { self.end_day }))
                .collect();
            let strain = |t: f64| {
                spells
                    .iter()
                    .find(|s| t >= s.start && t <= s.stop)
                    .map_or(0.0, |s| s.strain(t))
            };
            for (day, body) in
                super::demo_kinds::partner_deals(&mut rng, index, &bounds, &strain, self.end_day)
            {
                draft.push(day, body);
            }
        }
        if kind == RelationshipKind::Supplier {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(
                self.config.seed ^ mix(index as u64) ^ KINDS_SALT,
            );
            let created = draft.created;
            for (day, body) in
                super::demo_kinds::supplier_events(&mut rng, index, created, self.end_day)
            {
                draft.push(day, body);
            }
        }
        let Draft {
            mut events,
            profile,
            ..
        } = draft;
        // Stable, so same-second events keep their generation order.
        events.sort_by_key(|e| e.at);
        Generated {
            relationship,
            events,
            profile,
            won_back: spells.len() > 1,
        }
    }

    /// Draws attributes and the latent profile together, so attributes carry signal.
    fn profile(
        &self,
        rng: &mut Xoshiro256PlusPlus,
        kind: RelationshipKind,
        params: &KindParams,
    ) -> (BTreeMap<String, AttributeValue>, Profile) {
        let d = &self.dists;
        let mut attributes = BTreeMap::new();
        let region = REGIONS[weighted(rng, &REGION_WEIGHTS)];
        attributes.insert("region".to_string(), text(region));
        let mut rate_factor = 1.0;
        let mut spend_factor = 1.0;
        let (dropout, rate_draw) = match kind {
            RelationshipKind::Customer => {
                let plan = match rng.gen::<f64>() {
                    u if u < 0.55 => Plan::Basic,
                    u if u < 0.85 => Plan::Plus,
                    _ => Plan::Pro,
                };
                let age = (42.0 + 14.0 * rng.sample::<f64, _>(StandardNormal))
                    .round()
                    .clamp(18.0, 90.0);
                attributes.insert("plan".to_string(), text(plan.as_str()));
                attributes.insert("age".to_string(), AttributeValue::Number(age));
                let dropout = match plan {
                    Plan::Basic => d.dropout_basic.sample(rng),
                    Plan::Plus => d.dropout_plus.sample(rng),
                    Plan::Pro => d.dropout_pro.sample(rng),
                };
                spend_factor = match plan {
                    Plan::Basic => 0.85,
                    Plan::Plus => 1.1,
                    Plan::Pro => 1.4,
                };
                // Middle-aged customers spend a little more.
                spend_factor *= 1.0 + 0.15 * (-((age - 48.0) / 15.0).powi(2)).exp();
                (dropout, d.rate_customer.sample(rng) / RATE_SHAPE_CUSTOMER)
            }
            RelationshipKind::Account => {
                let industry = INDUSTRIES[rng.gen_range(0..INDUSTRIES.len())];
                let size = d.company_size.sample(rng).round().clamp(1.0, 250_000.0);
                attributes.insert("industry".to_string(), text(industry));
                attributes.insert("company_size".to_string(), AttributeValue::Number(size));
                let relative = size / MEDIAN_COMPANY_SIZE;
                spend_factor = relative.powf(0.3).clamp(0.3, 12.0);
                rate_factor = relative.powf(0.1).clamp(0.6, 2.5);
                // Larger companies switch vendors less readily.
                let dropout = d.dropout_account.sample(rng) * relative.powf(-0.1).clamp(0.5, 1.6);
                (dropout, d.rate_business.sample(rng) / RATE_SHAPE_BUSINESS)
            }
            RelationshipKind::Supplier | RelationshipKind::Partner => {
                let category = CATALOGUE[rng.gen_range(0..CATALOGUE.len())].0;
                attributes.insert("category".to_string(), text(category));
                let dropout = d.dropout_other.sample(rng);
                (dropout, d.rate_business.sample(rng) / RATE_SHAPE_BUSINESS)
            }
        };
        let dropout = dropout.clamp(0.002, 0.95);
        let rate = params.purchases_per_month / DAYS_PER_MONTH * rate_draw * rate_factor;
        let spend =
            params.spend_mean * spend_factor * d.spend_level.sample(rng) / SPEND_LEVEL_SHAPE;
        // Engaged relationships log in more; frequent buyers a little more again.
        let engagement = d.engagement.sample(rng) / ENGAGEMENT_SHAPE;
        let visit_rate = params.visits_per_month / DAYS_PER_MONTH
            * engagement
            * (0.6 + 0.4 * rate_draw).min(2.5);
        // Fragile relationships (high dropout) have more friction all along.
        let ticket_rate = params.tickets_per_month / DAYS_PER_MONTH * (0.4 + 6.0 * dropout);
        let complaint_rate = params.complaints_per_month / DAYS_PER_MONTH * (0.2 + 8.0 * dropout);
        let mood = 8.4 - 10.0 * (dropout - 0.1) + 0.7 * rng.sample::<f64, _>(StandardNormal);
        let lateness = -2.0 + 45.0 * (dropout - 0.08) + 2.5 * rng.sample::<f64, _>(StandardNormal);
        let prospect = rng.gen::<f64>() < PROSPECT_SHARE;
        let profile = Profile {
            kind,
            rate,
            dropout,
            spend,
            visit_rate,
            ticket_rate,
            complaint_rate,
            mood,
            lateness,
            prospect,
        };
        (attributes, profile)
    }

    /// Popularity weighted towards products priced near the line's budget.
    fn pick_product(&self, rng: &mut Xoshiro256PlusPlus, segment: usize, budget: f64) -> usize {
        let ln_budget = budget.ln();
        let weights = &self.popularity[segment];
        let mut total = 0.0;
        let mut kernel = [0.0f64; PRODUCT_COUNT];
        for (i, k) in kernel.iter_mut().enumerate() {
            let gap = self.ln_price[i] - ln_budget;
            // Several cheap units fit a budget; one item far above it rarely does.
            let z = gap.max(0.25 * gap) / PRICE_KERNEL_WIDTH;
            *k = weights[i] * (-0.5 * z * z).exp();
            total += *k;
        }
        let mut target = rng.gen::<f64>() * total;
        for (i, k) in kernel.iter().enumerate() {
            target -= k;
            if target < 0.0 {
                return i;
            }
        }
        PRODUCT_COUNT - 1
    }

    /// Whole seconds for a time in days, kept inside `[floor, end]`.
    fn timestamp(&self, day: f64, floor: Timestamp) -> Timestamp {
        // Saturating float-to-int cast; the clamp keeps the book's invariants.
        ((day * DAY).floor() as i64).clamp(floor, self.config.end.max(floor))
    }
}

/// One relationship being written: its generator, hidden profile and events so far.
struct Draft<'a> {
    book: &'a DemoBook,
    rng: Xoshiro256PlusPlus,
    profile: Profile,
    params: KindParams,
    /// Creation time in fractional days since the epoch.
    created: f64,
    /// `created_at`: nothing is dated before it.
    floor: Timestamp,
    events: Vec<Event>,
    /// Time and amount of each purchase, in order, for invoicing.
    purchases: Vec<(f64, f64)>,
    /// Bit `i` set once product `i` has been bought.
    owned: u64,
}

impl Draft<'_> {
    fn push(&mut self, day: f64, body: EventBody) {
        let at = self.book.timestamp(day, self.floor);
        self.events.push(Event { at, body });
    }

    fn push_interaction(&mut self, day: f64, kind: InteractionKind) {
        self.push(
            day,
            EventBody::Interaction {
                kind,
                survey_score: None,
            },
        );
    }

    /// A prospect browses a few times after signing up, then goes quiet.
    fn prospect_visits(&mut self) {
        let stop = (self.created + 60.0).min(self.book.end_day);
        let mut times = vec![self.created];
        poisson_times(
            &mut self.rng,
            self.created,
            stop,
            3.0 / 60.0,
            |_| 1.0,
            &mut times,
        );
        for t in times {
            self.push_interaction(t, InteractionKind::Visit);
        }
    }

    /// Runs the BG/NBD purchase process and returns its spells of activity.
    fn purchase_spells(&mut self) -> Vec<Spell> {
        let end = self.book.end_day;
        let mut spells = Vec::new();
        let mut dropout = self.profile.dropout;
        let mut spell_start = self.created;
        // The first purchase follows sign-up within days.
        let mut t = self.created + 3.0 * self.rng.sample::<f64, _>(Exp1);
        loop {
            let mut last = None;
            let mut dropped = false;
            while t <= end {
                let (product_ids, quantity, amount) = self.basket();
                self.push(
                    t,
                    EventBody::Purchase {
                        amount,
                        product_ids,
                        quantity,
                    },
                );
                self.purchases.push((t, amount));
                last = Some(t);
                if self.rng.gen::<f64>() < dropout {
                    dropped = true;
                    break;
                }
                // At least a day apart, so two occasions never share a day.
                t += (self.rng.sample::<f64, _>(Exp1) / self.profile.rate).max(1.0);
            }
            let stop = match last {
                Some(last) if dropped => last,
                _ => end,
            };
            spells.push(Spell {
                start: spell_start,
                stop,
                dropped,
                warning_from: if dropped {
                    (stop - WARNING_DAYS).max(spell_start)
                } else {
                    stop
                },
            });
            // At most one comeback, and only for a small share of the dropped.
            if !dropped || spells.len() > 1 || self.rng.gen::<f64>() >= WIN_BACK_SHARE {
                break;
            }
            t = stop + WIN_BACK_MIN_GAP_DAYS + 150.0 * self.rng.sample::<f64, _>(Exp1);
            if t > end {
                break;
            }
            spell_start = t;
            // A relationship that chose us twice is stickier.
            dropout *= 0.7;
        }
        spells
    }

    /// One purchase occasion: 1–3 distinct products, total units and amount.
    fn basket(&mut self) -> (Vec<String>, u32, f64) {
        let book = self.book;
        let segment = usize::from(self.profile.kind != RelationshipKind::Customer);
        let occasion = book.dists.spend_occasion.sample(&mut self.rng) / SPEND_OCCASION_SHAPE;
        let budget = self.profile.spend * occasion;
        let u = self.rng.gen::<f64>();
        let lines = if u < self.params.lines[0] {
            1
        } else if u < self.params.lines[1] {
            2
        } else {
            3
        };
        let line_budget = (budget / lines as f64).max(1.0);
        let mut chosen: Vec<usize> = Vec::with_capacity(3);
        // Owners come back for the consumable or accessory that goes with what they have.
        for c in &book.complements {
            let wanted = c.consumable || self.owned & (1 << c.complement) == 0;
            if self.owned & c.anchors != 0
                && wanted
                && chosen.len() < lines
                && self.rng.gen::<f64>() < COMPLEMENT_REPEAT
            {
                chosen.push(c.complement);
            }
        }
        let mut attempts = 0;
        while chosen.len() < lines && attempts < 8 {
            attempts += 1;
            let pick = book.pick_product(&mut self.rng, segment, line_budget);
            if !chosen.contains(&pick) {
                chosen.push(pick);
            }
        }
        for c in &book.complements {
            let bought_anchor = chosen.iter().any(|&i| c.anchors & (1 << i) != 0);
            if bought_anchor
                && chosen.len() < 3
                && !chosen.contains(&c.complement)
                && self.rng.gen::<f64>() < COMPLEMENT_SAME_BASKET
            {
                chosen.push(c.complement);
            }
        }
        let mut quantity = 0u32;
        let mut list_total = 0.0;
        let mut product_ids = Vec::with_capacity(chosen.len());
        for &i in &chosen {
            let product = &book.products[i];
            let cap = unit_cap(self.params.bulk, product.price);
            let units = (line_budget / product.price).round().clamp(1.0, cap);
            // Exact: units is a whole number between 1 and the cap.
            quantity += units as u32;
            list_total += product.price * units;
            product_ids.push(product.id.clone());
            self.owned |= 1 << i;
        }
        // Discounts and small fees move the total a few percent off list.
        let adjust = 0.9 + 0.13 * self.rng.gen::<f64>();
        let amount = (list_total * adjust * 100.0).round() / 100.0;
        (product_ids, quantity, amount)
    }

    /// Logins, tickets, complaints and surveys over one spell.
    fn interactions(&mut self, spell: &Spell) {
        let to = spell.fade_out(self.book.end_day);
        let mut times = Vec::new();
        // Logins fade to a trickle at dropout, then stop.
        poisson_times(
            &mut self.rng,
            spell.start,
            to,
            self.profile.visit_rate,
            |t| {
                if spell.dropped && t > spell.stop {
                    0.15 * (-(t - spell.stop) / 15.0).exp()
                } else {
                    1.0 - 0.85 * spell.strain(t)
                }
            },
            &mut times,
        );
        for &t in &times {
            self.push_interaction(t, InteractionKind::Visit);
        }
        for (kind, rate, boost) in [
            (
                InteractionKind::SupportTicket,
                self.profile.ticket_rate,
                3.0,
            ),
            (InteractionKind::Complaint, self.profile.complaint_rate, 5.0),
        ] {
            times.clear();
            poisson_times(
                &mut self.rng,
                spell.start,
                to,
                rate * boost,
                |t| (1.0 + (boost - 1.0) * spell.strain(t)) / boost,
                &mut times,
            );
            for &t in &times {
                self.push_interaction(t, kind);
            }
        }
        times.clear();
        // About one survey answered a year.
        let survey_rate = 0.9 / DAYS_PER_YEAR;
        poisson_times(
            &mut self.rng,
            spell.start,
            to,
            survey_rate,
            |_| 1.0,
            &mut times,
        );
        for &t in &times {
            let noise: f64 = self.rng.sample(StandardNormal);
            let score = (self.profile.mood - 3.0 * spell.strain(t) + 1.4 * noise)
                .round()
                .clamp(0.0, 10.0);
            let body = EventBody::Interaction {
                kind: InteractionKind::Survey,
                survey_score: Some(score),
            };
            self.push(t, body);
        }
    }

    /// Monthly invoices over one spell, each paid later the closer dropout is.
    /// Accounts also get each invoice, when issued and when paid.
    fn payments(&mut self, spell: &Spell, retainer_share: f64, invoices: bool) {
        let end = self.book.end_day;
        let mut billed = self.purchases.partition_point(|&(t, _)| t < spell.start);
        let Some(&(first, _)) = self.purchases.get(billed) else {
            return;
        };
        let retainer = (self.profile.spend * retainer_share * 100.0).round() / 100.0;
        // The final invoice settles what was bought after the last regular one.
        let last_invoice = if spell.dropped {
            spell.stop + DAYS_PER_MONTH
        } else {
            end
        };
        let mut invoice = first + DAYS_PER_MONTH;
        while invoice <= last_invoice.min(end) {
            let mut amount = if invoice <= spell.stop { retainer } else { 0.0 };
            while let Some(&(t, a)) = self.purchases.get(billed) {
                if t >= invoice {
                    break;
                }
                amount += a;
                billed += 1;
            }
            let noise: f64 = self.rng.sample(StandardNormal);
            let days_late = (self.profile.lateness + 25.0 * spell.strain(invoice) + 3.0 * noise)
                .round()
                .clamp(-10.0, 180.0);
            let paid = invoice + PAYMENT_TERMS_DAYS + days_late;
            // Invoices not yet paid by the end of the book are simply outstanding.
            if invoices && amount > 0.0 {
                // Dated when issued, as Invoice.at is; the book is written
                // in hindsight, so one record carries the payment too.
                let body = EventBody::Invoice {
                    invoice_id: format!("inv-{}", self.events.len()),
                    amount: (amount * 100.0).round() / 100.0,
                    terms_days: PAYMENT_TERMS_DAYS as u32,
                    paid_at: (paid <= end).then(|| self.book.timestamp(paid, self.floor)),
                };
                self.push(invoice, body);
            }
            if amount > 0.0 && paid <= end {
                let amount = (amount * 100.0).round() / 100.0;
                self.push(paid, EventBody::Payment { amount, days_late });
            }
            invoice += DAYS_PER_MONTH + self.rng.gen_range(-2.0..2.0);
        }
    }
}

/// Most units of one product on one basket line.
fn unit_cap(bulk: bool, price: f64) -> f64 {
    // Consumers buy one laptop but may stock up on beans or paper.
    match (bulk, price) {
        (true, _) => 250.0,
        (false, p) if p < 20.0 => 4.0,
        (false, p) if p < 60.0 => 2.0,
        (false, _) => 1.0,
    }
}

fn text(s: &str) -> AttributeValue {
    AttributeValue::Text(s.to_string())
}

/// Index drawn in proportion to `weights`.
fn weighted(rng: &mut Xoshiro256PlusPlus, weights: &[f64]) -> usize {
    let total: f64 = weights.iter().sum();
    let mut target = rng.gen::<f64>() * total;
    for (i, w) in weights.iter().enumerate() {
        target -= w;
        if target < 0.0 {
            return i;
        }
    }
    weights.len().saturating_sub(1)
}

/// Times of an inhomogeneous Poisson process on `(from, to]` by thinning:
/// candidates at `rate` per day, each kept with probability `keep(t)`.
fn poisson_times(
    rng: &mut Xoshiro256PlusPlus,
    from: f64,
    to: f64,
    rate: f64,
    keep: impl Fn(f64) -> f64,
    out: &mut Vec<f64>,
) {
    if rate.is_nan() || rate <= 0.0 || to <= from {
        return;
    }
    let mut t = from;
    loop {
        t += rng.sample::<f64, _>(Exp1) / rate;
        if t > to {
            break;
        }
        if rng.gen::<f64>() < keep(t) {
            out.push(t);
        }
    }
}

/// SplitMix64 finaliser: spreads consecutive indexes over the whole seed space.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// 2024-06-01T00:00:00Z.
    const END: Timestamp = 1_717_200_000;

    fn book(seed: u64, relationships: usize) -> DemoBook {
        DemoBook::new(DemoConfig {
            seed,
            relationships,
            ..DemoConfig::new(END)
        })
    }

    fn all(book: &DemoBook) -> Vec<Generated> {
        (0..book.len()).map(|i| book.generate(i)).collect()
    }

    fn purchase_times(events: &[Event]) -> Vec<Timestamp> {
        events
            .iter()
            .filter(|e| matches!(e.body, EventBody::Purchase { .. }))
            .map(|e| e.at)
            .collect()
    }

    fn count(events: &[Event], kind: InteractionKind) -> usize {
        events
            .iter()
            .filter(|e| matches!(&e.body, EventBody::Interaction { kind: k, .. } if *k == kind))
            .count()
    }

    #[test]
    fn same_seed_same_book_any_order() {
        let a = book(7, 300);
        let b = book(7, 300);
        assert_eq!(format!("{:?}", a.products()), format!("{:?}", b.products()));
        let forward: Vec<_> = (0..300).map(|i| a.relationship(i)).collect();
        let backward: Vec<_> = (0..300).rev().map(|i| b.relationship(i)).collect();
        for (i, got) in backward.into_iter().rev().enumerate() {
            assert_eq!(
                format!("{:?}", forward[i]),
                format!("{got:?}"),
                "relationship {i}"
            );
        }
    }

    #[test]
    fn different_seed_different_book() {
        let a = book(1, 50);
        let b = book(2, 50);
        let differing = (0..50)
            .filter(|&i| a.relationship(i) != b.relationship(i))
            .count();
        assert!(differing >= 45, "only {differing} of 50 differ");
        assert_ne!(a.products(), b.products());
    }

    #[test]
    fn everything_validates_and_is_sorted() {
        let b = book(42, 2_000);
        let catalogue: BTreeMap<&str, f64> = b
            .products()
            .iter()
            .map(|p| (p.id.as_str(), p.price))
            .collect();
        for i in 0..b.len() {
            let (rel, events) = b.relationship(i);
            rel.validate(END).expect("relationship validates");
            assert!(rel.created_at <= END && rel.created_at >= END - 1_460 * SECONDS_PER_DAY);
            assert!(
                events.windows(2).all(|w| w[0].at <= w[1].at),
                "{} unsorted",
                rel.id
            );
            for e in &events {
                e.validate(END).expect("event validates");
                assert!(
                    e.at >= rel.created_at && e.at <= END,
                    "{} at {}",
                    rel.id,
                    e.at
                );
                match &e.body {
                    EventBody::Purchase {
                        amount,
                        product_ids,
                        quantity,
                    } => {
                        assert!((1..=3).contains(&product_ids.len()));
                        let distinct: BTreeSet<_> = product_ids.iter().collect();
                        assert_eq!(distinct.len(), product_ids.len());
                        assert!(*quantity as usize >= product_ids.len());
                        let prices: Vec<f64> =
                            product_ids.iter().map(|p| catalogue[p.as_str()]).collect();
                        let floor: f64 = prices.iter().sum();
                        let ceiling =
                            prices.iter().cloned().fold(0.0, f64::max) * f64::from(*quantity);
                        assert!(*amount >= 0.89 * floor, "{amount} below list {floor}");
                        assert!(*amount <= 1.04 * ceiling, "{amount} above {ceiling}");
                    }
                    EventBody::Interaction { kind, survey_score } => {
                        assert_eq!(*kind == InteractionKind::Survey, survey_score.is_some());
                    }
                    EventBody::Payment { amount, days_late } => {
                        assert!(*amount > 0.0 && days_late.is_finite());
                        assert!(matches!(
                            rel.kind,
                            RelationshipKind::Account | RelationshipKind::Supplier
                        ));
                    }
                    EventBody::Delivery { .. } | EventBody::PurchaseOrder { .. } => {
                        assert_eq!(rel.kind, RelationshipKind::Supplier)
                    }
                    EventBody::PartnerDeal { .. } => {
                        assert_eq!(rel.kind, RelationshipKind::Partner)
                    }
                    EventBody::Invoice { .. } => assert_eq!(rel.kind, RelationshipKind::Account),
                }
            }
        }
    }

    #[test]
    fn degenerate_windows_still_validate() {
        for (end, history_days) in [(END, 0), (1_000, 1_460), (0, 30)] {
            let b = DemoBook::new(DemoConfig {
                relationships: 300,
                history_days,
                ..DemoConfig::new(end)
            });
            for i in 0..b.len() {
                let (rel, events) = b.relationship(i);
                rel.validate(end).expect("relationship validates");
                for e in &events {
                    e.validate(end).expect("event validates");
                    assert!(e.at >= rel.created_at && e.at <= end);
                }
            }
        }
    }

    #[test]
    fn ids_are_prefixed_by_kind_and_unique() {
        let b = book(3, 500);
        let mut ids = BTreeSet::new();
        for i in 0..b.len() {
            let (rel, _) = b.relationship(i);
            let prefix = match rel.kind {
                RelationshipKind::Customer => "c-",
                RelationshipKind::Account => "a-",
                RelationshipKind::Supplier => "s-",
                RelationshipKind::Partner => "p-",
            };
            assert_eq!(rel.id, format!("{prefix}{i:06}"));
            assert!(ids.insert(rel.id));
        }
    }

    #[test]
    fn catalogue_has_slugs_tiers_and_categories() {
        let b = book(42, 0);
        assert!(b.is_empty());
        let products = b.products();
        assert_eq!(products.len(), PRODUCT_COUNT);
        assert_eq!(PRODUCT_COUNT, 40);
        let ids: BTreeSet<_> = products.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids.len(), PRODUCT_COUNT);
        for p in products {
            assert!(p
                .id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
            assert!(p.price.is_finite() && p.price > 0.0);
        }
        let categories: BTreeSet<_> = products.iter().map(|p| p.category.as_str()).collect();
        assert_eq!(categories.len(), 8);
        let price = |id: &str| products.iter().find(|p| p.id == id).map(|p| p.price);
        for family in ["espresso-machine", "printer", "laptop", "monitor", "phone"] {
            let basic = price(&format!("{family}-basic")).expect("basic tier");
            let pro = price(&format!("{family}-pro")).expect("pro tier");
            assert!(pro > 1.5 * basic, "{family}: {pro} vs {basic}");
        }
        assert_eq!(b.complements.len(), COMPLEMENTS.len());
    }

    #[test]
    fn kinds_prospects_and_volume_are_realistic() {
        let b = book(42, 5_000);
        let generated = all(&b);
        let n = generated.len() as f64;
        let share = |kind| {
            generated
                .iter()
                .filter(|g| g.relationship.kind == kind)
                .count() as f64
                / n
        };
        let customers = share(RelationshipKind::Customer);
        let accounts = share(RelationshipKind::Account);
        let suppliers = share(RelationshipKind::Supplier);
        let partners = share(RelationshipKind::Partner);
        assert!((0.77..0.83).contains(&customers), "customers {customers}");
        assert!((0.12..0.16).contains(&accounts), "accounts {accounts}");
        assert!((0.03..0.05).contains(&suppliers), "suppliers {suppliers}");
        assert!((0.01..0.03).contains(&partners), "partners {partners}");

        let no_purchase = generated
            .iter()
            .filter(|g| purchase_times(&g.events).is_empty())
            .count() as f64
            / n;
        assert!(
            (0.02..0.08).contains(&no_purchase),
            "no purchase {no_purchase}"
        );

        let events = generated.iter().map(|g| g.events.len()).sum::<usize>() as f64 / n;
        assert!(
            (15.0..30.0).contains(&events),
            "{events} events per relationship"
        );

        let recent = generated
            .iter()
            .filter(|g| g.relationship.created_at > END - 180 * SECONDS_PER_DAY)
            .count();
        assert!(recent as f64 / n > 0.08, "only {recent} new relationships");
    }

    #[test]
    fn some_lapsed_relationships_are_won_back() {
        let b = book(42, 5_000);
        let generated = all(&b);
        let lapsed = generated
            .iter()
            .filter(|g| {
                purchase_times(&g.events)
                    .first()
                    .is_some_and(|&t| t < END - 2 * 365 * SECONDS_PER_DAY)
            })
            .count();
        let mut won_back = 0;
        for g in generated.iter().filter(|g| g.won_back) {
            won_back += 1;
            let times = purchase_times(&g.events);
            assert!(
                times
                    .windows(2)
                    .any(|w| w[1] - w[0] > 365 * SECONDS_PER_DAY),
                "{} came back without a year's gap",
                g.relationship.id
            );
        }
        // Roughly 3% of those that dropped early enough to come back did.
        let share = won_back as f64 / lapsed as f64;
        assert!((0.005..0.05).contains(&share), "{won_back} of {lapsed}");
    }

    #[test]
    fn complementary_pairs_have_lift() {
        let b = book(42, 3_000);
        let baskets: Vec<BTreeSet<String>> = (0..b.len())
            .map(|i| {
                b.relationship(i)
                    .1
                    .into_iter()
                    .filter_map(|e| match e.body {
                        EventBody::Purchase { product_ids, .. } => Some(product_ids),
                        _ => None,
                    })
                    .flatten()
                    .collect()
            })
            .collect();
        let n = baskets.len() as f64;
        let lift = |anchors: &[&str], complement: &str| {
            let has_anchor = |s: &BTreeSet<String>| anchors.iter().any(|a| s.contains(*a));
            let a = baskets.iter().filter(|s| has_anchor(s)).count() as f64;
            let c = baskets.iter().filter(|s| s.contains(complement)).count() as f64;
            let both = baskets
                .iter()
                .filter(|s| has_anchor(s) && s.contains(complement))
                .count() as f64;
            assert!(
                a >= 30.0 && c >= 30.0,
                "{anchors:?}/{complement}: {a} and {c}"
            );
            both * n / (a * c)
        };
        for (anchors, complement, _) in COMPLEMENTS {
            let l = lift(anchors, complement);
            assert!(l > 1.5, "{anchors:?} -> {complement}: lift {l}");
        }
        // A pair with no planted link stays near the baseline that heavy buyers create.
        let control = lift(&["kettle"], "yoga-mat");
        let planted = lift(COMPLEMENTS[0].0, COMPLEMENTS[0].1);
        assert!(
            planted > control + 0.5,
            "planted {planted} vs control {control}"
        );
    }

    #[test]
    fn fragile_relationships_complain_more_and_score_lower() {
        let b = book(42, 4_000);
        let generated = all(&b);
        let mut by_dropout: Vec<&Generated> =
            generated.iter().filter(|g| !g.profile.prospect).collect();
        by_dropout.sort_by(|x, y| y.profile.dropout.total_cmp(&x.profile.dropout));
        let fragile = &by_dropout[..by_dropout.len() / 10];
        let active: Vec<&Generated> = generated
            .iter()
            .filter(|g| {
                purchase_times(&g.events)
                    .last()
                    .is_some_and(|&t| t > END - 180 * SECONDS_PER_DAY)
            })
            .collect();
        assert!(active.len() > 300, "{} active", active.len());
        let per_year = |group: &[&Generated], kind| {
            let n: usize = group.iter().map(|g| count(&g.events, kind)).sum();
            // Per year of observed life: from sign-up to the last thing they did.
            let years: f64 = group
                .iter()
                .map(|g| {
                    let last = g.events.last().map_or(END, |e| e.at);
                    let days = (last - g.relationship.created_at) as f64 / DAY;
                    days.max(30.0) / DAYS_PER_YEAR
                })
                .sum();
            n as f64 / years
        };
        let fragile_complaints = per_year(fragile, InteractionKind::Complaint);
        let active_complaints = per_year(&active, InteractionKind::Complaint);
        assert!(
            fragile_complaints > 2.0 * active_complaints,
            "complaints/year: fragile {fragile_complaints}, active {active_complaints}"
        );
        let fragile_tickets = per_year(fragile, InteractionKind::SupportTicket);
        let active_tickets = per_year(&active, InteractionKind::SupportTicket);
        assert!(
            fragile_tickets > 1.5 * active_tickets,
            "tickets/year: fragile {fragile_tickets}, active {active_tickets}"
        );
        let mean_score = |group: &[&Generated]| {
            let scores: Vec<f64> = group
                .iter()
                .flat_map(|g| &g.events)
                .filter_map(|e| match e.body {
                    EventBody::Interaction {
                        survey_score: Some(s),
                        ..
                    } => Some(s),
                    _ => None,
                })
                .collect();
            scores.iter().sum::<f64>() / scores.len().max(1) as f64
        };
        let (fragile_score, active_score) = (mean_score(fragile), mean_score(&active));
        assert!(
            fragile_score + 1.0 < active_score,
            "survey: fragile {fragile_score}, active {active_score}"
        );
    }

    #[test]
    fn warning_signs_rise_before_dropout() {
        let b = book(42, 6_000);
        // Complaints per day and logins per day in the last 60 days before the
        // final purchase, against the stretch before that, for relationships
        // that dropped out after a long enough life to compare.
        let (mut late_c, mut early_c, mut late_v, mut early_v) = (0.0, 0.0, 0.0, 0.0);
        let (mut late_days, mut early_days) = (0.0, 0.0);
        for g in all(&b) {
            let times = purchase_times(&g.events);
            let (Some(&first), Some(&last)) = (times.first(), times.last()) else {
                continue;
            };
            let dropped = last < END - 365 * SECONDS_PER_DAY;
            let long = last - first > 300 * SECONDS_PER_DAY;
            if !dropped || !long {
                continue;
            }
            let split = last - 60 * SECONDS_PER_DAY;
            for e in &g.events {
                if let EventBody::Interaction { kind, .. } = e.body {
                    let late = e.at > split && e.at <= last;
                    let early = e.at >= first && e.at <= split;
                    match kind {
                        InteractionKind::Complaint if late => late_c += 1.0,
                        InteractionKind::Complaint if early => early_c += 1.0,
                        InteractionKind::Visit if late => late_v += 1.0,
                        InteractionKind::Visit if early => early_v += 1.0,
                        _ => {}
                    }
                }
            }
            late_days += 60.0;
            early_days += (split - first) as f64 / DAY;
        }
        assert!(late_days > 3_000.0, "too few dropouts: {late_days}");
        let (late_c, early_c) = (late_c / late_days, early_c / early_days);
        let (late_v, early_v) = (late_v / late_days, early_v / early_days);
        assert!(late_c > 1.5 * early_c, "complaints {late_c} vs {early_c}");
        assert!(late_v < 0.8 * early_v, "visits {late_v} vs {early_v}");
    }

    #[test]
    fn accounts_pay_invoices_later_when_fragile() {
        let b = book(42, 4_000);
        let accounts: Vec<Generated> = all(&b)
            .into_iter()
            .filter(|g| g.relationship.kind == RelationshipKind::Account)
            .collect();
        let paying = accounts
            .iter()
            .filter(|g| {
                g.events
                    .iter()
                    .any(|e| matches!(e.body, EventBody::Payment { .. }))
            })
            .count();
        assert!(
            paying as f64 > 0.8 * accounts.len() as f64,
            "{paying} of {} accounts pay",
            accounts.len()
        );
        let lateness = |fragile: bool| {
            let late: Vec<f64> = accounts
                .iter()
                .filter(|g| (g.profile.dropout > 0.12) == fragile)
                .flat_map(|g| &g.events)
                .filter_map(|e| match e.body {
                    EventBody::Payment { days_late, .. } => Some(days_late),
                    _ => None,
                })
                .collect();
            late.iter().sum::<f64>() / late.len().max(1) as f64
        };
        let (fragile, sturdy) = (lateness(true), lateness(false));
        assert!(
            fragile > sturdy + 3.0,
            "days late: fragile {fragile}, sturdy {sturdy}"
        );
    }

    #[test]
    fn popularity_is_skewed() {
        let b = book(42, 2_000);
        let mut counts = vec![0usize; b.products().len()];
        for i in 0..b.len() {
            for e in b.relationship(i).1 {
                if let EventBody::Purchase { product_ids, .. } = e.body {
                    for p in product_ids {
                        if let Some(j) = b.products().iter().position(|x| x.id == p) {
                            counts[j] += 1;
                        }
                    }
                }
            }
        }
        counts.sort_unstable_by(|a, b| b.cmp(a));
        let total: usize = counts.iter().sum();
        let top5: usize = counts[..5].iter().sum();
        assert!(
            top5 as f64 > 0.3 * total as f64,
            "top 5 hold {top5} of {total}"
        );
        assert!(counts.iter().all(|&c| c > 0), "every product sells");
    }
}
