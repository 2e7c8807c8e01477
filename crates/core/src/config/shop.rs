//! The `[shop]` section: currency, average order value and the shop's time zone.

use serde::Deserialize;
use toml::Spanned;

use super::Problems;
use crate::money::{Currency, Money};

#[derive(Debug, Clone, PartialEq)]
pub struct Shop {
    pub currency: Currency,
    /// `None` means: measure it from `Order Completed` revenue.
    pub average_order_value: Option<Money>,
    /// IANA time zone name, used for time-of-week baselines.
    pub time_zone: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawShop {
    currency: Option<Spanned<String>>,
    average_order_value: Option<Spanned<String>>,
    time_zone: Option<Spanned<String>>,
}

pub(super) fn validate_shop(raw: Option<RawShop>, problems: &mut Problems) -> Shop {
    let raw = raw.unwrap_or(RawShop {
        currency: None,
        average_order_value: None,
        time_zone: None,
    });
    let currency = match raw.currency {
        None => Currency::parse("USD").expect("USD is a currency"),
        Some(spanned) => Currency::parse(spanned.get_ref()).unwrap_or_else(|err| {
            problems.at(spanned.span().start, err.to_string());
            Currency::parse("USD").expect("USD is a currency")
        }),
    };
    let average_order_value =
        raw.average_order_value.and_then(|spanned| {
            match Money::parse_decimal(spanned.get_ref(), currency) {
                Ok(money) if money.minor > 0 => Some(money),
                Ok(_) => {
                    problems.at(spanned.span().start, "average_order_value must be positive");
                    None
                }
                Err(err) => {
                    problems.at(spanned.span().start, err.to_string());
                    None
                }
            }
        });
    let time_zone = match raw.time_zone {
        None => "UTC".to_owned(),
        Some(spanned) => check_time_zone(spanned, problems),
    };
    Shop {
        currency,
        average_order_value,
        time_zone,
    }
}

/// A time zone name, with a problem noted when it is not an IANA name.
pub(super) fn check_time_zone(spanned: Spanned<String>, problems: &mut Problems) -> String {
    let name = spanned.get_ref().clone();
    if jiff::tz::TimeZone::get(&name).is_err() {
        problems.at(
            spanned.span().start,
            format!("`{name}` is not an IANA time zone name (e.g. Europe/Berlin)"),
        );
    }
    name
}
