//! Pre-aggregated counts (`/api/v1/counts`): each record validated against the config, then
//! its window split into whole minutes, the count and revenue shared out so that the minutes
//! sum to the record.
//!
//! It never commits; [`crate::ingest::accounting`] does.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::value::RawValue;

use revloop_core::funnel::{DimensionValues, StageHit, VALUE_NONE, dedup_key};
use revloop_core::ingest::{Admission, Cell, StageCount, admit};
use revloop_core::money::Money;
use revloop_core::time::{MS_PER_MINUTE, Timestamp};
use revloop_store::{CountBody, IngestItem};

use crate::http::ApiError;
use crate::ingest::problems::{Problem, Problems};
use crate::ingest::{
    COUNT_REVENUE_MINOR_MAX, COUNT_VALUE_MAX, COUNT_WINDOW_S_MAX, COUNTS_RECORDS_MAX, IngestClock,
    Ingestor, Place, Prepared, non_blank_lines,
};

impl Ingestor {
    /// Parses pre-aggregated counts: `{"counts": [...]}` or NDJSON records.
    pub fn prepare_counts(
        &self,
        body: &str,
        ndjson: bool,
        clock: &mut dyn IngestClock,
    ) -> Result<Prepared, ApiError> {
        let records: Vec<(Place, &str)> = if ndjson {
            non_blank_lines(body)?
        } else {
            #[derive(Deserialize)]
            struct Envelope<'a> {
                #[serde(borrow)]
                counts: Vec<&'a RawValue>,
            }
            let envelope: Envelope = serde_json::from_str(body).map_err(|err| {
                let code = if err.is_data() {
                    "wrong_type"
                } else {
                    "invalid_json"
                };
                ApiError::bad_request(code, format!("counts body: {err}; nothing was stored"))
            })?;
            envelope
                .counts
                .iter()
                .enumerate()
                .map(|(i, raw)| (Place::Index(i), raw.get()))
                .collect()
        };
        if records.len() > COUNTS_RECORDS_MAX {
            return Err(ApiError::bad_request(
                "too_many_messages",
                format!(
                    "{} count records; at most {COUNTS_RECORDS_MAX} are allowed per request; nothing was stored",
                    records.len()
                ),
            ));
        }
        let mut problems = Problems::new();
        let mut prepared = Prepared::default();
        for (place, json) in records {
            match self.prepare_count(json, clock) {
                Ok(item) => prepared.items.push(item),
                Err((code, field, message)) => problems.add(code, place, field, message),
            }
        }
        problems.into_result("request", "counts")?;
        Ok(prepared)
    }

    /// Validates one count record (in this order: its JSON, funnel, stage, window, count,
    /// dimensions, revenue, and the accepted range of event times) and splits it into minutes.
    fn prepare_count(
        &self,
        json: &str,
        clock: &mut dyn IngestClock,
    ) -> Result<IngestItem, Problem> {
        let record = parse_record(json)?;
        let hit = self.stage_hit(&record)?;
        let window_start = check_window_and_count(&record)?;
        let dimension_values = self.dimension_values(&record)?;
        let revenue_minor = self.revenue_minor(&record)?;
        // Counts are authoritative aggregates, often loaded hours later: they are exempt from
        // the allowed lateness, but not from the accepted range of event times.
        let now = clock.now_for(window_start);
        match admit(window_start, now, &self.config.ingest) {
            Admission::TooOld | Admission::TooFarAhead => {
                return Err((
                    "timestamp_out_of_range",
                    field("window_start"),
                    format!("{window_start} is outside the accepted range around now ({now})"),
                ));
            }
            Admission::Counted | Admission::Late => {}
        }
        let cells = minute_cells(&record, hit, window_start, &dimension_values, revenue_minor);
        // What the record says besides its id, for telling a re-send from a correction: its
        // funnel, stage, window, count, dimensions and revenue as validated.
        let what = format!(
            "{}|{}|{}|{}|{}|{:?}|{:?}",
            record.funnel,
            record.stage,
            window_start.millis(),
            record.window_s,
            record.count,
            record.dimensions,
            revenue_minor
        );
        let (key, count_body) = match record.id {
            Some(id) => {
                let body = CountBody {
                    body_key: dedup_key(&format!("count-body:{what}")),
                    id,
                };
                (dedup_key(&format!("count-id:{}", body.id)), Some(body))
            }
            None => (
                dedup_key(&format!(
                    "count:{}|{}|{}|{}|{:?}",
                    record.funnel,
                    record.stage,
                    window_start.millis(),
                    record.window_s,
                    record.dimensions
                )),
                None,
            ),
        };
        Ok(IngestItem {
            dedup_key: key,
            cells,
            late: false,
            ignored_name: None,
            count_body,
        })
    }

    /// The funnel and stage a record names, by index in the config.
    fn stage_hit(&self, record: &Record) -> Result<StageHit, Problem> {
        let (funnel_index, funnel) = self
            .config
            .funnels
            .iter()
            .enumerate()
            .find(|(_, f)| f.id == record.funnel)
            .ok_or_else(|| {
                (
                    "invalid_message",
                    field("funnel"),
                    format!(
                        "no funnel `{}` in the config; funnels are: {}",
                        record.funnel,
                        self.config.funnel_list()
                    ),
                )
            })?;
        let stage_index = funnel
            .stages
            .iter()
            .position(|s| s.id == record.stage)
            .ok_or_else(|| {
                (
                    "invalid_message",
                    field("stage"),
                    format!(
                        "funnel `{}` has no stage `{}`; stages are: {}",
                        funnel.id,
                        record.stage,
                        self.config.stage_list(Some(&funnel.id))
                    ),
                )
            })?;
        Ok(StageHit {
            funnel: funnel_index,
            stage: stage_index,
        })
    }

    /// The record's value of every configured dimension, `VALUE_NONE` where it has none.
    fn dimension_values(&self, record: &Record) -> Result<DimensionValues, Problem> {
        let mut values = vec![VALUE_NONE; self.config.dimensions.len()];
        for (name, value) in &record.dimensions {
            let index = self
                .config
                .dimensions
                .iter()
                .position(|d| d.name == *name)
                .ok_or_else(|| {
                    (
                        "invalid_message",
                        Some(format!("dimensions.{name}")),
                        format!(
                            "no such dimension in the config; dimensions are: {}",
                            self.config.dimension_list()
                        ),
                    )
                })?;
            values[index] = value;
        }
        Ok(DimensionValues::new(values))
    }

    /// The record's revenue in minor units of the shop's currency, if it has any.
    fn revenue_minor(&self, record: &Record) -> Result<Option<i64>, Problem> {
        match &record.revenue {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(_) => {
                return Err((
                    "wrong_type",
                    field("revenue"),
                    "must be a decimal number or string".into(),
                ));
            }
        }
        .map(|text| {
            let minor = Money::parse_decimal(&text, self.config.shop.currency)
                .map(|m| m.minor)
                .map_err(|err| ("wrong_type", field("revenue"), err.to_string()))?;
            if !(-COUNT_REVENUE_MINOR_MAX..=COUNT_REVENUE_MINOR_MAX).contains(&minor) {
                return Err((
                    "invalid_message",
                    field("revenue"),
                    format!(
                        "must be at most {COUNT_REVENUE_MINOR_MAX} minor units of {} either \
                         side of zero",
                        self.config.shop.currency
                    ),
                ));
            }
            Ok(minor)
        })
        .transpose()
    }
}

