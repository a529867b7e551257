//! The clock the executor and the simulator read, so that a rehearsal can run them in virtual
//! time.
//!
//! Durations come from `tokio::time::Instant`, which a paused runtime advances only when every
//! task waits on a timer. Wall-clock readings (journal stamps, deletion timestamps, the lock's
//! renew time, the maintenance window) come from [`now`]: the system clock normally, and in
//! virtual time the moment virtual time started plus the virtual time elapsed since, so that
//! what is measured with timestamps agrees with what is measured with instants.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

static VIRTUAL: AtomicBool = AtomicBool::new(false);
static ANCHOR: OnceLock<(SystemTime, std::time::Instant)> = OnceLock::new();

/// Switches this process's wall clock to follow virtual time (a rehearsal's paused runtime).
/// Outside a paused runtime the readings stay the system clock's, give or take clock steps.
pub fn use_virtual_time() {
    anchor();
    VIRTUAL.store(true, Ordering::Relaxed);
}

fn anchor() -> (SystemTime, std::time::Instant) {
    *ANCHOR.get_or_init(|| (SystemTime::now(), std::time::Instant::now()))
}

/// The wall clock.
pub fn system_now() -> SystemTime {
    if !VIRTUAL.load(Ordering::Relaxed) {
        return SystemTime::now();
    }
    let (wall, at) = anchor();
    wall + tokio::time::Instant::now().into_std().saturating_duration_since(at)
}

/// The wall clock as a timestamp.
pub fn now() -> jiff::Timestamp {
    jiff::Timestamp::try_from(system_now()).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn virtual_wall_clock_moves_with_virtual_time() {
        super::use_virtual_time();
        let before = super::system_now();
        tokio::time::sleep(Duration::from_secs(3600)).await;
        let after = super::system_now();
        let moved = after.duration_since(before).unwrap();
        assert!(moved >= Duration::from_secs(3599) && moved < Duration::from_secs(3660), "{moved:?}");
    }
}
