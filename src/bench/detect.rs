//! `revloop bench detect`: the anomaly detector's cost per series per minute, in this process,
//! while it learns and once every series is judged, with its memory per series.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;

use revloop_core::alert::AlertEvent;
use revloop_core::detect::Detector;
use revloop_core::rng::Rng;
use revloop_core::time::{MS_PER_MINUTE, Minute};
use revloop_core::{Config, Timestamp};

use super::support::status_kib;

/// The stages of every funnel of `bench detect`: the example config's checkout funnel.
pub(super) const DETECT_STAGES: [(&str, &str); 5] = [
    ("product_viewed", "Product Viewed"),
    ("cart", "Product Added"),
    ("checkout", "Checkout Started"),
    ("payment", "Payment Info Entered"),
    ("order", "Order Completed"),
];
/// Share of each stage's shoppers who go on to the next.
const DETECT_STEP_CONVERSION: [f64; 4] = [0.30, 0.55, 0.65, 0.80];
/// Most segments per funnel, the funnel as a whole included: within
/// `SEGMENTS_PER_FUNNEL_MAX` and one dimension's `max_values`.
pub(super) const DETECT_SEGMENTS_PER_FUNNEL: usize = 1_000;
const DETECT_DIMENSION: &str = "category";
/// Traffic sizes of the segments: entries per minute from 15 to 400, log-spaced. At 15 the
/// payment stage still expects 8 shoppers per window, above `min_shoppers`, so every series is
/// judged: the costly case.
const TRAFFIC_CLASSES: usize = 16;
/// Minutes of counts precomputed per traffic class and cycled through, so that the generator
/// costs a table lookup. Prime, so that a segment's counts do not repeat in step with the 5- and
/// 15-minute windows.
const POOL_MINUTES: usize = 241;

/// Per-minute stage counts, precomputed: Poisson entries, binomial steps.
pub(super) struct TrafficPool(Vec<[u32; 5]>);

impl TrafficPool {
    pub(super) fn new(seed: u64) -> TrafficPool {
        let root = Rng::new(seed);
        let mut rows = Vec::with_capacity(TRAFFIC_CLASSES * POOL_MINUTES);
        for class in 0..TRAFFIC_CLASSES {
            let mut rng = root.fork(class as u64);
            let entries =
                15.0 * (400.0_f64 / 15.0).powf(class as f64 / (TRAFFIC_CLASSES - 1) as f64);
            for _ in 0..POOL_MINUTES {
                let mut row = [0_u32; 5];
                row[0] = rng.poisson(entries) as u32;
                for (step, &p) in DETECT_STEP_CONVERSION.iter().enumerate() {
                    row[step + 1] = (0..row[step]).filter(|_| rng.bernoulli(p)).count() as u32;
                }
                rows.push(row);
            }
        }
        TrafficPool(rows)
    }

    /// The counts of dimension value `value` (from 1) of `funnel` in the `minute`-th minute.
    fn row(&self, funnel: usize, value: usize, minute: u64) -> &[u32; 5] {
        let class = value % TRAFFIC_CLASSES;
        let phase = (funnel * 131 + value * 7_919 + minute as usize) % POOL_MINUTES;
        &self.0[class * POOL_MINUTES + phase]
    }
}

pub(super) fn detect_config(n_funnels: usize) -> String {
    let mut text = format!(
        "[shop]\ncurrency = \"USD\"\ntime_zone = \"America/New_York\"\n\n\
         [[dimensions]]\nname = \"{DETECT_DIMENSION}\"\npath = \"properties.category\"\n\
         max_values = {DETECT_SEGMENTS_PER_FUNNEL}\n"
    );
    for funnel in 0..n_funnels {
        text.push_str(&format!("\n[[funnels]]\nid = \"funnel_{funnel}\"\n"));
        for (id, event) in DETECT_STAGES {
            text.push_str(&format!(
                "\n[[funnels.stages]]\nid = \"{id}\"\nevent = \"{event}\"\n"
            ));
        }
    }
    text.push_str("\n[detection]\nlearning = \"7d\"\n");
    text
}

/// Feeds one minute of counts: every segment's, then each funnel's as a whole (their sums), as
/// the store's rows would.
pub(super) fn feed(
    detector: &mut Detector,
    pool: &TrafficPool,
    segments: &[Vec<usize>],
    minute: u64,
) {
    for (funnel, indices) in segments.iter().enumerate() {
        let mut whole = [0_i64; 5];
        for (value, &segment) in indices.iter().enumerate() {
            let row = pool.row(funnel, value + 1, minute);
            for (stage, &n) in row.iter().enumerate() {
                detector.record(funnel, segment, stage, i64::from(n));
                whole[stage] += i64::from(n);
            }
        }
        for (stage, n) in whole.into_iter().enumerate() {
            detector.record(funnel, 0, stage, n);
        }
    }
}

