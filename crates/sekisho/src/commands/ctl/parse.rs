//! Pure parsers and formatters for command-line values: durations, UTC offsets and times.
//!
//! Times are handled here with civil-calendar arithmetic (proleptic Gregorian, UTC offsets only),
//! which is all `ctl` needs; time zones by name are out of scope.

/// `90`, `30s`, `15m`, `1h`, `2d` → seconds.
pub(crate) fn parse_duration(s: &str) -> Option<i64> {
    let s = s.trim();
    let (num, mult) = match s.chars().last()? {
        's' => (&s[..s.len() - 1], 1),
        'm' => (&s[..s.len() - 1], 60),
        'h' => (&s[..s.len() - 1], 3600),
        'd' => (&s[..s.len() - 1], 86_400),
        c if c.is_ascii_digit() => (s, 1),
        _ => return None,
    };
    num.parse::<i64>().ok().filter(|n| *n > 0)?.checked_mul(mult)
}

/// A credential's lifetime → seconds: `30m`, `12h`, `30d`, `2w`. A unit is required (a bare
/// number once meant days for keys and seconds for tokens).
pub(crate) fn parse_lifetime(s: &str) -> Option<i64> {
    let s = s.trim();
    match s.strip_suffix('w') {
        Some(weeks) if weeks.chars().all(|c| c.is_ascii_digit()) => {
            weeks.parse::<i64>().ok().filter(|n| *n > 0)?.checked_mul(7 * 86_400)
        }
        Some(_) => None,
        None if s.ends_with(['m', 'h', 'd']) => parse_duration(s),
        None => None,
    }
}

/// `+09:00`, `-05:30`, `+0900`, `+9`, `Z` → minutes east of UTC, within −12:00 … +14:00.
pub(crate) fn parse_utc_offset(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("z") || s.eq_ignore_ascii_case("utc") {
        return Some(0);
    }
    let sign = match s.chars().next()? {
        '+' => 1,
        '-' => -1,
        _ => return None,
    };
    let rest = &s[1..];
    let (h, m) = match rest.split_once(':') {
        Some((h, m)) => (h, m),
        None if rest.len() == 4 => rest.split_at(2),
        None => (rest, "0"),
    };
    let digits = |t: &str| (1..=2).contains(&t.len()) && t.chars().all(|c| c.is_ascii_digit());
    if !digits(h) || !digits(m) {
        return None;
    }
    let (h, m) = (h.parse::<i64>().ok()?, m.parse::<i64>().ok()?);
    let minutes = sign * (h * 60 + m);
    (m < 60 && (-720..=840).contains(&minutes)).then_some(minutes)
}

/// A point in time given on the command line → ms since the epoch: ms as digits, RFC 3339 with an
/// offset (`2026-11-23T09:00+09:00`, seconds and fractions optional), or a date or date and time
/// without one (`2026-11-23`, `2026-11-23 09:00`), read on the clock of `zone` (the session's: the
/// user's own zone, else the tenant's; daylight saving included).
pub(crate) fn parse_time_ms(s: &str, zone: &jiff::tz::TimeZone) -> Option<i64> {
    let s = s.trim();
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_digit()) {
        return s.parse().ok();
    }
    if let Ok(at) = s.parse::<jiff::Timestamp>() {
        return Some(at.as_millisecond());
    }
    let civil = match s.parse::<jiff::civil::DateTime>() {
        Ok(t) => t,
        Err(_) => s.parse::<jiff::civil::Date>().ok()?.to_datetime(jiff::civil::Time::midnight()),
    };
    Some(civil.to_zoned(zone.clone()).ok()?.timestamp().as_millisecond())
}

/// ms since the epoch → `2026-11-23 09:00:00+09:00` in `zone` (with the offset it had then:
/// daylight saving included; `…Z` at offset 0).
pub(crate) fn format_time(ms: i64, zone: &jiff::tz::TimeZone) -> String {
    let Ok(at) = jiff::Timestamp::from_millisecond(ms) else { return ms.to_string() };
    let zoned = at.to_zoned(zone.clone());
    let offset = i64::from(zoned.offset().seconds()) / 60;
    let suffix = if offset == 0 { "Z".to_owned() } else { sekisho_store::zone::offset_name(offset) };
    format!("{}{suffix}", zoned.strftime("%Y-%m-%d %H:%M:%S"))
}

