//! Entry options from Python arguments: `ttl`, `at`, `idle`, `tags`, `memory_only`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyFloat, PyInt, PyString};
use tiered::Options;

/// Options as Python passed them.
#[derive(Default)]
pub struct Given<'py> {
    pub ttl: Option<Bound<'py, PyAny>>,
    pub at: Option<Bound<'py, PyAny>>,
    pub idle: Option<Bound<'py, PyAny>>,
    pub tags: Option<Vec<String>>,
    pub memory_only: bool,
}

impl Given<'_> {
    /// The core's options; `at` is resolved now (a time of day means its next occurrence).
    pub fn options(&self) -> PyResult<Options> {
        let mut o = Options::new();
        if let Some(ttl) = non_none(&self.ttl) {
            o = o.ttl(duration("ttl", ttl)?);
        }
        if let Some(idle) = non_none(&self.idle) {
            o = o.idle(duration("idle", idle)?);
        }
        if let Some(at) = non_none(&self.at) {
            o = o.expires_at(instant(at)?);
        }
        if let Some(tags) = &self.tags {
            o = o.tags(tags);
        }
        if self.memory_only {
            o = o.memory_only();
        }
        Ok(o)
    }
}

fn non_none<'a, 'py>(v: &'a Option<Bound<'py, PyAny>>) -> Option<&'a Bound<'py, PyAny>> {
    v.as_ref().filter(|v| !v.is_none())
}

/// A duration: seconds (int or float), a `timedelta`, or text such as `"5m"`, `"90s"`,
/// `"1h30m"` or `"2 hours"`.
pub fn duration(what: &str, v: &Bound<'_, PyAny>) -> PyResult<Duration> {
    let secs: f64 = if v.is_instance_of::<PyInt>() || v.is_instance_of::<PyFloat>() {
        v.extract()?
    } else if let Ok(text) = v.cast::<PyString>() {
        let text = text.to_str()?;
        // A span ("1d", "2 hours", "1h30m", "PT5M"), days counted as 24 hours.
        let parsed = text
            .trim()
            .parse::<jiff::Span>()
            .map_err(|e| e.to_string())
            .and_then(|span| {
                span.to_duration(jiff::SpanRelativeTo::days_are_24_hours())
                    .map_err(|e| e.to_string())
            })
            .map_err(|e| {
                PyValueError::new_err(format!(
                    "{what}={text:?} is not a duration ({e}); write seconds or text such as \
                     \"5m\", \"90s\", \"1h30m\", \"2 hours\" or \"1d\""
                ))
            })?;
        parsed.as_secs_f64()
    } else if v.hasattr("total_seconds")? {
        v.call_method0("total_seconds")?.extract()?
    } else {
        return Err(PyTypeError::new_err(format!(
            "{what} must be seconds, a timedelta or text such as \"5m\", not {}",
            v.get_type().name()?
        )));
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(PyValueError::new_err(format!(
            "{what} must be a finite duration of zero or more, not {secs}"
        )));
    }
    Ok(Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX))
}

/// A wall-clock deadline: `"16:00"` (its next occurrence, local time), an ISO date and time
/// (`"2026-12-24 16:00"`, local unless it names an offset), a `datetime` (naive means local),
/// a `datetime.time`, or seconds since the epoch.
pub fn instant(v: &Bound<'_, PyAny>) -> PyResult<SystemTime> {
    if v.is_instance_of::<PyInt>() || v.is_instance_of::<PyFloat>() {
        let secs: f64 = v.extract()?;
        return epoch_secs(secs);
    }
    if let Ok(text) = v.cast::<PyString>() {
        return parse_instant(text.to_str()?.trim());
    }
    if v.hasattr("timestamp")? {
        // A datetime: `timestamp()` reads a naive one as local time, as users mean it.
        return epoch_secs(v.call_method0("timestamp")?.extract()?);
    }
    if v.hasattr("hour")? && v.hasattr("minute")? {
        let (h, m, s): (i8, i8, i8) = (
            v.getattr("hour")?.extract()?,
            v.getattr("minute")?.extract()?,
            v.getattr("second").and_then(|s| s.extract()).unwrap_or(0),
        );
        let t = jiff::civil::Time::new(h, m, s, 0)
            .map_err(|e| PyValueError::new_err(format!("at: not a time of day ({e})")))?;
        return Ok(next_occurrence(t));
    }
    Err(PyTypeError::new_err(format!(
        "at must be text such as \"16:00\", a datetime, a time or seconds since the epoch, not {}",
        v.get_type().name()?
    )))
}

fn epoch_secs(secs: f64) -> PyResult<SystemTime> {
    if !secs.is_finite() {
        return Err(PyValueError::new_err("at must be a finite time"));
    }
    Ok(if secs <= 0.0 {
        UNIX_EPOCH
    } else {
        UNIX_EPOCH + Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
    })
}

/// The next time the local clock shows `t` (today's if still ahead, else tomorrow's); in a
/// daylight-saving gap or fold, the later reading.
fn next_occurrence(t: jiff::civil::Time) -> SystemTime {
    let now = jiff::Zoned::now();
    let tz = now.time_zone().clone();
    let mut date = now.date();
    for _ in 0..3 {
        if let Ok(at) = tz.to_ambiguous_zoned(date.to_datetime(t)).later() {
            if at.timestamp() > now.timestamp() {
                return SystemTime::from(at.timestamp());
            }
        }
        match date.tomorrow() {
            Ok(next) => date = next,
            Err(_) => break,
        }
    }
    // The clock is at the end of the representable range: no later occurrence.
    SystemTime::from(now.timestamp())
}

fn parse_instant(text: &str) -> PyResult<SystemTime> {
    // A full instant first: a date with a time (jiff's time parser would take the time of a
    // date-time and drop the date).
    if let Ok(ts) = text.parse::<jiff::Timestamp>() {
        return Ok(SystemTime::from(ts));
    }
    if let Ok(dt) = text.parse::<jiff::civil::DateTime>() {
        if let Ok(z) = jiff::tz::TimeZone::system().to_ambiguous_zoned(dt).later() {
            return Ok(SystemTime::from(z.timestamp()));
        }
    }
    let bare_time = !text.contains('-') && !text.contains('/') && text.contains(':');
    if bare_time {
        if let Ok(t) = text.parse::<jiff::civil::Time>() {
            return Ok(next_occurrence(t));
        }
    }
    Err(PyValueError::new_err(format!(
        "at={text:?} is not a time: write \"16:00\", \"2026-12-24 16:00\" or \
         \"2026-12-24T16:00:00+01:00\""
    )))
}
