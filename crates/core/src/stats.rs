//! The statistics the detector stands on, each small enough to check against a published or
//! hand-computed value.
//!
//! - Control limits for a proportion: the Shewhart p-chart, `p̄ ± k·√(p̄(1−p̄)/n)`, and Laney's
//!   p′-chart, which widens them by the between-sample variation real data shows.
//! - The cumulative-sum (CUSUM) detector for a sustained shift, in its likelihood-ratio form,
//!   and its in-control average run length (ARL₀): by Siegmund's corrected diffusion
//!   approximation (fast, used to set thresholds) and by the Brook–Evans Markov chain (exact up
//!   to discretisation, used to check the approximation).
//! - The Kullback–Leibler divergence of two Bernoulli laws, which bounds how fast any detector
//!   can find a change (Lorden): about `ln(ARL₀) / (n·KL(p₁‖p₀))` observations.

/// Lower and upper control limits around a centre line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub center: f64,
    pub lower: f64,
    pub upper: f64,
}

/// The pooled proportion of `(defectives, sample size)` samples.
pub fn pooled_proportion(samples: &[(u64, u64)]) -> f64 {
    let (x, n) = samples
        .iter()
        .fold((0u64, 0u64), |(x, n), s| (x + s.0, n + s.1));
    if n == 0 { 0.0 } else { x as f64 / n as f64 }
}

/// The binomial standard deviation of a proportion `p` measured on `n` trials.
pub fn binomial_sd(p: f64, n: f64) -> f64 {
    if n <= 0.0 {
        return f64::INFINITY;
    }
    (p * (1.0 - p) / n).sqrt()
}

/// Shewhart p-chart limits `p̄ ± k·√(p̄(1−p̄)/n)`, clamped to `[0, 1]`.
pub fn p_chart_limits(p_bar: f64, n: f64, k: f64) -> Limits {
    laney_limits(p_bar, n, 1.0, k)
}

/// Laney's σ_z: the spread of the samples' standardised deviations, estimated from their
/// average moving range (`MR̄ / 1.128`). It is 1 for pure binomial variation and grows with
/// the extra between-sample variation of overdispersed data.
pub fn laney_sigma_z(samples: &[(u64, u64)]) -> f64 {
    let p_bar = pooled_proportion(samples);
    let z: Vec<f64> = samples
        .iter()
        .filter(|s| s.1 > 0)
        .map(|&(x, n)| (x as f64 / n as f64 - p_bar) / binomial_sd(p_bar, n as f64))
        .collect();
    if z.len() < 2 {
        return 1.0;
    }
    let moving_range: f64 =
        z.windows(2).map(|w| (w[1] - w[0]).abs()).sum::<f64>() / (z.len() - 1) as f64;
    moving_range / 1.128
}

/// Laney p′ limits `p̄ ± k·σ_z·√(p̄(1−p̄)/n)`, clamped to `[0, 1]`.
pub fn laney_limits(p_bar: f64, n: f64, sigma_z: f64, k: f64) -> Limits {
    let half_width = k * sigma_z * binomial_sd(p_bar, n);
    Limits {
        center: p_bar,
        lower: (p_bar - half_width).max(0.0),
        upper: (p_bar + half_width).min(1.0),
    }
}

/// The standard deviation of a proportion measured on `n` trials when, on top of binomial
/// noise, the true proportion itself varies from window to window with variance `tau2` (the
/// beta-binomial, or random-effects, view of overdispersion). At small `n` the binomial term
/// dominates; at large `n` the between-window term does, so limits stop shrinking as traffic
/// grows, as real funnels show.
pub fn overdispersed_sd(p: f64, n: f64, tau2: f64) -> f64 {
    if n <= 0.0 {
        return f64::INFINITY;
    }
    (p * (1.0 - p) / n + tau2).sqrt()
}

/// `KL(Bernoulli(p1) ‖ Bernoulli(p0))` in nats.
pub fn kl_bernoulli(p1: f64, p0: f64) -> f64 {
    let term = |a: f64, b: f64| if a <= 0.0 { 0.0 } else { a * (a / b).ln() };
    term(p1, p0) + term(1.0 - p1, 1.0 - p0)
}

