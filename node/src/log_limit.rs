//! Rate limits on the log lines a stranger can cause (a rejected message, a penalised peer):
//! each is worth an operator's attention, but a flood of them must not fill the disk. At most
//! so many lines a window; the lines a window suppressed are counted, and the first line of the
//! next window says how many there were.

use std::time::{Duration, Instant};

/// Penalty log lines (rejected gossip, lying sync peers) a node writes per
/// [`PENALTY_LOG_WINDOW`], at most.
pub const PENALTY_LOGS_PER_WINDOW: u32 = 60;
/// The window of [`PENALTY_LOGS_PER_WINDOW`].
pub const PENALTY_LOG_WINDOW: Duration = Duration::from_secs(60);

/// Whether to write a line now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allow {
    /// Write it; `suppressed` lines were left out before it (say so when not 0).
    Log {
        /// Lines left out since the last one written.
        suppressed: u64,
    },
    /// Leave it out (it is counted).
    Suppress,
}

/// A budget of log lines per window.
#[derive(Debug)]
pub struct LogLimit {
    per_window: u32,
    window: Duration,
    started: Option<Instant>,
    written: u32,
    suppressed: u64,
}

impl LogLimit {
    /// At most `per_window` lines per `window`.
    pub fn new(per_window: u32, window: Duration) -> LogLimit {
        LogLimit { per_window, window, started: None, written: 0, suppressed: 0 }
    }

    /// Whether a line may be written at `now`.
    pub fn allow(&mut self, now: Instant) -> Allow {
        if self.started.is_none_or(|s| now.saturating_duration_since(s) >= self.window) {
            self.started = Some(now);
            self.written = 0;
        }
        if self.written >= self.per_window {
            self.suppressed += 1;
            return Allow::Suppress;
        }
        self.written += 1;
        Allow::Log { suppressed: std::mem::take(&mut self.suppressed) }
    }
}

impl Default for LogLimit {
    fn default() -> LogLimit {
        LogLimit::new(PENALTY_LOGS_PER_WINDOW, PENALTY_LOG_WINDOW)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_cut_to_the_budget_and_the_next_window_says_how_much_was_left_out() {
        let mut limit = LogLimit::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        let first: Vec<Allow> = (0..5).map(|_| limit.allow(t0)).collect();
        assert_eq!(
            first,
            [
                Allow::Log { suppressed: 0 },
                Allow::Log { suppressed: 0 },
                Allow::Log { suppressed: 0 },
                Allow::Suppress,
                Allow::Suppress
            ]
        );
        assert_eq!(limit.allow(t0 + Duration::from_secs(59)), Allow::Suppress);
        assert_eq!(limit.allow(t0 + Duration::from_secs(60)), Allow::Log { suppressed: 3 });
        assert_eq!(limit.allow(t0 + Duration::from_secs(61)), Allow::Log { suppressed: 0 });
    }
}
