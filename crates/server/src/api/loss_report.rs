//! The loss part of `GET /api/v1/incidents/report`: each incident's estimated loss (its
//! impact's figure, rounded once) summed by stage, segment and month of opening, false alarms
//! apart. Sums are `i128` and saturate into an `i64` of minor units when shown.

use std::collections::BTreeMap;

use revloop_api::incidents::Amount;
use revloop_api::report as wire;
use revloop_core::incident::Incident;
use revloop_core::{Config, Currency, Money};

/// Most groups listed per breakdown (the total always counts every incident).
pub const LOSS_GROUPS_MAX: usize = 100;

#[derive(Default)]
struct Group {
    incidents: usize,
    minor: i128,
}

fn amount(minor: i128, currency: Currency) -> Amount {
    let minor = i64::try_from(minor).unwrap_or(if minor < 0 { i64::MIN } else { i64::MAX });
    let money = Money::new(minor, currency);
    Amount {
        minor,
        currency: currency.code().to_owned(),
        display: money.to_string(),
    }
}

/// The loss totals of `incidents`.
pub fn loss_report(config: &Config, incidents: &[Incident]) -> wire::LossReport {
    let currency = config.shop.currency;
    let mut total = Group::default();
    let mut false_alarms = Group::default();
    let mut groups: [BTreeMap<String, Group>; 3] = Default::default();
    for incident in incidents {
        let Some(loss) = incident
            .impact
            .as_ref()
            .and_then(|impact| impact.figures().ok())
            .map(|figures| figures.loss)
            .filter(|loss| loss.currency == currency)
        else {
            continue;
        };
        let add = |group: &mut Group| {
            group.incidents += 1;
            group.minor += i128::from(loss.minor);
        };
        if incident.false_alarm {
            add(&mut false_alarms);
            continue;
        }
        add(&mut total);
        let segment = incident
            .segment
            .as_ref()
            .map_or("all".to_owned(), |(dimension, value)| {
                format!("{dimension}={value}")
            });
        let month: String = incident.opened_at.to_string().chars().take(7).collect();
        let keys = [
            format!("{}/{}", incident.funnel, incident.stage),
            segment,
            month,
        ];
        for (group, key) in groups.iter_mut().zip(keys) {
            add(group.entry(key).or_default());
        }
    }
    let [by_stage, by_segment, by_month] = groups;
    let list = |groups: BTreeMap<String, Group>, largest_first: bool| {
        let mut rows: Vec<(String, Group)> = groups.into_iter().collect();
        if largest_first {
            rows.sort_by(|a, b| b.1.minor.cmp(&a.1.minor).then_with(|| a.0.cmp(&b.0)));
        }
        rows.into_iter()
            .take(LOSS_GROUPS_MAX)
            .map(|(key, group)| wire::LossTotal {
                key,
                incidents: group.incidents,
                loss: amount(group.minor, currency),
            })
            .collect()
    };
    wire::LossReport {
        currency: currency.code().to_owned(),
        total: amount(total.minor, currency),
        incidents_priced: total.incidents,
        false_alarms: false_alarms.incidents,
        false_alarm_loss: amount(false_alarms.minor, currency),
        by_stage: list(by_stage, true),
        by_segment: list(by_segment, true),
        by_month: list(by_month, false),
    }
}
