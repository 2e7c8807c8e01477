//! The command-line text form of an injected incident (`--incident` specs): parsing it and
//! writing it back. Only text handling lives here; what an incident does is in the parent module.

use std::fmt;

use revloop_core::time::Timestamp;

use super::{IncidentKind, InjectedIncident, check_kind};

/// An incident read from its command-line form, and whether that form was the older one.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedIncident {
    pub incident: InjectedIncident,
    /// The segment was written `dimension:value`, the older form: it still reads, but the
    /// command line writes segments one way, `dimension=value`, everywhere.
    pub old_segment_form: bool,
}

impl ParsedIncident {
    /// The note for a user who wrote the older segment form, showing the one syntax; `None`
    /// where the text used the current form.
    pub fn deprecation_note(&self) -> Option<String> {
        let (name, value) = self.incident.segment.as_ref()?;
        self.old_segment_form.then(|| {
            format!("note: `segment={name}:{value}` is deprecated; write `segment={name}={value}`")
        })
    }
}

impl InjectedIncident {
    /// Parses the command-line form, comma-separated `key=value` pairs:
    ///
    /// `kind=conversion,funnel=checkout,stage=payment,drop=0.5,from=2026-11-20T10:00:00Z,to=2026-11-20T12:00:00Z,segment=device=mobile`
    ///
    /// `kind` is `conversion` (the default), `pixel`, `surge` or `sale_day`. Conversion and
    /// pixel incidents need `stage` and `drop`; a surge and a sale day need `factor` and take
    /// no stage. `funnel` and `segment` (`dimension=value`) are optional.
    pub fn parse(text: &str) -> Result<InjectedIncident, String> {
        InjectedIncident::parse_noting_old_form(text).map(|parsed| parsed.incident)
    }

    /// [`InjectedIncident::parse`], also saying whether the segment was written in the older
    /// `dimension:value` form, so that the command line can note that it is deprecated.
    pub fn parse_noting_old_form(text: &str) -> Result<ParsedIncident, String> {
        const KEYS: &[&str] = &[
            "kind", "funnel", "stage", "drop", "factor", "from", "to", "segment",
        ];
        let mut values: [Option<&str>; KEYS.len()] = [None; KEYS.len()];
        for pair in text.split(',') {
            let Some((key, value)) = pair.split_once('=') else {
                return Err(format!(
                    "`{}` is not key=value (keys: {})",
                    pair.trim(),
                    KEYS.join(", ")
                ));
            };
            let (key, value) = (key.trim(), value.trim());
            let Some(slot) = KEYS.iter().position(|k| *k == key) else {
                return Err(format!("unknown key `{key}` (keys: {})", KEYS.join(", ")));
            };
            if values[slot].is_some() {
                return Err(format!("`{key}` is given twice"));
            }
            if value.is_empty() {
                return Err(format!("`{key}` has no value"));
            }
            values[slot] = Some(value);
        }
        let [kind, funnel, stage, drop, factor, from, to, segment] = values;

        let timestamp = |key: &str, value: Option<&str>| -> Result<Timestamp, String> {
            let value = value
                .ok_or_else(|| format!("missing `{key}` (e.g. {key}=2026-11-20T10:00:00Z)"))?;
            Timestamp::parse_rfc3339(value).map_err(|err| format!("`{key}`: {err}"))
        };
        let number = |key: &str, value: &str| -> Result<f64, String> {
            value
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite())
                .ok_or_else(|| format!("`{key}`: `{value}` is not a number"))
        };
        let not_for = |key: &str, given: Option<&str>, kind: &str| -> Result<(), String> {
            match given {
                Some(_) => Err(format!("`{key}` does not apply to kind={kind}")),
                None => Ok(()),
            }
        };
        let stage_and_drop = || -> Result<(String, f64), String> {
            let stage = stage.ok_or("missing `stage` (a stage id, e.g. stage=checkout)")?;
            let drop = drop.ok_or("missing `drop` (the share lost, e.g. drop=0.5)")?;
            Ok((stage.to_owned(), number("drop", drop)?))
        };
        let kind = match kind.unwrap_or("conversion") {
            "conversion" => {
                not_for("factor", factor, "conversion")?;
                let (stage, drop) = stage_and_drop()?;
                IncidentKind::Conversion { stage, drop }
            }
            "pixel" => {
                not_for("factor", factor, "pixel")?;
                let (stage, drop) = stage_and_drop()?;
                IncidentKind::Pixel { stage, drop }
            }
            kind @ ("surge" | "sale_day") => {
                not_for(
                    "stage",
                    stage,
                    &format!("{kind}: it affects sessions entering the funnel"),
                )?;
                not_for("drop", drop, kind)?;
                let factor = factor.ok_or("missing `factor` (e.g. factor=3)")?;
                let factor = number("factor", factor)?;
                if kind == "surge" {
                    IncidentKind::Surge { factor }
                } else {
                    IncidentKind::SaleDay { factor }
                }
            }
            other => {
                return Err(format!(
                    "`kind`: `{other}` is not one of conversion, pixel, surge, sale_day"
                ));
            }
        };
        check_kind(&kind)?;
        let from = timestamp("from", from)?;
        let to = timestamp("to", to)?;
        if from >= to {
            return Err("`from` must be before `to`".into());
        }
        let (segment, old_segment_form) = match segment {
            None => (None, false),
            // `dimension=value`, the command line's one segment syntax; `dimension:value` is the
            // older form, still read (and reported, so that the CLI notes it is deprecated).
            Some(text) => {
                let current = text.split_once('=');
                let old_segment_form = current.is_none();
                match current.or_else(|| text.split_once(':')) {
                    Some((name, value)) if !name.trim().is_empty() && !value.trim().is_empty() => {
                        let segment = (name.trim().to_owned(), value.trim().to_owned());
                        (Some(segment), old_segment_form)
                    }
                    _ => {
                        return Err(format!(
                            "`segment`: `{text}` is not dimension=value (e.g. segment=device=mobile)"
                        ));
                    }
                }
            }
        };
        Ok(ParsedIncident {
            incident: InjectedIncident {
                funnel: funnel.map(str::to_owned),
                kind,
                from,
                to,
                segment,
            },
            old_segment_form,
        })
    }
}

impl fmt::Display for InjectedIncident {
    /// The command-line form that [`InjectedIncident::parse`] reads.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            IncidentKind::Conversion { stage, drop } => {
                write!(f, "kind=conversion,stage={stage},drop={drop}")?
            }
            IncidentKind::Pixel { stage, drop } => {
                write!(f, "kind=pixel,stage={stage},drop={drop}")?
            }
            IncidentKind::Surge { factor } => write!(f, "kind=surge,factor={factor}")?,
            IncidentKind::SaleDay { factor } => write!(f, "kind=sale_day,factor={factor}")?,
        }
        if let Some(funnel) = &self.funnel {
            write!(f, ",funnel={funnel}")?;
        }
        write!(f, ",from={},to={}", self.from, self.to)?;
        if let Some((name, value)) = &self.segment {
            write!(f, ",segment={name}={value}")?;
        }
        Ok(())
    }
}
