//! Seeded randomness: xoshiro256** seeded through SplitMix64, and the few distributions the
//! traffic simulator draws from.
//!
//! Every draw is a pure function of the seed and the sequence of calls, so a seed replays a
//! simulation exactly. The algorithms are written out here rather than taken from a crate so
//! that the sequence never changes under a dependency upgrade; a test pins the first outputs
//! against the reference C implementation. Nothing here reads the clock or the OS entropy pool.

/// Below this mean, [`Rng::poisson`] multiplies uniforms (Knuth); from it on, it uses PTRS.
const POISSON_KNUTH_LAMBDA_MAX: f64 = 10.0;

/// A xoshiro256** generator (Blackman and Vigna, 2018).
#[derive(Debug, Clone)]
pub struct Rng {
    state: [u64; 4],
    /// The polar method yields normals in pairs; the second one waits here.
    normal_spare: Option<f64>,
}

impl Rng {
    /// Seeds the four state words with consecutive SplitMix64 outputs, as the xoshiro authors
    /// recommend, so that nearby seeds give unrelated sequences and the state is never all zero.
    pub fn new(seed: u64) -> Rng {
        let mut splitmix_state = seed;
        let state = [
            splitmix64(&mut splitmix_state),
            splitmix64(&mut splitmix_state),
            splitmix64(&mut splitmix_state),
            splitmix64(&mut splitmix_state),
        ];
        Rng {
            state,
            normal_spare: None,
        }
    }

    /// An independent generator for sub-stream `stream`, derived from this generator's state
    /// without advancing it. Forking the same state with the same stream gives the same
    /// generator; different streams give unrelated ones.
    pub fn fork(&self, stream: u64) -> Rng {
        let [s0, s1, s2, s3] = self.state;
        let state_digest = mix64(s0 ^ mix64(s1 ^ mix64(s2 ^ mix64(s3))));
        Rng::new(mix64(state_digest ^ mix64(stream ^ 0x6A09_E667_F3BC_C908)))
    }

    pub fn next_u64(&mut self) -> u64 {
        let [s0, s1, s2, s3] = &mut self.state;
        let result = s1.wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = *s1 << 17;
        *s2 ^= *s0;
        *s3 ^= *s1;
        *s1 ^= *s2;
        *s0 ^= *s3;
        *s2 ^= t;
        *s3 = s3.rotate_left(45);
        result
    }

    /// Uniform in `[0, 1)`, with 53 random bits.
    pub fn f64(&mut self) -> f64 {
        const SCALE: f64 = 1.0 / (1_u64 << 53) as f64;
        (self.next_u64() >> 11) as f64 * SCALE
    }