/// The same walk as [`feed`] without the detector: the generator's own cost.
fn feed_nothing(pool: &TrafficPool, segments: &[Vec<usize>], minute: u64) {
    for (funnel, indices) in segments.iter().enumerate() {
        let mut whole = [0_i64; 5];
        for (value, &segment) in indices.iter().enumerate() {
            let row = pool.row(funnel, value + 1, minute);
            for (stage, &n) in row.iter().enumerate() {
                std::hint::black_box((funnel, segment, stage, i64::from(n)));
                whole[stage] += i64::from(n);
            }
        }
        for (stage, n) in whole.into_iter().enumerate() {
            std::hint::black_box((funnel, 0, stage, n));
        }
    }
}

/// Time spent in one phase: feeding counts (generator and `record`), and `close_minute` per
/// minute.
#[derive(Default)]
struct Phase {
    feed_ns: u64,
    close_ns: Vec<u64>,
}

impl Phase {
    fn run_minute(
        &mut self,
        detector: &mut Detector,
        pool: &TrafficPool,
        segments: &[Vec<usize>],
        (index, minute): (u64, Minute),
        events: &mut Vec<AlertEvent>,
    ) {
        let started = Instant::now();
        feed(detector, pool, segments, index);
        let fed = Instant::now();
        detector.close_minute(minute, events);
        self.feed_ns += (fed - started).as_nanos() as u64;
        self.close_ns.push(fed.elapsed().as_nanos() as u64);
    }

    fn minutes(&self) -> usize {
        self.close_ns.len()
    }

    fn close_ms(&self) -> (f64, f64, f64) {
        let mut sorted = self.close_ns.clone();
        sorted.sort_unstable();
        let mean = sorted.iter().sum::<u64>() as f64 / sorted.len().max(1) as f64;
        let p50 = sorted.get(sorted.len() / 2).copied().unwrap_or(0) as f64;
        let max = sorted.last().copied().unwrap_or(0) as f64;
        (mean / 1e6, p50 / 1e6, max / 1e6)
    }

    /// `close_minute` per series per minute.
    fn close_ns_per_series(&self, n_series: usize) -> f64 {
        self.close_ms().0 * 1e6 / n_series as f64
    }

    /// Feeding per `record` call (one per series per minute), the generator's cost removed.
    fn record_ns(&self, n_series: usize, generator_ns: f64) -> f64 {
        self.feed_ns as f64 / (self.minutes().max(1) * n_series) as f64 - generator_ns
    }
}

/// How a benchmark's `--series` are laid out: funnels of [`DETECT_SEGMENTS_PER_FUNNEL`]
/// segments, each watching the [`DETECT_STAGES`] series, and the config that says so.
pub(super) struct Layout {
    pub(super) per_segment: usize,
    pub(super) n_funnels: usize,
    pub(super) per_funnel: usize,
    /// The series actually laid out: `series` rounded down to whole segments.
    pub(super) n_series: usize,
    pub(super) config: Config,
}

impl Layout {
    pub(super) fn of(series: usize) -> anyhow::Result<Layout> {
        let per_segment = DETECT_STAGES.len();
        let all_segments = series / per_segment;
        anyhow::ensure!(all_segments >= 1, "--series must be at least {per_segment}");
        let n_funnels = all_segments.div_ceil(DETECT_SEGMENTS_PER_FUNNEL);
        anyhow::ensure!(
            n_funnels <= revloop_core::config::FUNNELS_MAX,
            "--series must be at most {}",
            revloop_core::config::FUNNELS_MAX * DETECT_SEGMENTS_PER_FUNNEL * per_segment
        );
        let per_funnel = all_segments / n_funnels;
        let config = Config::parse(&detect_config(n_funnels))
            .map_err(|err| anyhow::anyhow!("the bench config is invalid: {err}"))?;
        Ok(Layout {
            per_segment,
            n_funnels,
            per_funnel,
            n_series: n_funnels * per_funnel * per_segment,
            config,
        })
    }
}

