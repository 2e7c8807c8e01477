//! The delivery rules as tables: what each answer means, when the next try is, and how a
//! channel's breaker opens, probes and closes.

use proptest::prelude::*;

use super::*;

const T0: Timestamp = Timestamp::from_millis(1_800_000_000_000);

fn secs(seconds: i64) -> DurationMs {
    DurationMs::from_secs(seconds)
}

fn at(seconds: i64) -> Timestamp {
    T0.saturating_add(secs(seconds))
}

const TRANSIENT: Outcome = Outcome::Transient { retry_after: None };

#[test]
fn http_statuses_follow_the_receiver_rule() {
    let cases: &[(u16, Outcome)] = &[
        (200, Outcome::Delivered),
        (202, Outcome::Delivered),
        (204, Outcome::Delivered),
        (299, Outcome::Delivered),
        (400, Outcome::Permanent),
        (401, Outcome::Permanent),
        (404, Outcome::Permanent),
        (410, Outcome::Permanent),
        (422, Outcome::Permanent),
        (408, TRANSIENT),
        (429, TRANSIENT),
        (500, TRANSIENT),
        (502, TRANSIENT),
        (503, TRANSIENT),
        (599, TRANSIENT),
        (301, Outcome::Permanent),
        (101, Outcome::Permanent),
        (0, TRANSIENT),
        (600, TRANSIENT),
    ];
    for &(status, expected) in cases {
        assert_eq!(classify_http(status, None), expected, "status {status}");
    }
}

#[test]
fn http_retry_after_is_kept_where_the_status_retries() {
    let asked = Some(secs(7));
    assert_eq!(
        classify_http(429, asked),
        Outcome::Transient { retry_after: asked }
    );
    assert_eq!(
        classify_http(503, asked),
        Outcome::Transient { retry_after: asked }
    );
    assert_eq!(classify_http(400, asked), Outcome::Permanent);
    assert_eq!(classify_http(200, asked), Outcome::Delivered);
}

#[test]
fn smtp_codes_follow_rfc_5321() {
    let cases: &[(u16, Outcome)] = &[
        (250, Outcome::Delivered),
        (251, Outcome::Delivered),
        (421, TRANSIENT),
        (450, TRANSIENT),
        (452, TRANSIENT),
        (550, Outcome::Permanent),
        (553, Outcome::Permanent),
        (554, Outcome::Permanent),
        (0, TRANSIENT),
        (354, TRANSIENT),
    ];
    for &(code, expected) in cases {
        assert_eq!(classify_smtp(code), expected, "code {code}");
    }
}

#[test]
fn retry_after_reads_seconds_and_http_dates() {
    // "Sun, 06 Nov 1994 08:49:37 GMT" is 784_111_777 s after the epoch.
    let date_ms = 784_111_777_000;
    let before_date = Timestamp::from_millis(date_ms - 120_000);
    let cases: &[(&str, Timestamp, Option<DurationMs>)] = &[
        ("120", T0, Some(secs(120))),
        (" 5 ", T0, Some(secs(5))),
        ("0", T0, Some(secs(0))),
        ("7200", T0, Some(RETRY_AFTER_MAX)),
        ("99999999999999999999999", T0, Some(RETRY_AFTER_MAX)),
        (
            "Sun, 06 Nov 1994 08:49:37 GMT",
            before_date,
            Some(secs(120)),
        ),
        // A wrong weekday does not make the instant ambiguous.
        (
            "Mon, 06 Nov 1994 08:49:37 GMT",
            before_date,
            Some(secs(120)),
        ),
        // A date in the past is no wait at all.
        ("Sun, 06 Nov 1994 08:49:37 GMT", T0, Some(secs(0))),
        // A date far ahead waits at most RETRY_AFTER_MAX.
        (
            "Sun, 06 Nov 1994 08:49:37 GMT",
            Timestamp::from_millis(date_ms - 86_400_000),
            Some(RETRY_AFTER_MAX),
        ),
        ("", T0, None),
        ("-5", T0, None),
        ("1.5", T0, None),
        ("soon", T0, None),
        ("Sun, 06 Nov 1994", T0, None),
    ];
    for &(value, now, expected) in cases {
        assert_eq!(parse_retry_after(value, now), expected, "value {value:?}");
    }
}