    /// Uniform in `0..n`, without modulo bias (Lemire's multiply-and-reject).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "below(0) has no value to return");
        let mut product = u128::from(self.next_u64()) * u128::from(n);
        let mut low = product as u64;
        if low < n {
            let threshold = n.wrapping_neg() % n;
            while low < threshold {
                product = u128::from(self.next_u64()) * u128::from(n);
                low = product as u64;
            }
        }
        (product >> 64) as u64
    }

    /// True with probability `p`. Always consumes exactly one draw, whatever `p` is, so that
    /// changing a probability does not shift the rest of the sequence.
    pub fn bernoulli(&mut self, p: f64) -> bool {
        self.f64() < p
    }

    /// Standard normal, by Marsaglia's polar method.
    pub fn normal(&mut self) -> f64 {
        if let Some(spare) = self.normal_spare.take() {
            return spare;
        }
        loop {
            let u = 2.0 * self.f64() - 1.0;
            let v = 2.0 * self.f64() - 1.0;
            let s = u * u + v * v;
            if s > 0.0 && s < 1.0 {
                let factor = (-2.0 * s.ln() / s).sqrt();
                self.normal_spare = Some(v * factor);
                return u * factor;
            }
        }
    }

    /// Poisson with mean `lambda`: Knuth's product of uniforms for small means, Hörmann's
    /// transformed rejection (PTRS, 1993) for large ones. A mean of zero or less gives 0.
    pub fn poisson(&mut self, lambda: f64) -> u64 {
        assert!(lambda.is_finite(), "poisson mean {lambda} is not finite");
        if lambda <= 0.0 {
            return 0;
        }
        if lambda < POISSON_KNUTH_LAMBDA_MAX {
            return self.poisson_knuth(lambda);
        }
        self.poisson_ptrs(lambda)
    }

    fn poisson_knuth(&mut self, lambda: f64) -> u64 {
        let limit = (-lambda).exp();
        let mut product = self.f64();
        let mut k = 0;
        while product > limit {
            k += 1;
            product *= self.f64();
        }
        k
    }

    fn poisson_ptrs(&mut self, lambda: f64) -> u64 {
        let sqrt_lambda = lambda.sqrt();
        let ln_lambda = lambda.ln();
        let b = 0.931 + 2.53 * sqrt_lambda;
        let a = -0.059 + 0.02483 * b;
        let inverse_alpha = 1.1239 + 1.1328 / (b - 3.4);
        let v_r = 0.9277 - 3.6224 / (b - 2.0);
        loop {
            let u = self.f64() - 0.5;
            let v = self.f64();
            let u_s = 0.5 - u.abs();
            let k = ((2.0 * a / u_s + b) * u + lambda + 0.43).floor();
            if u_s >= 0.07 && v <= v_r {
                return k as u64;
            }
            if k < 0.0 || (u_s < 0.013 && v > u_s) {
                continue;
            }
            let log_accept = (v * inverse_alpha / (a / (u_s * u_s) + b)).ln();
            if log_accept <= -lambda + k * ln_lambda - ln_factorial(k) {
                return k as u64;
            }
        }
    }

    /// Gamma with the given shape and scale (mean `shape * scale`), by Marsaglia and Tsang
    /// (2000); shapes below 1 are boosted by one and scaled back with a uniform power.
    pub fn gamma(&mut self, shape: f64, scale: f64) -> f64 {
        assert!(
            shape > 0.0 && shape.is_finite() && scale > 0.0 && scale.is_finite(),
            "gamma needs a positive shape and scale, not {shape} and {scale}"
        );
        if shape < 1.0 {
            // 1 - f64() lies in (0, 1], so the power is never of zero.
            let boost = (1.0 - self.f64()).powf(1.0 / shape);
            return self.gamma(shape + 1.0, scale) * boost;
        }
        let d = shape - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        loop {
            let x = self.normal();
            let v = 1.0 + c * x;
            if v <= 0.0 {
                continue;
            }
            let v = v * v * v;
            let u = 1.0 - self.f64();
            let x2 = x * x;
            if u < 1.0 - 0.0331 * x2 * x2 || u.ln() < 0.5 * x2 + d * (1.0 - v + v.ln()) {
                return d * v * scale;
            }
        }
    }

    /// An index into `weights`, each chosen with probability proportional to its weight.
    /// Consumes exactly one draw.
    pub fn pick_weighted(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        assert!(
            weights.iter().all(|w| *w >= 0.0 && w.is_finite()) && total > 0.0,
            "weights must be finite, non-negative and not all zero: {weights:?}"
        );
        let mut remaining = self.f64() * total;
        let mut last_positive = 0;
        for (index, weight) in weights.iter().enumerate() {
            if *weight > 0.0 {
                if remaining < *weight {
                    return index;
                }
                remaining -= weight;
                last_positive = index;
            }
        }
        // Rounding in the running subtraction can leave a sliver past the last weight.
        last_positive
    }
}

/// One step of SplitMix64 (Steele, Lea and Flood, 2014).
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    mix64(*state)
}

