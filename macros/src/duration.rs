//! Durations written like `"90s"`, `"5m"`, `"1h30m"`, `"2d"`, `"250ms"`, and times of day like
//! `"16:00"`, read at compile time.

/// Milliseconds in `text`: one or more `<whole number><unit>` parts (units `ms`, `s`, `m`, `h`,
/// `d`), largest unit first, each unit once, optionally separated by spaces.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let hint = "write it like \"90s\", \"5m\", \"1h30m\", \"2d\" or \"250ms\" \
                (units: ms, s, m, h, d)";
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(format!("an empty duration: {hint}"));
    }
    let mut total: u64 = 0;
    let mut last_unit: Option<u64> = None;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return Err(format!("`{text}` is not a duration: {hint}"));
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("`{text}`: the number is too large"))?;
        rest = &rest[digits..];
        if rest.starts_with(['.', ',']) {
            return Err(format!(
                "`{text}`: use whole numbers of each unit, such as \"1h30m\" for an hour and a half"
            ));
        }
        let letters = rest.len()
            - rest
                .trim_start_matches(|c: char| c.is_ascii_alphabetic())
                .len();
        let unit_ms = match &rest[..letters] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" => return Err(format!("`{text}` lacks a unit after {number}: {hint}")),
            other => return Err(format!("`{text}`: unknown unit `{other}`: {hint}")),
        };
        if last_unit.is_some_and(|last| unit_ms >= last) {
            return Err(format!(
                "`{text}`: give each unit once, largest first: {hint}"
            ));
        }
        last_unit = Some(unit_ms);
        total = number
            .checked_mul(unit_ms)
            .and_then(|ms| total.checked_add(ms))
            .ok_or_else(|| format!("`{text}` is too long a duration"))?;
        rest = rest[letters..].trim_start();
    }
    Ok(total)
}

/// Hour and minute of `"HH:MM"` (or `"H:MM"`), 00:00 to 23:59.
pub fn parse_time_of_day(text: &str) -> Result<(u8, u8), String> {
    let bad = || {
        format!("`{text}` is not a time of day: write it as \"HH:MM\", from \"00:00\" to \"23:59\"")
    };
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    let digits = |s: &str, max: usize| {
        !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_digit())
    };
    if !digits(h, 2) || !digits(m, 2) || m.len() != 2 {
        return Err(bad());
    }
    let (hour, minute): (u8, u8) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if hour > 23 || minute > 59 {
        return Err(bad());
    }
    Ok((hour, minute))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_each_unit_and_combined() {
        assert_eq!(parse_duration("250ms"), Ok(250));
        assert_eq!(parse_duration("90s"), Ok(90_000));
        assert_eq!(parse_duration("5m"), Ok(300_000));
        assert_eq!(parse_duration("2h"), Ok(7_200_000));
        assert_eq!(parse_duration("2d"), Ok(172_800_000));
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration("1h 30m 15s"), Ok(5_415_000));
        assert_eq!(parse_duration(" 1d2h3m4s5ms "), Ok(93_784_005));
        assert_eq!(parse_duration("0s"), Ok(0));
    }

    #[test]
    fn bad_durations_say_why() {
        for (text, why) in [
            ("", "empty"),
            ("   ", "empty"),
            ("90", "lacks a unit"),
            ("5 m", "lacks a unit"),
            ("5min", "unknown unit `min`"),
            ("5µs", "lacks a unit"),
            ("1.5h", "whole numbers"),
            ("-5s", "not a duration"),
            ("h", "not a duration"),
            ("30m1h", "largest first"),
            ("5m5m", "largest first"),
            ("99999999999999999999s", "too large"),
            ("999999999999999d", "too long"),
        ] {
            let err = parse_duration(text).unwrap_err();
            assert!(err.contains(why), "{text:?}: {err}");
        }
    }

    #[test]
    fn times_of_day() {
        assert_eq!(parse_time_of_day("16:00"), Ok((16, 0)));
        assert_eq!(parse_time_of_day("0:05"), Ok((0, 5)));
        assert_eq!(parse_time_of_day("23:59"), Ok((23, 59)));
        for bad in [
            "24:00", "12:60", "12", "12:5", "1200", "ab:cd", ":30", "12:", "-1:00", "123:00",
        ] {
            assert!(parse_time_of_day(bad).is_err(), "{bad}");
        }
    }
}
