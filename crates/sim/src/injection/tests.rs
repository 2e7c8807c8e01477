//! The `--incident` text form: what parses, what does not and why, and the round trip.

use super::*;
use revloop_core::time::DurationMs;

#[test]
fn parses_incidents() {
    let cases: &[(&str, Result<&str, &str>)] = &[
        (
            "stage=checkout,drop=0.5,from=2026-11-20T10:00:00Z,to=2026-11-20T12:00:00Z",
            Ok(
                "kind=conversion,stage=checkout,drop=0.5,from=2026-11-20T10:00:00Z,to=2026-11-20T12:00:00Z",
            ),
        ),
        (
            " kind = pixel , stage=cart,drop=1,funnel=checkout,from=2026-11-20T10:00:00Z,to=2026-11-20T12:00:00+01:00,segment=device:mobile",
            Ok(
                "kind=pixel,stage=cart,drop=1,funnel=checkout,from=2026-11-20T10:00:00Z,to=2026-11-20T11:00:00Z,segment=device=mobile",
            ),
        ),
        (
            "kind=surge,factor=3,from=2026-11-20T10:00:00Z,to=2026-11-20T12:00:00Z,segment=source=tiktok",
            Ok(
                "kind=surge,factor=3,from=2026-11-20T10:00:00Z,to=2026-11-20T12:00:00Z,segment=source=tiktok",
            ),
        ),
        (
            "stage=checkout,drop=0.5,from=2026-11-20T10:00:00Z",
            Err("missing `to`"),
        ),
        (
            "drop=0.5,from=2026-11-20T10:00:00Z,to=2026-11-20T12:00:00Z",
            Err("missing `stage`"),
        ),
        (
            "stage=a,from=2026-11-20T10:00:00Z,to=2026-11-20T12:00:00Z",
            Err("missing `drop`"),
        ),
        (
            "stage=a,drop=1.5,from=2026-11-20T10:00:00Z,to=2026-11-20T12:00:00Z",
            Err("`drop` must be a number from 0 to 1"),
        ),
        (
            "stage=a,drop=half,from=2026-11-20T10:00:00Z,to=2026-11-20T12:00:00Z",
            Err("`drop`: `half` is not a number"),
        ),
        (
            "stage=a,drop=NaN,from=2026-11-20T10:00:00Z,to=2026-11-20T12:00:00Z",
            Err("`drop`: `NaN` is not a number"),
        ),
        (
            "stage=a,drop=0.5,from=noon,to=2026-11-20T12:00:00Z",
            Err("`from`: `noon` is not an RFC 3339"),
        ),
        (
            "stage=a,drop=0.5,from=2026-11-20T12:00:00Z,to=2026-11-20T12:00:00Z",
            Err("`from` must be before `to`"),
        ),
        ("stage=a,dorp=0.5", Err("unknown key `dorp`")),
        ("stage=a,stage=b", Err("`stage` is given twice")),
        ("stage=a,drop", Err("`drop` is not key=value")),
        ("stage=,drop=0.5", Err("`stage` has no value")),
        ("kind=outage,stage=a", Err("`kind`: `outage` is not one of")),
        (
            "kind=surge,stage=a,factor=2",
            Err("`stage` does not apply to kind=surge"),
        ),
        (
            "kind=surge,drop=0.5",
            Err("`drop` does not apply to kind=surge"),
        ),
        (
            "kind=surge,from=2026-11-20T10:00:00Z",
            Err("missing `factor`"),
        ),
        (
            "kind=surge,factor=1000",
            Err("`factor` must be a number from 0 to 100"),
        ),
        (
            "kind=sale_day,factor=2.5,from=2026-11-27T05:00:00Z,to=2026-11-28T05:00:00Z",
            Ok("kind=sale_day,factor=2.5,from=2026-11-27T05:00:00Z,to=2026-11-28T05:00:00Z"),
        ),
        (
            "kind=sale_day,stage=a,factor=2",
            Err("`stage` does not apply to kind=sale_day"),
        ),
        (
            "kind=sale_day,factor=0.5,from=2026-11-27T05:00:00Z,to=2026-11-28T05:00:00Z",
            Err("`factor` of a sale day must be a number from 1 to"),
        ),
        (
            "stage=a,drop=0.5,factor=2",
            Err("`factor` does not apply to kind=conversion"),
        ),
        (
            "stage=a,drop=0.5,from=2026-11-20T10:00:00Z,to=2026-11-20T12:00:00Z,segment=mobile",
            Err("`segment`: `mobile` is not dimension=value"),
        ),
        (
            // The older `dimension:value` still reads, and is written the one way.
            "stage=a,drop=0.5,from=2026-11-20T10:00:00Z,to=2026-11-20T12:00:00Z,segment=device:mobile",
            Ok(
                "kind=conversion,stage=a,drop=0.5,from=2026-11-20T10:00:00Z,to=2026-11-20T12:00:00Z,segment=device=mobile",
            ),
        ),
        ("", Err("`` is not key=value")),
    ];
    for (text, want) in cases {
        let got = InjectedIncident::parse(text);
        match (want, &got) {
            (Ok(canonical), Ok(parsed)) => {
                assert_eq!(parsed.to_string(), *canonical, "{text}");
                assert_eq!(InjectedIncident::parse(canonical).as_ref(), Ok(parsed));
            }
            (Err(fragment), Err(message)) => {
                assert!(
                    message.contains(fragment),
                    "{text}: `{message}` lacks `{fragment}`"
                );
            }
            _ => panic!("{text}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn only_the_older_segment_form_is_noted() {
    let incident = |segment: &str| {
        format!("stage=a,drop=0.5,from=2026-11-20T10:00:00Z,to=2026-11-20T12:00:00Z{segment}")
    };
    let note = |segment: &str| {
        InjectedIncident::parse_noting_old_form(&incident(segment))
            .map(|parsed| parsed.deprecation_note())
    };
    assert_eq!(
        note(",segment=device:mobile"),
        Ok(Some(
            "note: `segment=device:mobile` is deprecated; write `segment=device=mobile`".to_owned()
        ))
    );
    assert_eq!(note(",segment=device=mobile"), Ok(None));
    assert_eq!(note(""), Ok(None));
    // Not a segment at all: an error, and no note about a form it is not.
    assert!(note(",segment=device").is_err());
}

/// A sale day's surge is steepest in its first hour, then holds the day's factor; a plain
/// surge holds its factor throughout.
#[test]
fn a_sale_day_rushes_in_its_first_hour() {
    let config = Config::parse(Config::example_toml()).unwrap();
    let effect = |text: &str| resolve_effect(&config, &InjectedIncident::parse(text).unwrap());
    let range = "from=2026-11-27T05:00:00Z,to=2026-11-28T05:00:00Z";
    let (sale_day, stages) = effect(&format!("kind=sale_day,factor=2.5,{range}")).unwrap();
    assert!(stages.iter().all(|stage| *stage == Some(0)), "{stages:?}");
    let (surge, _) = effect(&format!("kind=surge,factor=2.5,{range}")).unwrap();
    // Minutes after the start, and the factor of each.
    let cases = [
        (0, 3.75, 2.5),
        (59, 3.75, 2.5),
        (60, 2.5, 2.5),
        (23 * 60, 2.5, 2.5),
    ];
    for (minute, want_sale_day, want_surge) in cases {
        let since = DurationMs::from_minutes(minute);
        assert_eq!(
            sale_day.surge_factor(since),
            want_sale_day,
            "minute {minute}"
        );
        assert_eq!(surge.surge_factor(since), want_surge, "minute {minute}");
    }
    let (conversion, _) = effect(&format!("kind=conversion,stage=cart,drop=0.5,{range}")).unwrap();
    assert_eq!(conversion.surge_factor(DurationMs::ZERO), 1.0);
}