pub fn run(series: usize, minutes: u64, warmup_minutes: u64) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(minutes >= 1, "--minutes must be at least 1");
    let Layout {
        per_segment,
        n_funnels,
        per_funnel,
        n_series,
        config,
    } = Layout::of(series)?;
    let pool = TrafficPool::new(42);
    let pid = std::process::id();
    let rss_before_kib = status_kib(pid, "VmRSS:");

    let mut detector = Detector::new(&config);
    let values: Vec<String> = (1..per_funnel)
        .map(|value| format!("v{value:03}"))
        .collect();
    let segments = watch_segments(&mut detector, n_funnels, &values)?;
    // Monday 2026-11-02 00:00 in the funnels' time zone (New York).
    let start = Timestamp::parse_rfc3339("2026-11-02T05:00:00Z")?.minute();
    let at = |index: u64| (index, start.plus(index as i64));
    let mut events = Vec::new();

    eprintln!(
        "  {n_series} series: {n_funnels} funnels x {per_funnel} segments x {per_segment}; \
         warm-up of {warmup_minutes} minutes"
    );
    let mut learning = Phase::default();
    let mut day = Phase::default();
    for index in 0..warmup_minutes {
        day.run_minute(&mut detector, &pool, &segments, at(index), &mut events);
        if day.minutes() == 24 * 60 || index + 1 == warmup_minutes {
            eprintln!(
                "  warm-up minute {:>6}: close_minute {:.1} ns per series, feeding {:.1} ns per series",
                index + 1,
                day.close_ns_per_series(n_series),
                day.record_ns(n_series, 0.0)
            );
            learning.feed_ns += day.feed_ns;
            learning.close_ns.append(&mut day.close_ns);
            day = Phase::default();
        }
    }
    let warmup_events = events.len();
    events.clear();
    let rss_warm_kib = status_kib(pid, "VmRSS:");

    let mut measured = Phase::default();
    for index in warmup_minutes..warmup_minutes + minutes {
        measured.run_minute(&mut detector, &pool, &segments, at(index), &mut events);
    }
    let peak_kib = status_kib(pid, "VmHWM:");

    let generator_ns = generator_ns(&pool, &segments, warmup_minutes, minutes, n_series);

    let lookup_ns = lookup_ns(&mut detector, n_funnels, &values);

    let mut statuses: std::collections::BTreeMap<&str, usize> = Default::default();
    for funnel in 0..n_funnels {
        for report in detector.report(funnel) {
            *statuses.entry(report.status.as_str()).or_default() += 1;
        }
    }

    // The server's detection tick works on a copy of the detector, once a minute.
    let clone_started = Instant::now();
    let copy = detector.clone();
    let clone_ms = clone_started.elapsed().as_secs_f64() * 1e3;
    let rss_with_copy_kib = status_kib(pid, "VmRSS:");
    drop(copy);

    let detector_kib = rss_warm_kib.saturating_sub(rss_before_kib);
    let history_minutes = i64::from(config.detection.baseline_weeks) * 7 * 24 * 60
        + config.detection.learning.millis() / MS_PER_MINUTE
        + 24 * 60;
    let learning_minutes = config.detection.learning.millis() / MS_PER_MINUTE;
    let learning_ns = learning.close_ns_per_series(n_series);
    let measured_ns = measured.close_ns_per_series(n_series);
    let record_ns = measured.record_ns(n_series, generator_ns);
    let rebuild_s = n_series as f64
        * (learning_minutes as f64 * (learning_ns + record_ns)
            + (history_minutes - learning_minutes) as f64 * (measured_ns + record_ns))
        / 1e9;
    let phase_name = if statuses.get("learning").copied().unwrap_or(0) > 0 {
        "learning"
    } else {
        "judged"
    };

    Figures {
        n_series,
        n_funnels,
        per_funnel,
        per_segment,
        window_minutes: detector.window_minutes(),
        phases: [("learning", &learning), (phase_name, &measured)],
        record_ns,
        generator_ns,
        lookup_ns,
        measured_ns,
        rebuild_s,
        history_minutes,
        learning_minutes,
        statuses,
        warmup_events,
        measured_events: events.len(),
        detector_kib,
        peak_kib,
        clone_ms,
        rss_with_copy_kib,
    }
    .print();
    Ok(ExitCode::SUCCESS)
}

/// Makes the detector watch every bench segment; their indices per funnel.
pub(super) fn watch_segments(
    detector: &mut Detector,
    n_funnels: usize,
    values: &[String],
) -> anyhow::Result<Vec<Vec<usize>>> {
    let mut segments = Vec::with_capacity(n_funnels);
    for funnel in 0..n_funnels {
        let mut indices = Vec::with_capacity(values.len());
        for value in values {
            indices.push(
                detector
                    .segment(funnel, Some((DETECT_DIMENSION, value)))
                    .context("a bench segment is not watched")?,
            );
        }
        segments.push(indices);
    }
    Ok(segments)
}

