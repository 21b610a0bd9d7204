//! Time zones: IANA names (`Asia/Tokyo`) from the tz database bundled into the binary (the same
//! answers on every machine, whatever the host's `/usr/share/zoneinfo` holds), or fixed offsets
//! (`+05:30`, `UTC`). One tenant's zone serves its policy time conditions and its console; a user
//! may pick their own for what the console shows them.

use jiff::Timestamp;
use jiff::tz::{Offset, TimeZone};

/// Where Sekisho's users are: the zone of a new tenant.
pub const DEFAULT: &str = "Asia/Tokyo";

/// `name` as a zone: an IANA name (case as the database spells it), `UTC`/`Z`, or `±HH:MM`
/// (`±HHMM`, `±HH`) up to ±14:00. `None` for anything else.
pub fn parse(name: &str) -> Option<TimeZone> {
    if name.is_empty() || name.len() > 64 {
        return None;
    }
    if name.eq_ignore_ascii_case("utc") || name == "Z" {
        return Some(TimeZone::UTC);
    }
    if let Some(minutes) = offset_minutes(name) {
        return Offset::from_seconds(i32::try_from(minutes * 60).ok()?).ok().map(TimeZone::fixed);
    }
    // The bundled database only; no path a caller could steer.
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-' | b'+')) {
        return None;
    }
    TimeZone::get(name).ok()
}

/// The zone `name` names, else Japan's ([`DEFAULT`]): for what is shown when no zone (or none
/// that parses) is known.
pub fn or_default(name: Option<&str>) -> TimeZone {
    name.and_then(parse).or_else(|| parse(DEFAULT)).unwrap_or(TimeZone::UTC)
}

/// Whether `name` is a zone [`parse`] takes.
pub fn is_valid(name: &str) -> bool {
    parse(name).is_some()
}

/// The name to store for `name`: the database's spelling of an IANA name (`asia/tokyo` →
/// `Asia/Tokyo`), `UTC`, or `±HH:MM`. `None` if it is no zone.
pub fn canonical(name: &str) -> Option<String> {
    let zone = parse(name)?;
    Some(match zone.iana_name() {
        Some(iana) => iana.to_owned(),
        None => offset_name(offset_at(&zone, 0)),
    })
}

/// `±HH:MM` for a fixed offset in minutes.
pub fn offset_name(minutes: i64) -> String {
    let sign = if minutes < 0 { '-' } else { '+' };
    let m = minutes.unsigned_abs();
    format!("{sign}{:02}:{:02}", m / 60, m % 60)
}

/// `±HH:MM`, `±HHMM` or `±HH` → minutes, within ±14:00.
fn offset_minutes(s: &str) -> Option<i64> {
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let digits: String = rest.chars().filter(|c| *c != ':').collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) || !matches!(digits.len(), 2 | 4) || rest.matches(':').count() > 1 {
        return None;
    }
    let hours: i64 = digits[..2].parse().ok()?;
    let minutes: i64 = if digits.len() == 4 { digits[2..].parse().ok()? } else { 0 };
    let total = hours * 60 + minutes;
    (minutes < 60 && total <= 14 * 60).then_some(sign * total)
}

/// The zone's offset from UTC at `time_ms`, in minutes.
pub fn offset_at(zone: &TimeZone, time_ms: i64) -> i64 {
    let at = Timestamp::from_millisecond(time_ms).unwrap_or(Timestamp::UNIX_EPOCH);
    i64::from(zone.to_offset(at).seconds()) / 60
}

/// `time_ms` in `zone` as ISO 8601 with its offset (`2026-12-07T09:00:00+09:00`), for exports.
pub fn iso(zone: &TimeZone, time_ms: i64) -> String {
    let at = Timestamp::from_millisecond(time_ms).unwrap_or(Timestamp::UNIX_EPOCH);
    at.to_zoned(zone.clone()).strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

/// `time_ms` in `zone` for people: `2026-12-07 09:00:00 JST` (the zone's abbreviation, or its
/// offset where the database has none).
pub fn human(zone: &TimeZone, time_ms: i64) -> String {
    let at = Timestamp::from_millisecond(time_ms).unwrap_or(Timestamp::UNIX_EPOCH);
    let zoned = at.to_zoned(zone.clone());
    let abbrev = zone.to_offset_info(at).abbreviation().to_owned();
    // The database spells zones without an abbreviation as their offset (`+0530`): say it as `+05:30`.
    let label = if abbrev.is_empty() || abbrev.starts_with(['+', '-']) {
        offset_name(i64::from(zoned.offset().seconds()) / 60)
    } else {
        abbrev
    };
    format!("{} {label}", zoned.strftime("%Y-%m-%d %H:%M:%S"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_offsets_parse() {
        for ok in
            ["Asia/Tokyo", "Europe/Berlin", "America/Argentina/Buenos_Aires", "UTC", "Z", "+05:30", "-0330", "+09"]
        {
            assert!(is_valid(ok), "{ok}");
        }
        for bad in
            ["", "Asia/Nowhere", "../etc/passwd", "Tokyo", "+15:00", "+09:60", "+9", "JST", "Asia/Tokyo\n", "+0:9:00"]
        {
            assert!(!is_valid(bad), "{bad:?}");
        }
        assert_eq!(canonical("asia/tokyo").as_deref(), Some("Asia/Tokyo"));
        assert_eq!(canonical("+0530").as_deref(), Some("+05:30"));
        assert_eq!(canonical("utc").as_deref(), Some("UTC"));
        assert_eq!(offset_name(540), "+09:00");
        assert_eq!(offset_name(-330), "-05:30");
    }

    #[test]
    fn times_are_shown_in_the_zone_with_daylight_saving() {
        let tokyo = parse("Asia/Tokyo").unwrap();
        // 2026-12-07T00:00:00Z
        let ms = 1_796_601_600_000;
        assert_eq!(human(&tokyo, ms), "2026-12-07 09:00:00 JST");
        assert_eq!(iso(&tokyo, ms), "2026-12-07T09:00:00+09:00");
        let berlin = parse("Europe/Berlin").unwrap();
        assert_eq!(human(&berlin, ms), "2026-12-07 01:00:00 CET");
        // Summer: CEST, +02:00.
        let july = ms - 150 * 86_400_000;
        assert_eq!(offset_at(&berlin, july), 120);
        assert!(human(&berlin, july).ends_with("CEST"), "{}", human(&berlin, july));
        let kolkata = parse("+05:30").unwrap();
        assert_eq!(human(&kolkata, ms), "2026-12-07 05:30:00 +05:30");
        assert_eq!(iso(&parse("UTC").unwrap(), ms), "2026-12-07T00:00:00+00:00");
    }
}
