//! Kubernetes resource quantities (`100m`, `2`, `512Mi`, `1G`) as plain numbers, for capacity
//! arithmetic in the simulator's scheduler and the planner's spare-capacity check.

/// A Kubernetes quantity (`100m`, `2`, `512Mi`, `1G`) as a number.
pub fn parse_quantity(q: &str) -> f64 {
    let q = q.trim();
    for (suffix, m) in [
        ("Ki", 1024.0),
        ("Mi", 1_048_576.0),
        ("Gi", 1_073_741_824.0),
        ("Ti", 1_099_511_627_776.0),
        ("m", 0.001),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
    ] {
        if let Some(n) = q.strip_suffix(suffix) {
            return n.parse::<f64>().unwrap_or(0.0) * m;
        }
    }
    q.parse().unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::parse_quantity;

    #[test]
    fn suffixes() {
        assert_eq!(parse_quantity("100m"), 0.1);
        assert_eq!(parse_quantity("2"), 2.0);
        assert_eq!(parse_quantity("512Mi"), 512.0 * 1_048_576.0);
        assert_eq!(parse_quantity("1G"), 1e9);
        assert_eq!(parse_quantity("bogus"), 0.0);
    }
}