/// The generator alone, over the measured minutes again: the best of three passes, in ns per
/// series per minute.
fn generator_ns(
    pool: &TrafficPool,
    segments: &[Vec<usize>],
    warmup_minutes: u64,
    minutes: u64,
    n_series: usize,
) -> f64 {
    (0..3)
        .map(|_| {
            let started = Instant::now();
            for index in warmup_minutes..warmup_minutes + minutes {
                feed_nothing(pool, segments, index);
            }
            started.elapsed().as_nanos() as f64 / (minutes.max(1) as usize * n_series) as f64
        })
        .fold(f64::INFINITY, f64::min)
}

/// The server's runner looks each count row's segment up by name before `record`: ns per
/// lookup.
fn lookup_ns(detector: &mut Detector, n_funnels: usize, values: &[String]) -> f64 {
    let lookups_started = Instant::now();
    let mut lookups = 0_u64;
    while lookups < 1_000_000 {
        for funnel in 0..n_funnels {
            for value in values {
                std::hint::black_box(detector.segment(funnel, Some((DETECT_DIMENSION, value))));
            }
        }
        lookups += (n_funnels * values.len()).max(1) as u64;
    }
    lookups_started.elapsed().as_nanos() as f64 / lookups as f64
}

/// What `bench detect` prints.
struct Figures<'p> {
    n_series: usize,
    n_funnels: usize,
    per_funnel: usize,
    per_segment: usize,
    window_minutes: usize,
    phases: [(&'p str, &'p Phase); 2],
    record_ns: f64,
    generator_ns: f64,
    lookup_ns: f64,
    measured_ns: f64,
    rebuild_s: f64,
    history_minutes: i64,
    learning_minutes: i64,
    statuses: std::collections::BTreeMap<&'p str, usize>,
    warmup_events: usize,
    measured_events: usize,
    detector_kib: u64,
    peak_kib: u64,
    clone_ms: f64,
    rss_with_copy_kib: u64,
}

impl Figures<'_> {
    fn print(&self) {
        let Figures {
            n_series,
            n_funnels,
            per_funnel,
            per_segment,
            record_ns,
            generator_ns,
            lookup_ns,
            measured_ns,
            rebuild_s,
            history_minutes,
            learning_minutes,
            warmup_events,
            detector_kib,
            peak_kib,
            clone_ms,
            rss_with_copy_kib,
            ..
        } = *self;
        let statuses = &self.statuses;
        println!(
            "detect benchmark: {n_series} series = {n_funnels} funnel{} x {per_funnel} segments \
             (the funnel as a whole and {} values of one dimension) x {per_segment} series \
             (4 conversion steps, entry volume); window {} min",
            if n_funnels == 1 { "" } else { "s" },
            per_funnel - 1,
            self.window_minutes
        );
        println!(
            "  phase         minutes  close_minute per minute (mean, p50, max)   ns per series-minute"
        );
        for (name, phase) in self.phases {
            if phase.minutes() == 0 {
                continue;
            }
            let (mean, p50, max) = phase.close_ms();
            println!(
                "  {name:<12}  {:>7}  {mean:>9.2} ms, {p50:>9.2} ms, {max:>9.2} ms   {:>8.1}",
                phase.minutes(),
                phase.close_ns_per_series(n_series)
            );
        }
        println!(
            "  record():           {record_ns:.1} ns per call, one call per series per minute \
             (generator's {generator_ns:.1} ns subtracted)"
        );
        println!(
            "  segment() by name:  {lookup_ns:.1} ns per call (the server's runner: one per count row)"
        );
        println!(
            "  100,000 series:     {:.1} ms to judge one minute on one core \
             (close_minute + record at {measured_ns:.1} + {record_ns:.1} ns per series)",
            100_000.0 * (measured_ns + record_ns) / 1e6
        );
        println!(
            "  rebuild estimate:   {rebuild_s:.0} s to replay {} days of history at this size \
             (first {} days learning, then judged)",
            history_minutes / (24 * 60),
            learning_minutes / (24 * 60)
        );
        println!(
            "  series after the measured minutes: {} (conversion series only); alert events: \
             {warmup_events} in the warm-up, {} in the measured minutes",
            statuses
                .iter()
                .map(|(status, n)| format!("{n} {status}"))
                .collect::<Vec<_>>()
                .join(", "),
            self.measured_events
        );
        println!(
            "  memory:             detector {:.1} MiB after the warm-up ({:.0} bytes per series), \
             peak RSS {:.1} MiB",
            detector_kib as f64 / 1024.0,
            detector_kib as f64 * 1024.0 / n_series as f64,
            peak_kib as f64 / 1024.0
        );
        println!(
            "  Detector::clone():  {clone_ms:.1} ms, RSS {:.1} MiB with the copy \
             (what a snapshot of the detector costs, as `revloop eval` takes per scenario)",
            rss_with_copy_kib as f64 / 1024.0
        );
    }
}
