//! The average order value each incident is priced at (docs/impact.md): `[shop]
//! average_order_value` when configured, else measured from the order events' revenue the
//! store keeps per minute and segment, over a trailing period. The detector reads no revenue,
//! so the server measures it and hands it to the core (`pipeline::Priced`).
//!
//! A segment's own AOV is used where the segment has at least [`AOV_ORDERS_MIN`] orders in the
//! period (desktop's larger orders price desktop's losses); else the funnel's, with the same
//! minimum; else none, and the incident is not priced until there is one. Measurements are
//! cached per funnel and segment for [`AOV_REFRESH`] of the caller's time (event time in
//! `replay`), so a tick costs no store read.

use std::collections::HashMap;
use std::sync::Mutex;

use revloop_core::Config;
use revloop_core::impact::{Aov, AovSource};
use revloop_core::incident::Incident;
use revloop_core::ingest::StageCount;
use revloop_core::time::{DurationMs, Timestamp};
use revloop_store::{CountsQuery, Store};

/// The trailing period an AOV is measured over.
pub const AOV_PERIOD: DurationMs = DurationMs::from_hours(24 * 7);
/// Fewest orders (revenue-carrying events) a measured AOV needs.
pub const AOV_ORDERS_MIN: i64 = 30;
/// How long a measured AOV is reused before it is measured again.
pub const AOV_REFRESH: DurationMs = DurationMs::from_hours(1);
/// Most (funnel, segment) measurements cached; past it the cache starts over.
const AOV_CACHE_ENTRIES_MAX: usize = 4_096;

type Key = (String, Option<(String, String)>);

/// The AOVs of a config's funnels and segments, measured on demand and cached.
pub struct AovBook {
    config: std::sync::Arc<Config>,
    cache: Mutex<HashMap<Key, (Timestamp, Option<Aov>)>>,
}

impl AovBook {
    pub fn new(config: std::sync::Arc<Config>) -> AovBook {
        AovBook {
            config,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The AOV to price `incident` at `now`: configured, its segment's, or its funnel's.
    /// `None` when nothing is configured and too few orders were seen. A store error is
    /// logged and prices nothing this minute.
    pub fn for_incident(
        &self,
        store: &dyn Store,
        incident: &Incident,
        now: Timestamp,
    ) -> Option<Aov> {
        let currency = self.config.shop.currency;
        if let Some(money) = self.config.shop.average_order_value {
            return Some(Aov {
                minor: money.minor,
                currency,
                source: AovSource::Config,
                n_orders: 0,
            });
        }
        if let Some(segment) = &incident.segment
            && let Some(aov) = self.measured(store, &incident.funnel, Some(segment.clone()), now)
        {
            return Some(aov);
        }
        self.measured(store, &incident.funnel, None, now)
    }

    fn measured(
        &self,
        store: &dyn Store,
        funnel: &str,
        segment: Option<(String, String)>,
        now: Timestamp,
    ) -> Option<Aov> {
        let key = (funnel.to_owned(), segment);
        {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((at, aov)) = cache.get(&key)
                && now.since(*at) < AOV_REFRESH
                && *at <= now
            {
                return *aov;
            }
        }
        let aov = match measure(store, &self.config, &key, now) {
            Ok(aov) => aov,
            Err(err) => {
                tracing::warn!(error = %err, funnel, "measuring the average order value failed");
                return None;
            }
        };
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= AOV_CACHE_ENTRIES_MAX {
            cache.clear();
        }
        cache.insert(key, (now, aov));
        aov
    }
}

fn measure(
    store: &dyn Store,
    config: &Config,
    (funnel, segment): &Key,
    now: Timestamp,
) -> Result<Option<Aov>, revloop_store::StoreError> {
    let counts = store.minute_counts(&CountsQuery {
        funnel: funnel.clone(),
        from: now.saturating_sub(AOV_PERIOD).minute(),
        to: now.minute().plus(1),
        filter: segment.iter().cloned().collect(),
    })?;
    // Saturating, as every sum of counts.
    let mut total = StageCount::default();
    for count in &counts {
        total.add(count.count);
    }
    if total.n_revenue_events < AOV_ORDERS_MIN {
        return Ok(None);
    }
    let source = if segment.is_some() {
        AovSource::MeasuredSegment
    } else {
        AovSource::MeasuredFunnel
    };
    Ok(Aov::measured(
        total.revenue_minor,
        total.n_revenue_events,
        config.shop.currency,
        source,
    ))
}