/// `--tz`: an IANA zone (`Asia/Tokyo`, `Europe/Berlin`) or a fixed offset (`+09:00`, `UTC`).
pub(crate) fn parse_zone(text: &str) -> Option<jiff::tz::TimeZone> {
    sekisho_store::zone::parse(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("90"), Some(90));
        assert_eq!(parse_duration("15m"), Some(900));
        assert_eq!(parse_duration("2d"), Some(172_800));
        assert_eq!(parse_duration("-1h"), None);
        assert_eq!(parse_duration("1y"), None);
    }

    #[test]
    fn lifetimes_need_a_unit_and_keep_hours() {
        assert_eq!(parse_lifetime("30m"), Some(1800));
        assert_eq!(parse_lifetime("1h"), Some(3600));
        assert_eq!(parse_lifetime("30d"), Some(30 * 86_400));
        assert_eq!(parse_lifetime("2w"), Some(14 * 86_400));
        for bad in ["", "30", "0d", "-3d", "d", "3y", "1.5d", "90s", "w", "-1w"] {
            assert_eq!(parse_lifetime(bad), None, "{bad}");
        }
    }

    #[test]
    fn utc_offsets_parse_and_format() {
        assert_eq!(parse_utc_offset("+09:00"), Some(540));
        assert_eq!(parse_utc_offset("-05:30"), Some(-330));
        assert_eq!(parse_utc_offset("+0545"), Some(345));
        assert_eq!(parse_utc_offset("+9"), Some(540));
        assert_eq!(parse_utc_offset("Z"), Some(0));
        assert_eq!(parse_utc_offset("+14:00"), Some(840));
        for bad in ["09:00", "+15:00", "-12:30", "+09:60", "+9:0x", "+", "+123:00", ""] {
            assert_eq!(parse_utc_offset(bad), None, "{bad}");
        }
        assert_eq!(sekisho_store::zone::offset_name(540), "+09:00");
        assert_eq!(sekisho_store::zone::offset_name(-330), "-05:30");
        assert_eq!(sekisho_store::zone::offset_name(0), "+00:00");
    }

    #[test]
    fn times_parse_to_epoch_ms() {
        let utc = parse_zone("UTC").unwrap();
        let tokyo = parse_zone("Asia/Tokyo").unwrap();
        assert_eq!(parse_time_ms("1700000000000", &tokyo), Some(1_700_000_000_000));
        assert_eq!(parse_time_ms("1970-01-01", &utc), Some(0));
        assert_eq!(parse_time_ms("1970-01-01T09:00+09:00", &utc), Some(0));
        assert_eq!(parse_time_ms("2026-11-23T09:00:00+09:00", &utc), Some(1_795_392_000_000));
        assert_eq!(parse_time_ms("2026-11-23T00:00:00Z", &tokyo), Some(1_795_392_000_000));
        assert_eq!(parse_time_ms("2026-11-23T00:00:00.25Z", &tokyo), Some(1_795_392_000_250));
        assert_eq!(parse_time_ms("2024-02-29T12:00:00-05:30", &tokyo), Some(1_709_227_800_000));
        // Without an offset: on the session's clock.
        assert_eq!(parse_time_ms("2026-11-23T09:00", &tokyo), Some(1_795_392_000_000));
        assert_eq!(parse_time_ms("2026-11-23 09:00", &tokyo), Some(1_795_392_000_000));
        assert_eq!(parse_time_ms("2026-11-23", &tokyo), Some(1_795_392_000_000 - 9 * 3_600_000));
        for bad in ["2026-13-01", "2025-02-29", "2026-11-23T24:00Z", "yesterday", ""] {
            assert_eq!(parse_time_ms(bad, &tokyo), None, "{bad}");
        }
    }

    #[test]
    fn times_format_at_an_offset() {
        let utc = parse_zone("UTC").unwrap();
        assert_eq!(format_time(0, &utc), "1970-01-01 00:00:00Z");
        assert_eq!(format_time(1_795_392_000_000, &parse_zone("Asia/Tokyo").unwrap()), "2026-11-23 09:00:00+09:00");
        assert_eq!(format_time(1_709_227_800_999, &parse_zone("-05:30").unwrap()), "2024-02-29 12:00:00-05:30");
        assert_eq!(format_time(-1000, &utc), "1969-12-31 23:59:59Z");
        // Daylight saving: Berlin is +01:00 in winter, +02:00 in summer.
        let berlin = parse_zone("Europe/Berlin").unwrap();
        assert!(format_time(1_795_392_000_000, &berlin).ends_with("+01:00"));
        assert!(format_time(1_783_000_000_000, &berlin).ends_with("+02:00"));
    }
}
