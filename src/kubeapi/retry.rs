//! How calls to the API server are retried: on the answers that mean "try again" (429, 5xx,
//! connection errors), with exponential backoff and random jitter so that clients started
//! together do not retry together.

use std::time::Duration;

/// Retries an idempotent call: 5 attempts, pauses of 100, 200, 400 and 800 ms, each plus up to
/// half again at random (1.5 to 2.25 s in all).
pub async fn with_retries<T, F, Fut>(mut call: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let mut delay = Duration::from_millis(100);
    let mut attempt = 1;
    loop {
        match call().await {
            Err(e) if attempt < 5 && transient(&e) => {
                tokio::time::sleep(delay + jitter(delay)).await;
                delay *= 2;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// True for errors worth another attempt (every call retried with it is idempotent: reads and
/// merge patches; evictions decide for themselves).
pub fn transient(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => matches!(s.code, 429 | 500 | 502 | 503 | 504),
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// A random extra of up to half of `d`.
pub fn jitter(d: Duration) -> Duration {
    d.mul_f64(fastrand::f64() / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_is_random_and_bounded() {
        let d = Duration::from_millis(1000);
        let samples: std::collections::BTreeSet<u128> = (0..50).map(|_| jitter(d).as_micros()).collect();
        assert!(samples.len() > 40, "{samples:?}");
        assert!(samples.iter().all(|s| *s <= 500_000));
    }
}
