//! How `revloop incident show` and `revloop incident report` print revenue impact
//! (docs/impact.md): the figures as the server computed them, nothing recomputed here.

use revloop_api::incidents::ImpactSummary;
use revloop_api::report::{LossReport, LossTotal};

/// The impact lines of one incident.
pub fn print_impact(impact: Option<&ImpactSummary>, false_alarm: bool) {
    if false_alarm {
        println!("  resolved as a false alarm: its loss counts in no total");
    }
    let Some(impact) = impact else {
        println!(
            "  revenue impact: not estimated (no priced minute yet, or not a conversion incident)"
        );
        return;
    };
    let noise = if impact.within_noise {
        " (within noise: may be the baseline's own variation)"
    } else {
        ""
    };
    println!(
        "  revenue impact: {} lost so far ± {}{noise}",
        impact.loss.display, impact.band.display
    );
    println!(
        "    now {} per hour, {} projected over a day (duration factor {:.2})",
        impact.loss_per_hour.display, impact.daily_projection.display, impact.duration_factor
    );
    println!(
        "    {:.1} orders lost, {:.0} shoppers affected, at AOV {} ({}); {} of {} windows of {} min booked a loss",
        impact.orders_lost,
        impact.shoppers_affected,
        impact.aov.display,
        impact.aov_source,
        impact.n_windows_booked,
        impact.n_windows,
        impact.window_minutes
    );
    if let Some(error) = &impact.error {
        println!("    booking stopped: {error}");
    }
}

/// The loss section of the report.
pub fn print_loss(loss: &LossReport) {
    println!(
        "estimated revenue lost: {} over {} incidents ({} false alarms left out, {})",
        loss.total.display, loss.incidents_priced, loss.false_alarms, loss.false_alarm_loss.display
    );
    let rows = |title: &str, totals: &[LossTotal]| {
        if totals.is_empty() {
            return;
        }
        println!("  by {title}:");
        for total in totals {
            println!(
                "    {:<36} {:>22}  {} incidents",
                total.key, total.loss.display, total.incidents
            );
        }
    };
    rows("stage", &loss.by_stage);
    rows("segment", &loss.by_segment);
    rows("month", &loss.by_month);
}
