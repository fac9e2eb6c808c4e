//! Up-sell: the next step up, in price, in the category the relationship buys most.

use std::collections::BTreeSet;

use crate::engine::evaluate::Evaluated;
use crate::engine::policy::Policy;
use crate::numbers::fmt_num;

use super::{Action, ActionType};

pub(super) fn propose(e: &Evaluated, p: &Policy, excluded: &BTreeSet<&str>, out: &mut Vec<Action>) {
    let baskets = &e.model.bundle.baskets;
    let Some((owned, info)) = e
        .data
        .aggregates
        .products
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
        .and_then(|(id, _)| baskets.products.get(id).map(|i| (id, i)))
    else {
        return;
    };
    if info.category.is_empty() || info.price <= 0.0 {
        return;
    }
    let upgrade = baskets
        .products
        .iter()
        .filter(|(id, i)| {
            i.category == info.category
                && i.price >= info.price * p.up_sell.min_price_ratio
                && !e.data.aggregates.owns(id)
                && !excluded.contains(id.as_str())
        })
        .min_by(|a, b| a.1.price.total_cmp(&b.1.price));
    if let Some((id, up)) = upgrade {
        let prob = p.up_sell.acceptance * (1.0 - e.churn);
        let gain = (up.price - info.price) * p.margin;
        out.push(Action {
            kind: ActionType::UpSell,
            product_id: Some(id.clone()),
            expected_net_value: prob * gain - p.up_sell.contact_cost,
            probability: prob,
            cost: p.up_sell.contact_cost,
            reason: format!(
                "Buys {owned} most often: {id} is the next step up in {} at {} more per unit",
                info.category,
                fmt_num(up.price - info.price)
            ),
        });
    }
}