/// Lorden's lower bound on the expected detection delay, in observations of `n` trials each,
/// of any detector whose false alarms come no more often than every `arl0` observations:
/// `ln(arl0) / (n·KL(p1‖p0))`.
pub fn delay_lower_bound(arl0: f64, n: f64, p1: f64, p0: f64) -> f64 {
    arl0.ln() / (n * kl_bernoulli(p1, p0))
}

/// The standard normal distribution function.
pub fn normal_cdf(z: f64) -> f64 {
    0.5 * erfc(-z / std::f64::consts::SQRT_2)
}

/// The complementary error function, to about 1e-7 relative accuracy (Numerical Recipes'
/// Chebyshev fit), enough for run-length arithmetic.
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let result = t * poly.exp();
    if x >= 0.0 { result } else { 2.0 - result }
}

/// A one-sided CUSUM in its log-likelihood-ratio form, for a shift of `delta` standard
/// deviations in one observation: `S ← max(0, S + delta·(z − delta/2))`, alarming when
/// `S > h`. The [`Cusum`] here is its state.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Cusum {
    pub statistic: f64,
}

impl Cusum {
    /// Adds one observation's log-likelihood ratio; returns whether the statistic is above `h`.
    pub fn update(&mut self, log_likelihood_ratio: f64, h: f64) -> bool {
        self.statistic = (self.statistic + log_likelihood_ratio).max(0.0);
        self.statistic > h
    }

    pub fn reset(&mut self) {
        self.statistic = 0.0;
    }
}

/// The log-likelihood ratio of one Gaussian observation `x` with variance `variance`, for a
/// mean of `mu0 + shift` against `mu0`.
pub fn gaussian_llr(x: f64, mu0: f64, shift: f64, variance: f64) -> f64 {
    shift * (x - mu0 - shift / 2.0) / variance
}

/// The log-likelihood ratio of `k` events out of `n` trials for a probability of `p1`
/// against `p0`, divided by `inflation`: the quasi-likelihood of overdispersed counts, whose
/// variance is `inflation` times the binomial. Exact at small `n`, where a Gaussian
/// approximation of a proportion breaks down.
pub fn binomial_llr(n: f64, k: f64, p0: f64, p1: f64, inflation: f64) -> f64 {
    (k * (p1 / p0).ln() + (n - k) * ((1.0 - p1) / (1.0 - p0)).ln()) / inflation
}

/// The `z` with `P(Z > z) = tail` for a standard normal `Z`.
pub fn normal_upper_quantile(tail: f64) -> f64 {
    let (mut low, mut high) = (-40.0_f64, 40.0_f64);
    for _ in 0..200 {
        let mid = 0.5 * (low + high);
        if 1.0 - normal_cdf(mid) > tail {
            low = mid;
        } else {
            high = mid;
        }
    }
    0.5 * (low + high)
}

/// Siegmund's approximation of the average run length of the standardised CUSUM
/// `S ← max(0, S + z − k)`, threshold `h`, when `z ~ N(mu, 1)`:
/// `(exp(−2Δb) + 2Δb − 1) / (2Δ²)` with `Δ = mu − k` and `b = h + 1.166`.
pub fn siegmund_arl(k: f64, h: f64, mu: f64) -> f64 {
    let drift = mu - k;
    let b = h + 1.166;
    if drift.abs() < 1e-9 {
        return b * b;
    }
    ((-2.0 * drift * b).exp() + 2.0 * drift * b - 1.0) / (2.0 * drift * drift)
}

