//! Numbers and words for people: figures in reason sentences, thousands
//! separators, metric values, shares and short axis labels in tables and
//! reports, capitals at the start of a sentence. One place, so every answer,
//! page and log line writes a number the same way. Values that cannot be
//! shown (NaN, infinities) come out as [`NA`] in tables, never "NaN".

use std::fmt::{self, Write as _};

/// What a value that cannot be shown reads as.
pub const NA: &str = "n/a";

/// A number to read in a sentence, with fewer decimals as it grows; a
/// `Display` so that it is written straight into the sentence.
pub struct Num(pub f64);

impl fmt::Display for Num {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        let decimals = if v.abs() >= 100.0 {
            0
        } else if v.abs() >= 10.0 {
            1
        } else {
            2
        };
        // Integer arithmetic instead of float formatting, which was a third
        // of the time spent on reasons. Ties may round the other way than
        // `{:.2}` would (0.125 -> 0.13); nobody reads a reason that closely.
        let scale = [1.0, 10.0, 100.0][decimals];
        let scaled = (v.abs() * scale).round();
        if !scaled.is_finite() || scaled >= 1e15 {
            return write!(f, "{v:.decimals$}");
        }
        let scaled = scaled as u64;
        let unit = scale as u64;
        if v.is_sign_negative() && scaled != 0 {
            f.write_char('-')?;
        }
        write!(f, "{}", scaled / unit)?;
        match decimals {
            0 => Ok(()),
            1 => write!(f, ".{}", scaled % unit),
            _ => write!(f, ".{:02}", scaled % unit),
        }
    }
}

pub fn fmt_num(v: f64) -> Num {
    Num(v)
}

/// A text with its first letter in upper case.
pub struct Capitalized<'a>(&'a str);

impl fmt::Display for Capitalized<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut chars = self.0.chars();
        if let Some(first) = chars.next() {
            for c in first.to_uppercase() {
                f.write_char(c)?;
            }
        }
        f.write_str(chars.as_str())
    }
}

pub fn capitalize(s: &str) -> Capitalized<'_> {
    Capitalized(s)
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A value rounded to the nearest integer, with thousands separators and a
/// sign: `-1234.6` → `-1,235`; [`NA`] when not finite.
pub fn rounded(v: f64) -> String {
    if !v.is_finite() {
        return NA.to_string();
    }
    let r = v.round();
    // Rounding to "-0" must not show a sign.
    let sign = if r < 0.0 { "-" } else { "" };
    if r.abs() < 1e15 {
        // Exact: the value is integral and well inside u64.
        format!("{sign}{}", thousands(r.abs() as u64))
    } else {
        format!("{v:.3e}")
    }
}