#[test]
fn backoff_doubles_from_the_base_up_to_the_cap() {
    let policy = RetryPolicy::default();
    let expected_secs = [
        (0, 2),
        (1, 2),
        (2, 4),
        (3, 8),
        (4, 16),
        (9, 512),
        (10, 600),
        (11, 600),
    ];
    for (attempts, seconds) in expected_secs {
        assert_eq!(
            backoff(&policy, attempts),
            secs(seconds),
            "attempt {attempts}"
        );
    }
    assert_eq!(backoff(&policy, u32::MAX), policy.cap);
    let negative = RetryPolicy {
        base: secs(-1),
        ..policy
    };
    assert_eq!(backoff(&negative, 3), secs(0));
}

#[test]
fn next_attempt_waits_equal_jitter_of_the_backoff() {
    let policy = RetryPolicy::default();
    let now = at(60);
    let next = |attempts, jitter| next_attempt(&policy, attempts, T0, now, TRANSIENT, jitter);
    // Attempt 3's backoff is 8 s: at least 4 s, at most 8 s.
    assert_eq!(next(3, 0), Next::RetryAt(now.saturating_add(secs(4))));
    assert_eq!(
        next(3, u64::MAX),
        Next::RetryAt(now.saturating_add(secs(8)))
    );
    assert_eq!(
        next(3, u64::MAX / 2),
        Next::RetryAt(now.saturating_add(DurationMs::from_millis(5_999)))
    );
    // Past the cap: 10 min at most, 5 min at least.
    assert_eq!(next(20, 0), Next::RetryAt(now.saturating_add(secs(300))));
    assert_eq!(
        next(20, u64::MAX),
        Next::RetryAt(now.saturating_add(secs(600)))
    );
}

#[test]
fn next_attempt_ends_on_delivered_permanent_and_give_up() {
    let policy = RetryPolicy::default();
    let day = DurationMs::from_hours(24);
    let next = |now, outcome| next_attempt(&policy, 2, T0, now, outcome, 0);
    assert_eq!(next(at(1), Outcome::Delivered), Next::Done);
    assert_eq!(next(at(1), Outcome::Permanent), Next::GiveUp);
    // Late successes still count as delivered.
    assert_eq!(next(T0.saturating_add(day), Outcome::Delivered), Next::Done);
    let just_before = T0
        .saturating_add(day)
        .saturating_sub(DurationMs::from_millis(1));
    assert_eq!(
        next(just_before, TRANSIENT),
        Next::RetryAt(just_before.saturating_add(secs(2)))
    );
    assert_eq!(next(T0.saturating_add(day), TRANSIENT), Next::GiveUp);
}

#[test]
fn next_attempt_honours_retry_after_up_to_its_max() {
    let policy = RetryPolicy::default();
    let now = at(10);
    let asked = |wait| Outcome::Transient {
        retry_after: Some(wait),
    };
    let next = |outcome| next_attempt(&policy, 1, T0, now, outcome, u64::MAX);
    // Longer than the backoff's cap: honoured as asked.
    assert_eq!(
        next(asked(secs(900))),
        Next::RetryAt(now.saturating_add(secs(900)))
    );
    // Shorter than the backoff: honoured too.
    assert_eq!(next(asked(secs(0))), Next::RetryAt(now));
    assert_eq!(
        next(asked(DurationMs::from_hours(5))),
        Next::RetryAt(now.saturating_add(RETRY_AFTER_MAX))
    );
    assert_eq!(next(asked(secs(-3))), Next::RetryAt(now));
}

/// Feeds `n` transient failures at `now`, each let through by the breaker.
fn fail(breaker: &mut Breaker, now: Timestamp, n: u32) {
    for _ in 0..n {
        assert!(breaker.allow(now));
        breaker.record(now, TRANSIENT);
    }
}

