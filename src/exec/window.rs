//! The maintenance window: a node is started only if it can finish before `--window-end`.
//! What a node takes is the longest one measured so far, in this run or before a resume (the
//! journal keeps each node's seconds); before any is measured, the operator's `--node-estimate`.

use std::time::{Duration, SystemTime};

/// `Ok` when a node started `now` would finish by `end`; otherwise the time it would need.
pub fn check(now: SystemTime, end: SystemTime, measured_secs: &[f64], estimate: Duration) -> Result<(), Duration> {
    let need = measured_secs
        .iter()
        .copied()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .fold(None, |m: Option<f64>, s| Some(m.map_or(s, |m| m.max(s))))
        .map_or(estimate, Duration::from_secs_f64);
    if now + need > end { Err(need) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_node_is_judged_by_the_estimate_later_ones_by_the_longest_measured() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let end = now + Duration::from_secs(600);
        // Nothing measured: the 10-minute estimate just fits, 11 minutes does not.
        assert!(check(now, end, &[], Duration::from_secs(600)).is_ok());
        assert_eq!(check(now, end, &[], Duration::from_secs(660)), Err(Duration::from_secs(660)));
        // Measured (also across a resume): the longest counts, not the estimate.
        assert!(check(now, end, &[120.0, 300.0], Duration::from_secs(3600)).is_ok());
        assert_eq!(check(now, end, &[120.0, 700.0], Duration::ZERO), Err(Duration::from_secs(700)));
        assert!(check(now, end, &[f64::NAN, 10.0], Duration::ZERO).is_ok());
    }
}