/// A metric value: integers without decimals (grouped), four decimals in the
/// usual range (enough to compare AUCs), two from 100 up, scientific when
/// tiny or huge; [`NA`] when not finite.
pub fn metric(v: f64) -> String {
    if !v.is_finite() {
        return NA.to_string();
    }
    let a = v.abs();
    if v.fract() == 0.0 && a < 1e15 {
        rounded(v)
    } else if !(1e-4..1e6).contains(&a) {
        format!("{v:.3e}")
    } else if a >= 100.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

/// [`metric`] with an explicit `+` on positive values, for differences.
pub fn signed_metric(v: f64) -> String {
    if v.is_finite() && v > 0.0 {
        format!("+{}", metric(v))
    } else {
        metric(v)
    }
}

/// A descriptive value (a feature mean, a lift): integers grouped, otherwise
/// two decimals, scientific when tiny or huge; [`NA`] when not finite.
pub fn brief(v: f64) -> String {
    if !v.is_finite() {
        NA.to_string()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        rounded(v)
    } else if v.abs() >= 1e6 || (v != 0.0 && v.abs() < 1e-3) {
        format!("{v:.2e}")
    } else {
        format!("{v:.2}")
    }
}

/// A share as a percentage with one decimal: `0.1234` → `12.3%`.
pub fn percent(share: f64) -> String {
    if share.is_finite() {
        format!("{:.1}%", share * 100.0)
    } else {
        NA.to_string()
    }
}

/// A short label for money-like axes: `950`, `1.2k`, `3.4M`, `5.6G`; empty
/// when not finite (an axis tick is better left blank than labelled "n/a").
pub fn short(v: f64) -> String {
    let a = v.abs();
    if !v.is_finite() {
        String::new()
    } else if a >= 1e9 {
        format!("{:.1}G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else if a >= 10.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn numbers_in_sentences_match_float_formatting() {
        for v in [
            0.0,
            -0.0,
            0.004,
            -0.004,
            0.996,
            1.5,
            9.994,
            9.996,
            -9.996,
            10.0,
            12.34,
            99.94,
            99.96,
            100.0,
            123.4,
            -123.6,
            1e9,
            -2.5e14,
            3e20,
            f64::NAN,
            f64::INFINITY,
        ] {
            let decimals = if v.abs() >= 100.0 {
                0
            } else if v.abs() >= 10.0 {
                1
            } else {
                2
            };
            let mut expected = format!("{v:.decimals$}");
            if expected.starts_with('-') && expected.trim_start_matches(['-', '0', '.']).is_empty()
            {
                expected.remove(0);
            }
            assert_eq!(super::Num(v).to_string(), expected, "{v}");
        }
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(super::thousands(0), "0");
        assert_eq!(super::thousands(999), "999");
        assert_eq!(super::thousands(1_000), "1,000");
        assert_eq!(super::thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn sentences_start_with_a_capital() {
        assert_eq!(super::capitalize("été").to_string(), "Été");
        assert_eq!(super::capitalize("").to_string(), "");
    }

    #[test]
    fn thousands_groups_from_the_right() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(12_345), "12,345");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(u64::MAX), "18,446,744,073,709,551,615");
    }

    #[test]
    fn rounded_keeps_the_sign_but_not_minus_zero() {
        assert_eq!(rounded(1_234_567.8), "1,234,568");
        assert_eq!(rounded(-1_234.6), "-1,235");
        assert_eq!(rounded(-0.2), "0");
        assert_eq!(rounded(f64::NAN), NA);
        assert_eq!(rounded(f64::NEG_INFINITY), NA);
        assert_eq!(rounded(3e20), "3.000e20");
    }

    #[test]
    fn metric_picks_precision_by_magnitude() {
        assert_eq!(metric(f64::NAN), NA);
        assert_eq!(metric(f64::INFINITY), NA);
        assert_eq!(metric(0.81234), "0.8123");
        assert_eq!(metric(-1234.0), "-1,234");
        assert_eq!(metric(123.456), "123.46");
        assert_eq!(metric(0.00001234), "1.234e-5");
        assert_eq!(metric(2.5e7 + 0.5), "2.500e7");
        assert_eq!(signed_metric(0.0123), "+0.0123");
        assert_eq!(signed_metric(-0.0123), "-0.0123");
        assert_eq!(signed_metric(0.0), "0");
        assert_eq!(signed_metric(f64::NAN), NA);
    }

    #[test]
    fn brief_percent_and_short() {
        assert_eq!(brief(40.5), "40.50");
        assert_eq!(brief(1_234.0), "1,234");
        assert_eq!(brief(0.0004), "4.00e-4");
        assert_eq!(brief(f64::NAN), NA);
        assert_eq!(percent(0.1234), "12.3%");
        assert_eq!(percent(1.0), "100.0%");
        assert_eq!(percent(f64::NAN), NA);
        assert_eq!(short(950.0), "950");
        assert_eq!(short(1_234.0), "1.2k");
        assert_eq!(short(-3_400_000.0), "-3.4M");
        assert_eq!(short(5.6e9), "5.6G");
        assert_eq!(short(2.34), "2.3");
        assert_eq!(short(f64::NAN), "");
    }
}