#[test]
fn breaker_opens_after_five_failures_in_a_row() {
    let mut breaker = Breaker::new();
    fail(&mut breaker, T0, 4);
    assert_eq!(breaker.open_until(T0), None);
    // A success resets the count.
    assert!(breaker.allow(T0));
    breaker.record(T0, Outcome::Delivered);
    fail(&mut breaker, T0, 4);
    assert_eq!(breaker.open_until(T0), None);
    // Permanent refusals neither count nor reset.
    breaker.record(T0, Outcome::Permanent);
    fail(&mut breaker, T0, 1);
    assert_eq!(breaker.open_until(T0), Some(at(30)));
    assert!(!breaker.allow(at(29)));
    // A failure of an attempt already in flight does not stretch the open spell.
    breaker.record(at(10), TRANSIENT);
    assert_eq!(breaker.open_until(T0), Some(at(30)));
}

#[test]
fn breaker_lets_one_probe_through_when_half_open() {
    let mut breaker = Breaker::new();
    fail(&mut breaker, T0, 5);
    assert!(!breaker.allow(at(29)));
    assert!(breaker.allow(at(30)));
    assert!(!breaker.allow(at(30)), "only one probe at a time");
    breaker.record(at(31), Outcome::Delivered);
    assert_eq!(breaker, Breaker::new());
    assert!(breaker.allow(at(31)));
}

#[test]
fn breaker_doubles_its_open_spell_up_to_the_max() {
    assert_eq!(Breaker::OPEN_MAX, secs(60));
    let mut breaker = Breaker::new();
    fail(&mut breaker, T0, 5);
    let mut now = at(30);
    // A failed probe opens it again for twice as long, at most a minute: 60 s each time.
    for open_secs in [60, 60, 60] {
        assert!(breaker.allow(now));
        breaker.record(now, TRANSIENT);
        assert_eq!(
            breaker.open_until(now),
            Some(now.saturating_add(secs(open_secs)))
        );
        now = now.saturating_add(secs(open_secs));
    }
    assert!(breaker.allow(now));
    breaker.record(now, Outcome::Delivered);
    // Closed again, and the next open spell starts from the minimum.
    fail(&mut breaker, now, 5);
    assert_eq!(
        breaker.open_until(now),
        Some(now.saturating_add(Breaker::OPEN_MIN))
    );
}

#[test]
fn breaker_probe_refused_for_good_frees_the_probe() {
    let mut breaker = Breaker::new();
    fail(&mut breaker, T0, 5);
    assert!(breaker.allow(at(30)));
    breaker.record(at(30), Outcome::Permanent);
    // Still half-open: the next caller probes.
    assert!(breaker.allow(at(30)));
    assert!(!breaker.allow(at(30)));
}

proptest! {
    #[test]
    fn every_wait_is_equal_jitter_within_the_cap(
        base_ms in 0i64..100_000,
        cap_ms in 0i64..10_000_000,
        attempts in 0u32..100,
        jitter in any::<u64>(),
        elapsed_ms in 0i64..86_400_000,
    ) {
        let policy = RetryPolicy {
            base: DurationMs::from_millis(base_ms),
            cap: DurationMs::from_millis(cap_ms),
            give_up_after: DurationMs::from_hours(24),
        };
        let now = T0.saturating_add(DurationMs::from_millis(elapsed_ms));
        let expected_backoff = backoff(&policy, attempts).millis();
        prop_assert!(expected_backoff <= cap_ms);
        prop_assert!(expected_backoff >= base_ms.min(cap_ms));
        match next_attempt(&policy, attempts, T0, now, TRANSIENT, jitter) {
            Next::RetryAt(retry_at) => {
                let wait_ms = retry_at.since(now).millis();
                prop_assert!(wait_ms >= expected_backoff / 2, "{wait_ms} < {expected_backoff}/2");
                prop_assert!(wait_ms <= expected_backoff, "{wait_ms} > {expected_backoff}");
                prop_assert!(wait_ms <= cap_ms);
            }
            other => prop_assert!(false, "{other:?}"),
        }
    }
}
