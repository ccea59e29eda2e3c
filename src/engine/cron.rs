//! Standard 5-field cron expressions (`minute hour day-of-month month
//! day-of-week`), evaluated in UTC, for `rotation_schedule`.
//!
//! Small and self-contained rather than a dependency: only "when is the
//! next match after t" is needed, numbers only (no names, no `L`/`W`/`#`).
//! As in Vixie cron, when both day fields are restricted a day matching
//! either one matches.

use time::{Date, Duration as Days, OffsetDateTime};

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Schedule {
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    days_any: bool,
    weekdays_any: bool,
}

impl Schedule {
    pub(super) fn parse(expr: &str) -> Result<Schedule, String> {
        let fields: Vec<&str> = expr.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(format!(
                "needs 5 fields (minute hour day-of-month month day-of-week), got {}",
                fields.len()
            ));
        }
        let mut weekdays = parse_field(fields[4], 0, 7, "day-of-week")?;
        // 7 is Sunday too.
        if weekdays & (1 << 7) != 0 {
            weekdays = (weekdays | 1) & !(1 << 7);
        }
        Ok(Schedule {
            minutes: parse_field(fields[0], 0, 59, "minute")?,
            hours: parse_field(fields[1], 0, 23, "hour")?,
            days: parse_field(fields[2], 1, 31, "day-of-month")?,
            months: parse_field(fields[3], 1, 12, "month")?,
            weekdays,
            days_any: fields[2] == "*",
            weekdays_any: fields[4] == "*",
        })
    }

    fn day_matches(&self, date: Date) -> bool {
        if self.months & (1 << u8::from(date.month())) == 0 {
            return false;
        }
        let dom = self.days & (1 << date.day()) != 0;
        let dow = self.weekdays & (1 << date.weekday().number_days_from_sunday()) != 0;
        match (self.days_any, self.weekdays_any) {
            (false, false) => dom || dow,
            _ => dom && dow,
        }
    }

    /// The first matching minute strictly after `after` (Unix seconds), or
    /// `None` if nothing matches within five years (e.g. `0 0 31 2 *`).
    pub(super) fn next_after(&self, after: u64) -> Option<u64> {
        let start = OffsetDateTime::from_unix_timestamp(i64::try_from(after).ok()?).ok()?;
        let mut date = start.date();
        for day in 0..(5 * 366) {
            if self.day_matches(date) {
                for hour in 0..24u8 {
                    if self.hours & (1 << hour) == 0 {
                        continue;
                    }
                    for minute in 0..60u8 {
                        if self.minutes & (1 << minute) == 0 {
                            continue;
                        }
                        let t = date.with_hms(hour, minute, 0).ok()?.assume_utc();
                        let t = u64::try_from(t.unix_timestamp()).ok()?;
                        if t > after || day > 0 {
                            return Some(t);
                        }
                    }
                }
            }
            date = date.checked_add(Days::days(1))?;
        }
        None
    }
}

/// One field as a bit set: `*`, `n`, `a-b`, with `/step`, comma-separated.
fn parse_field(field: &str, min: u32, max: u32, name: &str) -> Result<u64, String> {
    let bad = |why: &str| format!("{name} field {field:?}: {why}");
    let number = |s: &str| -> Result<u32, String> {
        let n: u32 = s
            .parse()
            .map_err(|_| bad(&format!("{s:?} is not a number")))?;
        if n < min || n > max {
            return Err(bad(&format!("{n} is outside {min}-{max}")));
        }
        Ok(n)
    };
    let mut bits = 0u64;
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s.parse().map_err(|_| bad("bad step"))?;
                if step == 0 {
                    return Err(bad("step 0"));
                }
                (r, step)
            }
            None => (part, 1),
        };
        let (lo, hi) = match range {
            "*" => (min, max),
            r => match r.split_once('-') {
                Some((a, b)) => (number(a)?, number(b)?),
                // `a/n` runs from a to the end, as in Vixie cron.
                None if step > 1 => (number(r)?, max),
                None => {
                    let n = number(r)?;
                    (n, n)
                }
            },
        };
        if lo > hi {
            return Err(bad(&format!("range {lo}-{hi} is backwards")));
        }
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-11-30 18:00:00 UTC, a Monday.
    const MON_18H: u64 = 1_796_061_600;

    #[test]
    fn next_matches() {
        let every_minute = Schedule::parse("* * * * *").unwrap();
        assert_eq!(every_minute.next_after(MON_18H), Some(MON_18H + 60));
        assert_eq!(every_minute.next_after(MON_18H + 1), Some(MON_18H + 60));
        let daily_3am = Schedule::parse("0 3 * * *").unwrap();
        assert_eq!(daily_3am.next_after(MON_18H), Some(MON_18H + 9 * 3600));
        let quarter = Schedule::parse("*/15 * * * *").unwrap();
        assert_eq!(quarter.next_after(MON_18H + 60), Some(MON_18H + 15 * 60));
        // Sundays (0 and 7) at midnight: six days on.
        for expr in ["0 0 * * 0", "0 0 * * 7"] {
            let s = Schedule::parse(expr).unwrap();
            assert_eq!(s.next_after(MON_18H), Some(MON_18H + 6 * 86400 - 18 * 3600));
        }
        // First of the month: 1 December.
        let monthly = Schedule::parse("0 0 1 * *").unwrap();
        assert_eq!(monthly.next_after(MON_18H), Some(MON_18H + 6 * 3600));
        // Both day fields restricted: either matches (Tuesday comes first).
        let either = Schedule::parse("0 0 15 * 2").unwrap();
        assert_eq!(either.next_after(MON_18H), Some(MON_18H + 6 * 3600));
        assert_eq!(
            Schedule::parse("0 0 31 2 *").unwrap().next_after(MON_18H),
            None
        );
    }

    #[test]
    fn rejects_bad_expressions() {
        for bad in [
            "",
            "* * * *",
            "* * * * * *",
            "60 * * * *",
            "* 24 * * *",
            "* * 0 * *",
            "* * * 13 *",
            "* * * * 8",
            "*/0 * * * *",
            "5-1 * * * *",
            "a * * * *",
            "@daily",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad:?} parsed");
        }
        assert!(Schedule::parse("0,30 9-17 * 1-6 1-5").is_ok());
    }
}