/// One pre-aggregated count, as sent.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    funnel: String,
    stage: String,
    window_start: String,
    #[serde(default = "one_minute")]
    window_s: i64,
    count: i64,
    #[serde(default)]
    dimensions: BTreeMap<String, String>,
    #[serde(default)]
    revenue: Option<serde_json::Value>,
    #[serde(default)]
    id: Option<String>,
}

fn one_minute() -> i64 {
    60
}

fn field(name: &str) -> Option<String> {
    Some(name.to_owned())
}

fn parse_record(json: &str) -> Result<Record, Problem> {
    serde_json::from_str(json).map_err(|err| {
        let code = if err.is_data() {
            "wrong_type"
        } else {
            "invalid_json"
        };
        let text = err.to_string();
        (
            code,
            None,
            text.split(" at line ").next().unwrap_or(&text).to_owned(),
        )
    })
}

/// The window's start, once the window and the count are within their limits.
fn check_window_and_count(record: &Record) -> Result<Timestamp, Problem> {
    let window_start = Timestamp::parse_rfc3339(&record.window_start)
        .map_err(|err| ("wrong_type", field("window_start"), err.to_string()))?;
    if window_start.millis() % MS_PER_MINUTE != 0 {
        return Err((
            "invalid_message",
            field("window_start"),
            "must start on a whole minute".into(),
        ));
    }
    if record.window_s < 60 || record.window_s % 60 != 0 || record.window_s > COUNT_WINDOW_S_MAX {
        return Err((
            "invalid_message",
            field("window_s"),
            format!("must be a whole number of minutes, from 60 to {COUNT_WINDOW_S_MAX}"),
        ));
    }
    if !(0..=COUNT_VALUE_MAX).contains(&record.count) {
        return Err((
            "invalid_message",
            field("count"),
            format!("must be from 0 to {COUNT_VALUE_MAX}"),
        ));
    }
    Ok(window_start)
}

/// The record's window as one cell a minute: the count (and revenue) shared out evenly, the
/// remainder to the first minutes, so that the minutes sum to the record. Empty minutes are
/// left out.
fn minute_cells(
    record: &Record,
    hit: StageHit,
    window_start: Timestamp,
    dimension_values: &DimensionValues,
    revenue_minor: Option<i64>,
) -> Vec<(Cell, StageCount)> {
    let n_minutes = record.window_s / 60;
    (0..n_minutes)
        .map(|offset| {
            let share = |total: i64| total / n_minutes + i64::from(offset < total % n_minutes);
            let count = StageCount {
                n_events: share(record.count),
                revenue_minor: revenue_minor.map_or(0, share),
                n_revenue_events: if revenue_minor.is_some() {
                    share(record.count)
                } else {
                    0
                },
            };
            let cell = Cell {
                hit,
                minute: window_start.minute().plus(offset),
                dimension_values: dimension_values.clone(),
            };
            (cell, count)
        })
        .filter(|(_, count)| count.n_events != 0 || count.revenue_minor != 0)
        .collect()
}
