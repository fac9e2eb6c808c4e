//! Numbers and words for people: figures in reason sentences, thousands
//! separators in tables and reports, capitals at the start of a sentence.
//! One place, so every answer writes a number the same way.

use std::fmt::{self, Write as _};

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

#[cfg(test)]
mod tests {
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
}