/// SplitMix64's finaliser: a bijective avalanche of 64 bits.
pub fn mix64(value: u64) -> u64 {
    let mut z = value;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `ln(k!)` for a non-negative integer `k` held in a float: exact sums below 16, the Stirling
/// series with three correction terms above (error below 1e-12 there).
fn ln_factorial(k: f64) -> f64 {
    const EXACT_BELOW: f64 = 16.0;
    if k < EXACT_BELOW {
        return (2..=k as u64).map(|i| (i as f64).ln()).sum();
    }
    let x = k + 1.0;
    let x2 = x * x;
    (x - 0.5) * x.ln() - x + 0.5 * (2.0 * std::f64::consts::PI).ln() + 1.0 / (12.0 * x)
        - 1.0 / (360.0 * x * x2)
        + 1.0 / (1260.0 * x * x2 * x2)
}

#[cfg(test)]
mod tests {
    use super::*;

    const N_DRAWS: usize = 100_000;

    #[test]
    fn matches_the_reference_implementation() {
        // From the authors' xoshiro256starstar.c seeded with splitmix64.c.
        let cases: [(u64, [u64; 3]); 2] = [
            (
                0,
                [0x99ec5f36cb75f2b4, 0xbf6e1f784956452a, 0x1a5f849d4933e6e0],
            ),
            (
                42,
                [0x15780b2e0c2ec716, 0x6104d9866d113a7e, 0xae17533239e499a1],
            ),
        ];
        for (seed, want) in cases {
            let mut rng = Rng::new(seed);
            let got = [rng.next_u64(), rng.next_u64(), rng.next_u64()];
            assert_eq!(got, want, "seed {seed}");
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_sequence() {
        let draw = |seed: u64| {
            let mut rng = Rng::new(seed);
            let mut out = Vec::new();
            for _ in 0..50 {
                out.push(rng.next_u64());
                out.push(rng.below(1_000));
                out.push(rng.poisson(400.0));
                out.push(rng.normal().to_bits());
                out.push(rng.gamma(2.0, 3.0).to_bits());
            }
            out
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }

    #[test]
    fn forks_are_stable_distinct_and_leave_the_parent_alone() {
        let parent = Rng::new(1);
        let first = |mut rng: Rng| rng.next_u64();
        assert_eq!(first(parent.fork(3)), first(parent.fork(3)));
        assert_ne!(first(parent.fork(3)), first(parent.fork(4)));
        assert_ne!(first(parent.fork(3)), first(Rng::new(1)));
        assert_ne!(first(parent.fork(3)), first(Rng::new(2).fork(3)));
        assert_eq!(first(parent.clone()), first(Rng::new(1)));
    }

    fn mean_and_variance(samples: impl Iterator<Item = f64>) -> (f64, f64) {
        let values: Vec<f64> = samples.collect();
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
        (mean, variance)
    }

    /// Checks the sample mean and variance of a distribution against its own, within five
    /// standard errors. The standard error of the sample variance grows with the excess
    /// kurtosis, which is why each case states it.
    fn check_moments(
        what: &str,
        mut draw: impl FnMut(&mut Rng) -> f64,
        (mean_want, variance_want, excess_kurtosis): (f64, f64, f64),
    ) {
        let mut rng = Rng::new(0x5EED);
        let (mean, variance) = mean_and_variance((0..N_DRAWS).map(|_| draw(&mut rng)));
        let n = N_DRAWS as f64;
        let mean_tolerance = 5.0 * (variance_want / n).sqrt();
        let variance_tolerance = 5.0 * variance_want * ((excess_kurtosis + 2.0) / n).sqrt();
        assert!(
            (mean - mean_want).abs() <= mean_tolerance,
            "{what}: mean {mean}, want {mean_want} ± {mean_tolerance}"
        );
        assert!(
            (variance - variance_want).abs() <= variance_tolerance,
            "{what}: variance {variance}, want {variance_want} ± {variance_tolerance}"
        );
    }

    /// Mean, variance and excess kurtosis of Poisson(lambda).
    fn poisson_moments(lambda: f64) -> (f64, f64, f64) {
        (lambda, lambda, 1.0 / lambda)
    }

    /// Mean, variance and excess kurtosis of Gamma(shape, scale).
    fn gamma_moments(shape: f64, scale: f64) -> (f64, f64, f64) {
        (shape * scale, shape * scale * scale, 6.0 / shape)
    }

    #[test]
    fn distributions_have_their_moments() {
        check_moments("uniform", |rng| rng.f64(), (0.5, 1.0 / 12.0, -1.2));
        check_moments("below(10)", |rng| rng.below(10) as f64, (4.5, 8.25, -1.224));
        check_moments("normal", |rng| rng.normal(), (0.0, 1.0, 0.0));
        for lambda in [0.5, 3.0, 9.9, 10.0, 12.0, 400.0, 1e6] {
            check_moments(
                &format!("poisson({lambda})"),
                |rng| rng.poisson(lambda) as f64,
                poisson_moments(lambda),
            );
        }
        for (shape, scale) in [(0.5, 2.0), (1.0, 1.0), (2.0, 3.0), (9.0, 0.5)] {
            check_moments(
                &format!("gamma({shape}, {scale})"),
                |rng| rng.gamma(shape, scale),
                gamma_moments(shape, scale),
            );
        }
    }

    #[test]
    fn small_poisson_probabilities_match_the_mass_function() {
        let mut rng = Rng::new(11);
        let mut n_by_k = [0_usize; 4];
        for _ in 0..N_DRAWS {
            let k = rng.poisson(1.5) as usize;
            if k < n_by_k.len() {
                n_by_k[k] += 1;
            }
        }
        let mut mass = (-1.5_f64).exp();
        for (k, n) in n_by_k.iter().enumerate() {
            let share = *n as f64 / N_DRAWS as f64;
            assert!(
                (share - mass).abs() < 0.005,
                "P({k}) = {share}, want {mass}"
            );
            mass *= 1.5 / (k + 1) as f64;
        }
        assert_eq!(rng.poisson(0.0), 0);
        assert_eq!(rng.poisson(-1.0), 0);
    }

    #[test]
    fn weighted_picks_follow_their_weights() {
        let cases: &[&[f64]] = &[
            &[1.0],
            &[0.58, 0.36, 0.06],
            &[0.0, 3.0, 0.0, 1.0],
            &[5.0, 5.0],
        ];
        for weights in cases {
            let mut rng = Rng::new(3);
            let mut n_picked = vec![0_usize; weights.len()];
            for _ in 0..N_DRAWS {
                n_picked[rng.pick_weighted(weights)] += 1;
            }
            let total: f64 = weights.iter().sum();
            for (index, weight) in weights.iter().enumerate() {
                let share = n_picked[index] as f64 / N_DRAWS as f64;
                let want = weight / total;
                assert!(
                    (share - want).abs() < 0.01,
                    "{weights:?}[{index}]: {share}, want {want}"
                );
            }
        }
    }

    #[test]
    fn ln_factorial_is_continuous_across_its_two_methods() {
        for k in [0_u64, 1, 5, 15, 16, 17, 30, 170] {
            let exact: f64 = (2..=k).map(|i| (i as f64).ln()).sum();
            let got = ln_factorial(k as f64);
            assert!((got - exact).abs() < 1e-9, "ln({k}!) = {got}, want {exact}");
        }
    }

    #[test]
    fn below_stays_in_range() {
        let mut rng = Rng::new(5);
        for n in [1_u64, 2, 3, 7, 60_000, u64::MAX] {
            for _ in 0..1_000 {
                assert!(rng.below(n) < n, "{n}");
            }
        }
        let mut seen = [false; 7];
        for _ in 0..1_000 {
            seen[rng.below(7) as usize] = true;
        }
        assert!(seen.iter().all(|s| *s));
    }
}
