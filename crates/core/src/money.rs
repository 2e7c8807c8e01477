//! Money as integer minor units plus an ISO 4217 currency. Never a float.
//!
//! Decimal amounts arrive as text and are converted exactly; an amount with more fractional
//! digits than the currency has is rejected rather than rounded. The text comes from the config,
//! from a JSON string, or from a JSON number. A JSON number is first read as an `f64` by the
//! parser and then printed as the shortest text that reads back as the same `f64` (so `19.99`
//! stays `19.99`): amounts of up to 15 significant digits arrive exactly, and senders with
//! larger amounts should send them as strings.

use std::fmt;

/// An ISO 4217 alphabetic code such as `USD`, with its minor unit's exponent, both from the
/// ISO 4217 table the `iso_currency` crate carries (a data crate, generated at build time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency {
    code: [u8; 3],
    exponent: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    pub minor: i64,
    pub currency: Currency,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("`{0}` is not a currency code (three letters, e.g. USD)")]
    NotCurrency(String),
    #[error("`{code}` is not an ISO 4217 currency code{}", did_you_mean(.suggestion))]
    UnknownCurrency {
        code: String,
        /// The upper-case code, when that one is known.
        suggestion: Option<String>,
    },
    #[error("`{0}` has no minor unit (a metal, a fund or a testing code), so no prices in it")]
    NoMinorUnit(String),
    #[error("`{amount}` is not an amount in {currency} (at most {exponent} decimal places)")]
    NotAmount {
        amount: String,
        currency: Currency,
        exponent: u32,
    },
    #[error("`{0}` is too large an amount")]
    Overflow(String),
}

fn did_you_mean(suggestion: &Option<String>) -> String {
    suggestion
        .as_ref()
        .map(|code| format!("; did you mean {code}?"))
        .unwrap_or_default()
}

impl Currency {
    /// An ISO 4217 code as the standard writes it: three upper-case letters, in the table, with
    /// a minor unit.
    pub fn parse(code: &str) -> Result<Currency, MoneyError> {
        let shown = || code.chars().take(16).collect::<String>();
        let bytes = code.as_bytes();
        if bytes.len() != 3 || !bytes.iter().all(u8::is_ascii_alphabetic) {
            return Err(MoneyError::NotCurrency(shown()));
        }
        let Some(known) = iso_currency::Currency::from_code(code) else {
            let upper = code.to_ascii_uppercase();
            return Err(MoneyError::UnknownCurrency {
                code: shown(),
                suggestion: iso_currency::Currency::from_code(&upper).map(|_| upper),
            });
        };
        let exponent = known
            .exponent()
            .and_then(|e| u8::try_from(e).ok())
            .ok_or_else(|| MoneyError::NoMinorUnit(shown()))?;
        Ok(Currency {
            code: [bytes[0], bytes[1], bytes[2]],
            exponent,
        })
    }

    /// A code in any case (`usd`, as some senders write it in events), otherwise as
    /// [`Currency::parse`].
    pub fn parse_any_case(code: &str) -> Result<Currency, MoneyError> {
        Currency::parse(&code.trim().to_ascii_uppercase())
    }

    pub fn code(&self) -> &str {
        // The constructor admits only ASCII letters.
        std::str::from_utf8(&self.code).expect("currency codes are ASCII")
    }

    /// Number of decimal places of the minor unit.
    pub fn exponent(&self) -> u32 {
        u32::from(self.exponent)
    }
}

/// A currency is stored and sent as its code (`"USD"`), and read back through
/// [`Currency::parse`].
impl serde::Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code())
    }
}