/// The average run length of the same CUSUM by the Brook–Evans Markov chain with `states`
/// states (100 gives three significant figures for the usual designs).
pub fn markov_arl(k: f64, h: f64, mu: f64, states: usize) -> f64 {
    let m = states.max(2);
    let w = 2.0 * h / (2 * m - 1) as f64;
    // (I − R) L = 1, R the transitions among the non-absorbing states.
    let mut a = vec![vec![0.0; m + 1]; m];
    for (i, row) in a.iter_mut().enumerate() {
        let from = i as f64 * w;
        for (j, cell) in row.iter_mut().take(m).enumerate() {
            let upper = normal_cdf((j as f64 + 0.5) * w - from + k - mu);
            let lower = if j == 0 {
                0.0
            } else {
                normal_cdf((j as f64 - 0.5) * w - from + k - mu)
            };
            *cell = -(upper - lower);
        }
        row[i] += 1.0;
        row[m] = 1.0;
    }
    // Gaussian elimination with partial pivoting.
    for col in 0..m {
        let pivot = (col..m)
            .max_by(|&x, &y| a[x][col].abs().total_cmp(&a[y][col].abs()))
            .expect("non-empty");
        a.swap(col, pivot);
        let (done, rest) = a.split_at_mut(col + 1);
        let pivot_row = &done[col];
        for row in rest {
            let factor = row[col] / pivot_row[col];
            if factor != 0.0 {
                for (cell, pivot_cell) in row[col..].iter_mut().zip(&pivot_row[col..]) {
                    *cell -= factor * pivot_cell;
                }
            }
        }
    }
    let mut solution = vec![0.0; m];
    for row in (0..m).rev() {
        let tail: f64 = (row + 1..m).map(|c| a[row][c] * solution[c]).sum();
        solution[row] = (a[row][m] - tail) / a[row][row];
    }
    solution[0]
}

/// The in-control ARL of the likelihood-ratio CUSUM for a shift of `delta` standard
/// deviations with threshold `h`, by Siegmund's approximation. The LLR CUSUM with threshold
/// `h` is the standardised one with `k = delta/2` and threshold `h/delta`.
pub fn llr_cusum_arl0(delta: f64, h: f64) -> f64 {
    siegmund_arl(delta / 2.0, h / delta, 0.0)
}

/// The average delay of the same CUSUM when the shift it was designed for is present.
pub fn llr_cusum_arl1(delta: f64, h: f64) -> f64 {
    siegmund_arl(delta / 2.0, h / delta, delta)
}

/// The smallest threshold whose in-control ARL is at least `arl0` observations.
pub fn llr_cusum_threshold(delta: f64, arl0: f64) -> f64 {
    let (mut low, mut high) = (0.0_f64, 1.0_f64);
    while llr_cusum_arl0(delta, high) < arl0 {
        high *= 2.0;
        if high > 1e4 {
            return high;
        }
    }
    for _ in 0..100 {
        let mid = 0.5 * (low + high);
        if llr_cusum_arl0(delta, mid) < arl0 {
            low = mid;
        } else {
            high = mid;
        }
    }
    high
}

/// A median of a slice (sorted in place); `None` when empty.
pub fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[mid]
    } else {
        0.5 * (values[mid - 1] + values[mid])
    })
}

