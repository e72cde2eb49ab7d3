//! The wall-clock budget of `irgan tune`: durations such as `90s`, `10m`, `1h` or `1h30m`.

use std::time::Duration;

/// Parses a budget: one or more `<number><unit>` parts, unit `h`, `m` or `s` (`2.5m` = 150 s).
/// The error says what was expected.
pub fn parse_budget(text: &str) -> Result<Duration, String> {
    let bad = |why: &str| {
        format!("invalid budget `{text}`: {why}; expected a duration such as 90s, 10m, 1h or 1h30m")
    };
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad("it is empty"));
    }
    let mut seconds = 0.0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| bad("a number needs a unit (h, m or s)"))?;
        let (number, tail) = rest.split_at(digits);
        let value: f64 = number
            .parse()
            .map_err(|_| bad(&format!("`{number}` is not a number")))?;
        let unit = tail.chars().next().unwrap_or(' ');
        let scale = match unit {
            'h' => 3600.0,
            'm' => 60.0,
            's' => 1.0,
            other => return Err(bad(&format!("unknown unit `{other}`"))),
        };
        seconds += value * scale;
        rest = &tail[unit.len_utf8()..];
    }
    if !(seconds.is_finite() && seconds > 0.0) {
        return Err(bad("it must be longer than zero"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// A budget as a user would write it: `1h30m`, `10m`, `90s`, `2.5s`.
pub fn format_budget(budget: Duration) -> String {
    let total = budget.as_secs_f64();
    if total.fract() != 0.0 {
        return format!("{total}s");
    }
    let total = budget.as_secs();
    let (h, m, s) = (total / 3600, total % 3600 / 60, total % 60);
    let mut out = String::new();
    for (n, unit) in [(h, 'h'), (m, 'm'), (s, 's')] {
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_add_up() {
        let secs = |t: &str| parse_budget(t).unwrap().as_secs_f64();
        assert_eq!(secs("90s"), 90.0);
        assert_eq!(secs("10m"), 600.0);
        assert_eq!(secs("1h"), 3600.0);
        assert_eq!(secs("1h30m"), 5400.0);
        assert_eq!(secs("2.5m"), 150.0);
        assert_eq!(secs(" 3s "), 3.0);
    }

    #[test]
    fn bad_budgets_say_what_is_expected() {
        for bad in ["", "10", "10x", "m", "1.2.3s", "0s", "-5m", "10 m"] {
            let e = parse_budget(bad).unwrap_err();
            assert!(e.contains("90s, 10m, 1h"), "{bad:?}: {e}");
            assert!(e.contains(&format!("`{bad}`")), "{bad:?}: {e}");
        }
    }

    #[test]
    fn formats_round_trip() {
        for t in ["1h30m", "10m", "90s", "1h", "2.5s"] {
            let d = parse_budget(t).unwrap();
            assert_eq!(parse_budget(&format_budget(d)).unwrap(), d, "{t}");
        }
        assert_eq!(format_budget(Duration::from_secs(90)), "1m30s");
    }
}
