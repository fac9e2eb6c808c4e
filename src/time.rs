//! The one calendar of the crate: timestamps are whole seconds since the Unix
//! epoch, UTC, and every date a person writes or reads (specs, CSV files,
//! `--as-of`, reports, logs) goes through this module, which leaves the
//! calendar itself to `jiff`. Impossible dates (`2025-02-31`) are errors, not
//! the 3rd of March.

use jiff::civil::DateTime;
use jiff::tz::TimeZone;

use crate::error::{Error, Result};

/// Seconds since the Unix epoch, UTC.
pub type Timestamp = i64;

pub const SECONDS_PER_DAY: i64 = 86_400;

/// The wall clock, in whole seconds.
pub fn now() -> Timestamp {
    jiff::Timestamp::now().as_second()
}

/// Midnight UTC today: the demo book ends there, so a book is the same all day.
pub fn today() -> Timestamp {
    start_of_day(now())
}

/// Midnight UTC of the day `ts` falls on.
pub fn start_of_day(ts: Timestamp) -> Timestamp {
    ts.div_euclid(SECONDS_PER_DAY) * SECONDS_PER_DAY
}

/// Whole days since the epoch; events on the same day share one purchase occasion.
pub fn day_of(ts: Timestamp) -> i32 {
    ts.div_euclid(SECONDS_PER_DAY) as i32
}

/// Days between two timestamps, as a fraction.
pub fn days_between(from: Timestamp, to: Timestamp) -> f64 {
    (to - from) as f64 / SECONDS_PER_DAY as f64
}

/// Parses a date or a date and time, UTC unless an offset is given:
/// `2025-06-30` (midnight), `2025-06-30T12:00:00Z`, `2025-06-30 12:00`,
/// `2025-06-30T12:00:00.5+02:00`. Fractions of a second are dropped.
///
/// # Errors
/// `InvalidArgument` naming `field` for anything else, including dates that
/// do not exist.
pub fn parse_date(field: &str, text: &str) -> Result<Timestamp> {
    parse_iso(text.trim()).ok_or_else(|| {
        Error::invalid(
            field,
            format!(
                "{text:?} is not a date like 2025-06-30 or 2025-06-30T12:00:00Z (or the date does not exist)"
            ),
        )
    })
}

fn parse_iso(text: &str) -> Option<Timestamp> {
    if let Ok(ts) = text.parse::<jiff::Timestamp>() {
        return Some(ts.as_second());
    }
    // No offset: a civil date or date-time, read as UTC.
    let civil = text
        .trim_end_matches(['Z', 'z'])
        .parse::<DateTime>()
        .ok()
        .or_else(|| {
            text.parse::<jiff::civil::Date>()
                .ok()
                .map(|d| d.at(0, 0, 0, 0))
        })?;
    civil
        .to_zoned(TimeZone::UTC)
        .ok()
        .map(|z| z.timestamp().as_second())
}

/// Parses a time with a `strftime` format (`%Y %y %m %d %H %M %S` and the
/// rest of `jiff`'s `strtime` fields; numbers may have fewer digits, as in
/// `12/1/2010 8:26`), read as UTC; or, for `"auto"`, Unix seconds or one of
/// [`parse_date`]'s forms.
///
/// # Errors
/// A sentence naming the text and the format.
pub fn parse_time(format: &str, text: &str) -> std::result::Result<Timestamp, String> {
    let text = text.trim();
    if format == "auto" {
        if let Ok(secs) = text.parse::<i64>() {
            return Ok(secs);
        }
        return parse_iso(text).ok_or_else(|| {
            format!("{text:?} is neither Unix seconds nor a date like 2025-06-30 or 2025-06-30T12:00:00Z")
        });
    }
    let bad = |why: String| format!("{text:?} does not match the time format {format:?}: {why}");
    let parsed = jiff::fmt::strtime::parse(format, text).map_err(|e| bad(e.to_string()))?;
    if let Ok(ts) = parsed.to_timestamp() {
        return Ok(ts.as_second());
    }
    let civil = match parsed.to_datetime() {
        Ok(dt) => dt,
        Err(_) => parsed
            .to_date()
            .map_err(|e| bad(e.to_string()))?
            .at(0, 0, 0, 0),
    };
    civil
        .to_zoned(TimeZone::UTC)
        .map(|z| z.timestamp().as_second())
        .map_err(|e| bad(e.to_string()))
}

