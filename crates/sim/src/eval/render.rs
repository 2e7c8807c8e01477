//! Rendering: the suite's report as the Markdown tables of `docs/detection.md`. Formatting only;
//! every figure is computed by scoring.

use std::fmt::Write as _;

use revloop_core::stats;

use super::score::EvalReport;

impl EvalReport {
    /// The report as Markdown tables.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "Options: {}.\n", self.options_summary);
        let _ = writeln!(
            out,
            "False alarms on {} clean week(s), per funnel per week (budget: P1 {:.3}, P2 {:.3}):\n",
            self.clean_weeks, self.budget_per_week[0], self.budget_per_week[1]
        );
        let _ = writeln!(out, "| detector | P1 | P2 |\n|---|---:|---:|");
        let _ = writeln!(
            out,
            "| revloop | {:.2} | {:.2} |",
            self.false_alarms_per_week[0], self.false_alarms_per_week[1]
        );
        let _ = writeln!(
            out,
            "| runbook-literal z-score | {:.2} | {:.2} |\n",
            self.naive_false_alarms_per_week[0], self.naive_false_alarms_per_week[1]
        );
        if self.clean_weeks > 0.0 {
            let _ = writeln!(
                out,
                "For a comparison at equal false alarms, the z-score detector needs z > {:.2} for P2 and z > {:.2} for P1 to stay within the same budgets on these clean weeks (the \"matched\" columns).\n",
                self.naive_matched_z[0], self.naive_matched_z[1]
            );
        }
        if !self.calibration.is_empty() {
            let _ = writeln!(
                out,
                "Noise model on clean traffic: standardised drop-off of non-overlapping windows (a standard normal has SD 1, 2.28% above 2σ, 0.13% above 3σ):\n"
            );
            let _ = writeln!(
                out,
                "| stage | windows | mean | SD | above 2σ | above 3σ |\n|---|---:|---:|---:|---:|---:|"
            );
            for c in &self.calibration {
                let _ = writeln!(
                    out,
                    "| {} | {} | {:.2} | {:.2} | {:.2}% | {:.2}% |",
                    c.stage,
                    c.windows,
                    c.mean,
                    c.sd,
                    100.0 * c.above_2,
                    100.0 * c.above_3
                );
            }
            let _ = writeln!(out);
        }
        let _ = writeln!(
            out,
            "| scenario | found | missed | delay median / p90 (min) | binomial bound (min) | overdispersed bound (min) | delay ÷ overdispersed bound | shoppers/min | top segment | other kind | naive found | naive median (min) | matched found | matched median (min) |"
        );
        let _ = writeln!(
            out,
            "|---|---:|---:|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|"
        );
        for s in &self.scenarios {
            let median = |v: &[f64]| stats::median(&mut v.to_vec());
            let p90 = |v: &[f64]| stats::quantile(&mut v.to_vec(), 0.9);
            let fmt = |v: Option<f64>| v.map_or("–".to_owned(), |x| format!("{x:.1}"));
            let delay = median(&s.delays_minutes);
            let bound = median(&s.overdispersed_bounds_minutes);
            let ratio = match (delay, bound) {
                (Some(d), Some(b)) if b > 0.0 => format!("{:.1}", d / b),
                _ => "–".to_owned(),
            };
            let top = if s.top_segment_expected > 0 {
                format!("{}/{}", s.top_segment_correct, s.top_segment_expected)
            } else if s.top_segment_none_checked > 0 {
                format!("none {}/{}", s.top_segment_none, s.top_segment_none_checked)
            } else {
                "–".to_owned()
            };
            let found = |n: usize| {
                if s.naive_scored {
                    format!("{n}/{}", s.incidents)
                } else {
                    "–".to_owned()
                }
            };
            let _ = writeln!(
                out,
                "| {} | {}/{} | {} | {} / {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                s.name,
                s.detected,
                s.incidents,
                s.incidents - s.detected,
                fmt(delay),
                fmt(p90(&s.delays_minutes)),
                fmt(median(&s.bounds_minutes)),
                fmt(bound),
                ratio,
                fmt(median(&s.shoppers_per_minute)),
                top,
                s.wrong_kind,
                found(s.naive_detected),
                fmt(median(&s.naive_delays_minutes)),
                found(s.matched_detected),
                fmt(median(&s.matched_delays_minutes)),
            );
        }
        out
    }
}
