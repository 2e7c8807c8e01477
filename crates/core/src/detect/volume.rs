//! The entry volume series: events at a funnel's first stage against their seasonal
//! expectation (for a segment, against its seasonal share of the whole funnel's entries), for
//! traffic collapses and surges.
//!
//! Like the conversion series it learns, measures and runs its CUSUMs, and leaves opening and
//! closing alerts to `decide`.

use super::baseline::{Overdispersion, SlotTable};
use super::decide::OpenAlert;
use super::ring::{Ring, Span};
use super::{LEARNING_EXCLUSION_SHARE, MinuteContext, SIGMA_P2};
use crate::stats::{self, Cusum};
use crate::time::Minute;

/// Between-minute variation of traffic lasts longer than that of conversion (an hour's weather,
/// a campaign); volume series measure their overdispersion on windows this long.
pub(super) const VOLUME_PERSISTENCE_MINUTES: usize = 15;
/// Smallest relative change of volume the volume CUSUMs are designed for.
const VOLUME_MIN_CHANGE: f64 = 0.5;

/// Events at the funnel's first stage. For the funnel as a whole, against the seasonal
/// expectation; for a segment, against its seasonal share of the whole funnel's entries this
/// minute, so that traffic swings every segment shares (a busy hour) do not count against
/// each segment.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct VolumeSeries {
    /// `[events, events of the whole funnel, minutes]` per slot.
    pub(super) slots: SlotTable,
    pub(super) first_minute: Option<Minute>,
    pub(super) phi: Overdispersion,
    pub(super) trailing: Ring,
    pub(super) collapse: Cusum,
    pub(super) surge: Cusum,
    pub(super) span: Span,
    pub(super) alert: Option<OpenAlert>,
    pub(super) lost: f64,
    pub(super) traffic: f64,
    pub(super) last: VolumeJudgement,
}

#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
pub(super) struct VolumeJudgement {
    pub(super) collapse: bool,
    pub(super) surge: bool,
    pub(super) window_sigma: Option<f64>,
    pub(super) expected: Option<f64>,
}

impl VolumeSeries {
    pub(super) fn new() -> VolumeSeries {
        VolumeSeries {
            slots: SlotTable::new(),
            first_minute: None,
            phi: Overdispersion::default(),
            trailing: Ring::new(VOLUME_PERSISTENCE_MINUTES),
            collapse: Cusum::default(),
            surge: Cusum::default(),
            span: Span::default(),
            alert: None,
            lost: 0.0,
            traffic: 0.0,
            last: VolumeJudgement::default(),
        }
    }

    /// `whole` is the whole funnel's count this minute, for a segment's series.
    pub(super) fn observe(
        &mut self,
        minute: Minute,
        count: f64,
        whole: Option<f64>,
        context: &MinuteContext,
    ) -> VolumeJudgement {
        if self.first_minute.is_none() && count == 0.0 {
            return VolumeJudgement::default();
        }
        let first = *self.first_minute.get_or_insert(minute);
        let settings = context.settings;
        let persistence = VOLUME_PERSISTENCE_MINUTES as f64;
        let mut judgement = VolumeJudgement::default();
        let ready = self.slots.ready(context.position)
            && minute.minutes_since(first) >= settings.learning_minutes;
        let expected = self.slots.ready(context.position).then(|| match whole {
            None => self.slots.rate_a(context.position),
            Some(whole) => self.slots.ratio(context.position) * whole,
        });
        if let Some(lambda) = expected {
            judgement.expected = Some(lambda);
            self.lost = self.lost * context.drill_down_decay + (lambda - count);
            self.traffic = self.traffic * context.drill_down_decay + lambda;
            self.trailing.push([count, 0.0, lambda, 0.0]);
            let [tc, _, texpected, _] = self.trailing.sums();
            let phi = self.phi.get();
            let window_sd = (texpected + phi * texpected * texpected).sqrt();
            if texpected > 0.0 {
                judgement.window_sigma = Some((texpected - tc) / window_sd);
            }
            let judged = ready
                && lambda * settings.window_minutes as f64 >= f64::from(settings.min_shoppers);
            if judged {
                // Per-minute variance, with the between-window part counted as lasting the
                // whole persistence window.
                let variance = lambda + persistence * phi * lambda * lambda;
                let rate_sd = (variance / persistence).sqrt();
                let shift = (SIGMA_P2 * rate_sd).max(VOLUME_MIN_CHANGE * lambda);
                let was_zero = self.collapse.statistic == 0.0 && self.surge.statistic == 0.0;
                let h = context.thresholds.volume;
                judgement.collapse = self
                    .collapse
                    .update(stats::gaussian_llr(count, lambda, -shift, variance), h);
                judgement.surge = self
                    .surge
                    .update(stats::gaussian_llr(count, lambda, shift, variance), h);
                if self.collapse.statistic > 0.0 || self.surge.statistic > 0.0 {
                    self.span.add(minute, count, 0.0, lambda, was_zero);
                }
            }
        }
        let suspicious = self.alert.is_some()
            || self.collapse.statistic.max(self.surge.statistic)
                > LEARNING_EXCLUSION_SHARE * context.thresholds.volume;
        if context.learnable && !suspicious {
            self.slots.learn(
                context.position.slot,
                count,
                whole.unwrap_or(0.0),
                context.slot_decay,
            );
            if let Some(lambda) = expected {
                let gathered = &mut self.phi.window;
                gathered[0] += count;
                gathered[2] += lambda;
                if minute
                    .plus(1)
                    .index()
                    .rem_euclid(VOLUME_PERSISTENCE_MINUTES as i64)
                    == 0
                {
                    let [wc, _, wexpected] = std::mem::take(gathered);
                    if wexpected >= 10.0 {
                        let residual = wc - wexpected;
                        let cap = 25.0 * (wexpected + self.phi.get() * wexpected * wexpected);
                        let sample =
                            ((residual * residual).min(cap) - wexpected) / (wexpected * wexpected);
                        self.phi
                            .update(sample, context.overdispersion_memory_windows / 3.0);
                    }
                }
            }
        }
        self.last = judgement;
        judgement
    }
}

/// The deficit of events over `span`, in σ of one volume window: positive when fewer events
/// came than expected.
pub(super) fn volume_deficit_sigma(span: &Span, phi: f64) -> f64 {
    if span.expected <= 0.0 {
        return 0.0;
    }
    let persistence = VOLUME_PERSISTENCE_MINUTES as f64;
    let per_window_expected = span.expected / span.minutes.max(1.0) * persistence;
    let relative_sd = (1.0 / per_window_expected + phi).sqrt();
    (span.expected - span.n) / span.expected / relative_sd
}