/// The `q`-quantile (0..=1) by the nearest-rank method; `None` when empty.
pub fn quantile(values: &mut [f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let rank = (q * values.len() as f64).ceil().max(1.0) as usize;
    Some(values[rank.min(values.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use proptest::prelude::*;

    /// qcc's `orangejuice` data (Montgomery, Introduction to Statistical Quality Control,
    /// Table 7.1): nonconforming cans in the 30 trial samples of 50.
    const ORANGE_JUICE: [u64; 30] = [
        12, 15, 8, 10, 4, 7, 16, 9, 14, 10, 5, 6, 17, 12, 22, 8, 10, 5, 13, 11, 20, 18, 24, 15, 9,
        12, 7, 13, 9, 6,
    ];

    fn close(got: f64, want: f64, tolerance: f64) {
        assert!(
            (got - want).abs() <= tolerance,
            "got {got}, want {want} ± {tolerance}"
        );
    }

    #[test]
    fn p_chart_matches_qcc_orangejuice() {
        let samples: Vec<(u64, u64)> = ORANGE_JUICE.iter().map(|&d| (d, 50)).collect();
        let p_bar = pooled_proportion(&samples);
        close(p_bar, 0.2313, 5e-5);
        let limits = p_chart_limits(p_bar, 50.0, 3.0);
        close(limits.lower, 0.0524, 5e-5);
        close(limits.upper, 0.4102, 5e-5);
    }

    #[test]
    fn laney_widens_limits_by_the_moving_range() {
        // Hand-computed: z_i = (p_i − p̄)/σ_p, MR̄ = mean |z_i − z_(i−1)| = 1.87346, /1.128.
        let samples: Vec<(u64, u64)> = ORANGE_JUICE.iter().map(|&d| (d, 50)).collect();
        let sigma_z = laney_sigma_z(&samples);
        close(sigma_z, 1.660_867, 1e-5);
        let limits = laney_limits(pooled_proportion(&samples), 50.0, sigma_z, 3.0);
        close(limits.lower, 0.0, 0.0);
        close(limits.upper, 0.528_472, 1e-5);
        // Samples that vary exactly as a binomial would have σ_z ≈ 1.
        let mut rng = Rng::new(7);
        let binomial: Vec<(u64, u64)> = (0..2_000)
            .map(|_| ((0..400).filter(|_| rng.bernoulli(0.3)).count() as u64, 400))
            .collect();
        close(laney_sigma_z(&binomial), 1.0, 0.05);
    }

    #[test]
    fn overdispersion_adds_a_floor_to_the_standard_deviation() {
        close(overdispersed_sd(0.25, 100.0, 0.0), 0.043_301, 1e-6);
        close(overdispersed_sd(0.25, 1e9, 0.0004), 0.02, 1e-6);
        assert_eq!(overdispersed_sd(0.25, 0.0, 0.0), f64::INFINITY);
    }

    #[test]
    fn kl_and_the_delay_bound_by_hand() {
        // 0.595·ln(0.595/0.85) + 0.405·ln(0.405/0.15) = −0.212222 + 0.402267.
        close(kl_bernoulli(0.595, 0.85), 0.190_045, 1e-6);
        assert_eq!(kl_bernoulli(0.3, 0.3), 0.0);
        close(
            delay_lower_bound(1e5, 20.0, 0.595, 0.85),
            1e5f64.ln() / (20.0 * 0.190_045),
            1e-4,
        );
    }

    #[test]
    fn binomial_llr_by_hand() {
        // 3 of 10 at 0.3 against 0.15: 3·ln 2 + 7·ln(0.7/0.85) = 2.079442 − 1.359092.
        close(binomial_llr(10.0, 3.0, 0.15, 0.3, 1.0), 0.720_349, 1e-6);
        close(binomial_llr(10.0, 3.0, 0.15, 0.3, 2.0), 0.360_175, 1e-6);
        // Its mean under p0 is −KL(p0‖p1) per trial.
        let mean: f64 = (0..=10)
            .map(|k| {
                let choose = (1..=k).fold(1.0, |c, i| c * (10 - k + i) as f64 / i as f64);
                let probability = choose * 0.15f64.powi(k) * 0.85f64.powi(10 - k);
                probability * binomial_llr(10.0, k as f64, 0.15, 0.3, 1.0)
            })
            .sum();
        close(mean, -10.0 * kl_bernoulli(0.15, 0.3), 1e-9);
    }

    #[test]
    fn normal_cdf_by_table() {
        close(normal_upper_quantile(0.025), 1.959_964, 1e-5);
        close(normal_upper_quantile(0.001_349_898), 3.0, 1e-5);
        close(normal_cdf(0.0), 0.5, 1e-7);
        close(normal_cdf(1.959_964), 0.975, 1e-6);
        close(normal_cdf(-3.0), 0.001_349_898, 1e-7);
    }

    #[test]
    fn cusum_run_lengths_match_published_values() {
        // The one-sided standardised CUSUM with k = 0.5: ARL₀ ≈ 336 at h = 4 and ≈ 930 at
        // h = 5; with a one-σ shift, ARL₁ ≈ 8.38 and 10.4 (Montgomery, Table 9.3, halved
        // for one side where in control).
        close(markov_arl(0.5, 4.0, 0.0, 200), 336.0, 3.0);
        close(markov_arl(0.5, 5.0, 0.0, 200), 930.0, 8.0);
        close(markov_arl(0.5, 4.0, 1.0, 200), 8.38, 0.05);
        close(markov_arl(0.5, 5.0, 1.0, 200), 10.4, 0.05);
        close(siegmund_arl(0.5, 4.0, 0.0), 336.0, 5.0);
        close(siegmund_arl(0.5, 5.0, 0.0), 930.0, 10.0);
    }

    #[test]
    fn siegmund_agrees_with_the_markov_chain_over_the_designs_used() {
        for delta in [0.6, 0.894, 1.342, 2.0] {
            for arl0 in [1e3, 1e4, 1e5] {
                let h = llr_cusum_threshold(delta, arl0);
                let exact = markov_arl(delta / 2.0, h / delta, 0.0, 300);
                let ratio = exact / arl0;
                assert!(
                    (0.9..1.15).contains(&ratio),
                    "delta {delta}, target {arl0}: Markov chain says {exact}"
                );
            }
        }
    }

    #[test]
    fn the_threshold_meets_its_arl0_by_simulation() {
        // 200 runs to the first false alarm of an LLR CUSUM set for ARL₀ = 500.
        let delta = 0.894;
        let h = llr_cusum_threshold(delta, 500.0);
        let mut rng = Rng::new(11);
        let mut total = 0u64;
        for _ in 0..200 {
            let mut cusum = Cusum::default();
            let mut steps = 0u64;
            loop {
                steps += 1;
                if cusum.update(gaussian_llr(rng.normal(), 0.0, delta, 1.0), h) {
                    break;
                }
            }
            total += steps;
        }
        let mean = total as f64 / 200.0;
        assert!((420.0..600.0).contains(&mean), "mean run length {mean}");
    }

    #[test]
    fn the_binomial_cusum_meets_its_arl0_at_small_n() {
        // The detector's design: a 2σ shift of a 5-minute window, one-minute observations of
        // n shoppers, exact binomial log-likelihood ratios, threshold from Siegmund. On data
        // identical to baseline the mean run length must reach the target even where n is
        // small and the binomial is far from normal.
        let arl0 = 1_000.0;
        let delta = 2.0 / 5f64.sqrt();
        let h = llr_cusum_threshold(delta, arl0);
        for (n, p0, seed) in [(4u64, 0.3, 1u64), (20, 0.15, 2), (60, 0.7, 3)] {
            let window_sd = binomial_sd(p0, 5.0 * n as f64);
            let p1 = (p0 + 2.0 * window_sd).min(0.999);
            let mut rng = Rng::new(seed);
            let runs = 600;
            let mut total = 0u64;
            for _ in 0..runs {
                let mut cusum = Cusum::default();
                let mut steps = 0u64;
                loop {
                    steps += 1;
                    let k = (0..n).filter(|_| rng.bernoulli(p0)).count() as f64;
                    if cusum.update(binomial_llr(n as f64, k, p0, p1, 1.0), h) || steps > 100_000 {
                        break;
                    }
                }
                total += steps;
            }
            let mean = total as f64 / f64::from(runs);
            // 600 runs of a roughly geometric run length: a standard error of about 4%.
            assert!(
                mean >= 0.85 * arl0,
                "n {n}, p0 {p0}: mean run length {mean}"
            );
        }
    }

    #[test]
    fn quantiles() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&mut []), None);
        assert_eq!(quantile(&mut [5.0, 1.0, 4.0, 2.0, 3.0], 0.9), Some(5.0));
        assert_eq!(quantile(&mut [5.0, 1.0, 4.0, 2.0, 3.0], 0.5), Some(3.0));
    }

    proptest! {
        #[test]
        fn limits_widen_as_n_falls(p in 0.01f64..0.99, n in 2.0f64..1e6, k in 1.0f64..4.0, tau2 in 0.0f64..0.01) {
            let wide = p_chart_limits(p, n, k);
            let narrow = p_chart_limits(p, n * 2.0, k);
            prop_assert!(wide.upper >= narrow.upper && wide.lower <= narrow.lower);
            prop_assert!(overdispersed_sd(p, n, tau2) >= overdispersed_sd(p, n * 2.0, tau2));
            prop_assert!(wide.lower >= 0.0 && wide.upper <= 1.0);
        }

        #[test]
        fn the_threshold_rises_with_the_target(delta in 0.3f64..3.0, arl0 in 10.0f64..1e7) {
            let h = llr_cusum_threshold(delta, arl0);
            prop_assert!(llr_cusum_arl0(delta, h) >= arl0 * 0.999);
            prop_assert!(llr_cusum_threshold(delta, arl0 * 2.0) > h);
        }
    }
}