impl<'de> serde::Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Currency, D::Error> {
        let code = String::deserialize(deserializer)?;
        Currency::parse(&code).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl Money {
    pub fn new(minor: i64, currency: Currency) -> Money {
        Money { minor, currency }
    }

    /// Parses a decimal such as `85`, `85.5` or `-12.34` into minor units of `currency`.
    pub fn parse_decimal(text: &str, currency: Currency) -> Result<Money, MoneyError> {
        let exponent = currency.exponent();
        let not_amount = || MoneyError::NotAmount {
            amount: text.chars().take(32).collect(),
            currency,
            exponent,
        };
        let trimmed = text.trim();
        let (negative, unsigned) = match trimmed.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, trimmed),
        };
        let (whole, fraction) = match unsigned.split_once('.') {
            Some((whole, fraction)) => (whole, fraction),
            None => (unsigned, ""),
        };
        let digits_only = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !digits_only(whole) || !digits_only(fraction) {
            return Err(not_amount());
        }
        if (unsigned.contains('.') && fraction.is_empty()) || fraction.len() > exponent as usize {
            return Err(not_amount());
        }
        let overflow = || MoneyError::Overflow(text.chars().take(32).collect());
        let whole_value: i64 = whole.parse().map_err(|_| overflow())?;
        let mut fraction_value: i64 = if fraction.is_empty() {
            0
        } else {
            fraction.parse().map_err(|_| overflow())?
        };
        for _ in fraction.len()..exponent as usize {
            fraction_value *= 10;
        }
        let minor = whole_value
            .checked_mul(10_i64.pow(exponent))
            .and_then(|m| m.checked_add(fraction_value))
            .ok_or_else(overflow)?;
        Ok(Money {
            minor: if negative { -minor } else { minor },
            currency,
        })
    }
}

impl fmt::Display for Money {
    /// `85.00 USD`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let exponent = self.currency.exponent();
        let sign = if self.minor < 0 { "-" } else { "" };
        let magnitude = self.minor.unsigned_abs();
        if exponent == 0 {
            return write!(f, "{sign}{magnitude} {}", self.currency);
        }
        let scale = 10_u64.pow(exponent);
        write!(
            f,
            "{sign}{}.{:0width$} {}",
            magnitude / scale,
            magnitude % scale,
            self.currency,
            width = exponent as usize
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd() -> Currency {
        Currency::parse("USD").unwrap()
    }

    #[test]
    fn parses_decimals_exactly() {
        let cases = [
            ("85", 8500),
            ("85.5", 8550),
            ("19.99", 1999),
            ("-12.34", -1234),
            ("0.01", 1),
        ];
        for (text, minor) in cases {
            assert_eq!(
                Money::parse_decimal(text, usd()).unwrap().minor,
                minor,
                "{text}"
            );
        }
        let jpy = Currency::parse("JPY").unwrap();
        assert_eq!(Money::parse_decimal("1200", jpy).unwrap().minor, 1200);
        assert!(Money::parse_decimal("1200.5", jpy).is_err());
        let kwd = Currency::parse("KWD").unwrap();
        assert_eq!(Money::parse_decimal("1.234", kwd).unwrap().minor, 1234);
    }

    #[test]
    fn rejects_what_is_not_an_amount() {
        for bad in [
            "",
            "abc",
            "1.999",
            "1.",
            ".5",
            "1e3",
            "--1",
            "99999999999999999999",
        ] {
            assert!(Money::parse_decimal(bad, usd()).is_err(), "{bad}");
        }
        for bad in ["US", "USDX", "U5D", "", " USD"] {
            assert!(
                matches!(Currency::parse(bad), Err(MoneyError::NotCurrency(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn currencies_come_from_the_iso_4217_table() {
        let exponent = |code: &str| Currency::parse(code).map(|c| c.exponent());
        let cases = [
            ("USD", 2),
            ("JPY", 0),
            ("KWD", 3),
            ("CLF", 4),
            ("EUR", 2),
            ("ISK", 0),
        ];
        for (code, want) in cases {
            assert_eq!(exponent(code), Ok(want), "{code}");
        }
        let err = |code: &str| Currency::parse(code).unwrap_err().to_string();
        assert_eq!(err("XYZ"), "`XYZ` is not an ISO 4217 currency code");
        assert_eq!(
            err("usd"),
            "`usd` is not an ISO 4217 currency code; did you mean USD?"
        );
        assert!(err("XAU").contains("no minor unit"), "{}", err("XAU"));
        assert_eq!(Currency::parse_any_case(" usd"), Currency::parse("USD"));
    }

    #[test]
    fn displays_minor_units() {
        assert_eq!(Money::new(8500, usd()).to_string(), "85.00 USD");
        assert_eq!(Money::new(-5, usd()).to_string(), "-0.05 USD");
        assert_eq!(
            Money::new(1200, Currency::parse("JPY").unwrap()).to_string(),
            "1200 JPY"
        );
    }
}
