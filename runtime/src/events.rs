//! Events: every fallback, and every decision that differs from what was requested or
//! preferred, as a record — surface, requested, selected, reason, detail — kept in a bounded
//! in-memory log ([`recent`]), emitted through `tracing` (target `meridian::events`, level
//! warn), and appended as one JSON line to the file `MERIDIAN_EVENT_LOG` names.
//! `MERIDIAN_STRICT_NATIVE=1` (or [`crate::EngineBuilder::strict_native`]) turns a fallback
//! into an error where it happens: the engine does not build, the job fails, the file is not
//! opened.
//!
//! The log is process-wide (the streamer's I/O falls back without an engine at hand); the
//! JSON file is opened for each event, appended and closed, so that several processes may
//! share one, and a file that cannot be written costs the event nothing but its line.

use parking_lot::Mutex;
use std::collections::VecDeque;
use std::io::Write;

/// The file events are appended to, one JSON object per line.
pub const LOG_ENV: &str = "MERIDIAN_EVENT_LOG";
/// `1` (or `true`, `on`): fallbacks are errors.
pub const STRICT_ENV: &str = "MERIDIAN_STRICT_NATIVE";
/// Events kept in memory; older ones are dropped.
pub const KEPT: usize = 1024;

/// One fallback or decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Where: `engine` (the backend chosen at build), `job` (one job's backend), `route` (the
    /// interpreter instead of the JIT), `io` (how a file is read), `stream` (staging memory
    /// left pageable), `memory` (device memory from outside the heap reserved at launch).
    pub surface: &'static str,
    /// What was requested or preferred.
    pub requested: String,
    /// What runs instead.
    pub selected: String,
    /// Why.
    pub reason: String,
    /// More: rows, the program, the file.
    pub detail: String,
    /// When, in ms since the Unix epoch.
    pub at_ms: u64,
}

impl Event {
    /// An event stamped now.
    pub fn new(
        surface: &'static str,
        requested: impl Into<String>,
        selected: impl Into<String>,
        reason: impl Into<String>,
        detail: impl Into<String>,
    ) -> Event {
        let at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Event {
            surface,
            requested: requested.into(),
            selected: selected.into(),
            reason: reason.into(),
            detail: detail.into(),
            at_ms,
        }
    }

    /// The event as one JSON object.
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "surface": self.surface,
            "requested": self.requested,
            "selected": self.selected,
            "reason": self.reason,
            "detail": self.detail,
            "at_ms": self.at_ms,
        })
        .to_string()
    }
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} requested, {} selected: {}",
            self.surface, self.requested, self.selected, self.reason
        )?;
        if !self.detail.is_empty() {
            write!(f, " ({})", self.detail)?;
        }
        Ok(())
    }
}

static LOG: Mutex<VecDeque<Event>> = Mutex::new(VecDeque::new());

/// Records `event`: the in-memory log, `tracing`, and the JSON-lines file if one is named.
pub fn record(event: Event) {
    tracing::warn!(
        target: "meridian::events",
        surface = event.surface,
        requested = %event.requested,
        selected = %event.selected,
        reason = %event.reason,
        detail = %event.detail,
        "fallback"
    );
    if let Some(path) = std::env::var_os(LOG_ENV).filter(|p| !p.is_empty()) {
        let line = event.to_json() + "\n";
        // One write of the whole line, in append mode: lines of several writers do not mix.
        // Never blocking (a FIFO nobody reads): a log that cannot be written was said at
        // start (`env::check`), and an event is not worth a hang.
        let mut options = std::fs::OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.custom_flags(libc::O_NONBLOCK);
        }
        let _ = options.open(&path).and_then(|mut f| f.write_all(line.as_bytes()));
    }
    let mut log = LOG.lock();
    if log.len() == KEPT {
        log.pop_front();
    }
    log.push_back(event);
}

/// The events kept (the last [`KEPT`]), oldest first.
pub fn recent() -> Vec<Event> {
    LOG.lock().iter().cloned().collect()
}

/// Whether `MERIDIAN_STRICT_NATIVE` asks for fallbacks to be errors; an unknown value is an
/// error naming the variable.
pub fn strict_from_env() -> Result<bool, String> {
    match std::env::var(STRICT_ENV) {
        Err(_) => Ok(false),
        Ok(v) if matches!(v.as_str(), "" | "0" | "false" | "off") => Ok(false),
        Ok(v) if matches!(v.as_str(), "1" | "true" | "on") => Ok(true),
        Ok(v) => Err(format!("{STRICT_ENV}={v:?} is not one of 1, 0 (or true, false, on, off)")),
    }
}

/// The error a fallback becomes under strict mode.
pub fn refused(event: &Event) -> String {
    format!("{STRICT_ENV}=1 refuses a fallback: {event}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_carries_every_field_into_json_and_text() {
        let e = Event::new("job", "gpu", "cpu", "the GPU does not run `affine`", "program moved, 12 rows");
        let v: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap_or_default();
        assert_eq!(v["surface"], "job");
        assert_eq!(v["requested"], "gpu");
        assert_eq!(v["selected"], "cpu");
        assert_eq!(v["reason"], "the GPU does not run `affine`");
        assert_eq!(v["detail"], "program moved, 12 rows");
        assert!(v["at_ms"].as_u64().is_some_and(|t| t > 0));
        assert_eq!(
            e.to_string(),
            "job: gpu requested, cpu selected: the GPU does not run `affine` (program moved, 12 rows)"
        );
    }
}