/// `YYYY-MM-DD` of a timestamp (UTC).
pub fn format_date(ts: Timestamp) -> String {
    match jiff::Timestamp::from_second(ts) {
        Ok(t) => t.to_zoned(TimeZone::UTC).date().to_string(),
        Err(_) => format!("@{ts}"),
    }
}

/// RFC 3339 in UTC, whole seconds: `2025-06-30T12:00:00Z`.
pub fn format_datetime(ts: Timestamp) -> String {
    match jiff::Timestamp::from_second(ts) {
        Ok(t) => t.to_string(),
        Err(_) => format!("@{ts}"),
    }
}

/// `YYYY-MM-DD HH:MM UTC`, for people (reports, tables).
pub fn format_minutes(ts: Timestamp) -> String {
    match jiff::Timestamp::from_second(ts) {
        Ok(t) => t.strftime("%Y-%m-%d %H:%M UTC").to_string(),
        Err(_) => format!("@{ts}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i16, m: i8, d: i8) -> Timestamp {
        jiff::civil::date(y, m, d)
            .to_zoned(TimeZone::UTC)
            .unwrap()
            .timestamp()
            .as_second()
    }

    #[test]
    fn dates_round_trip() {
        let t = parse_date("d", "2025-06-30").unwrap();
        assert_eq!(format_date(t), "2025-06-30");
        assert_eq!(parse_date("d", "1970-01-02T00:00:01Z").unwrap(), 86_401);
        assert_eq!(parse_date("d", "1970-01-02T00:00:01").unwrap(), 86_401);
        assert_eq!(parse_date("d", "1970-01-02 00:01").unwrap(), 86_460);
        assert_eq!(
            parse_date("d", "1970-01-02T02:00:00+02:00").unwrap(),
            86_400
        );
        assert_eq!(format_datetime(86_401), "1970-01-02T00:00:01Z");
        assert_eq!(format_minutes(86_460), "1970-01-02 00:01 UTC");
    }

    #[test]
    fn impossible_dates_are_refused_with_the_field_named() {
        for text in [
            "2025-02-31",
            "2025-13-01",
            "2025-00-10",
            "2025-06-30T24:30:00Z",
            "soon",
            "",
        ] {
            let err = parse_date("cutoff", text).unwrap_err().to_string();
            assert!(err.contains("cutoff"), "{text}: {err}");
        }
        assert!(parse_date("d", "2024-02-29").is_ok());
        assert!(parse_date("d", "2025-02-29").is_err());
    }

    #[test]
    fn times_parse_with_formats() {
        assert_eq!(
            parse_time("%m/%d/%Y %H:%M", "12/1/2010 8:26").unwrap(),
            date(2010, 12, 1) + 8 * 3600 + 26 * 60
        );
        assert_eq!(
            parse_time("%Y-%m-%d", "2011-01-02").unwrap(),
            date(2011, 1, 2)
        );
        assert_eq!(parse_time("auto", "1700000000").unwrap(), 1_700_000_000);
        assert_eq!(parse_time("auto", "2011-01-02").unwrap(), date(2011, 1, 2));
        assert!(parse_time("%Y-%m-%d", "2011/01/02").is_err());
        assert!(parse_time("%Y-%m-%d", "2011-02-30").is_err());
        assert!(parse_time("auto", "2011-02-30").is_err());
    }

    #[test]
    fn days_are_utc_days() {
        assert_eq!(day_of(-1), -1);
        assert_eq!(day_of(86_399), 0);
        assert_eq!(start_of_day(86_401), 86_400);
        assert_eq!(days_between(0, 43_200), 0.5);
    }
}
