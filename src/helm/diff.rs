//! A unified diff of two texts, line by line (Myers' shortest edit script), with three lines of
//! context as `diff -u` prints it. Bounded: past [`MAX_EDITS`] differing lines the whole text is
//! shown as replaced rather than searched further.

/// Most edits searched for a shortest script.
pub const MAX_EDITS: usize = 2000;
const CONTEXT: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Same,
    Del,
    Add,
}

/// The edit script from `a` to `b`: for each step, the operation and the line indexes.
fn script(a: &[&str], b: &[&str]) -> Vec<(Op, usize, usize)> {
    // Common prefix and suffix first: a rewrite changes a few lines of a long manifest.
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let suffix = a[prefix..].iter().rev().zip(b[prefix..].iter().rev()).take_while(|(x, y)| x == y).count();
    let (ma, mb) = (&a[prefix..a.len() - suffix], &b[prefix..b.len() - suffix]);
    let mut out: Vec<(Op, usize, usize)> = (0..prefix).map(|i| (Op::Same, i, i)).collect();
    let middle = myers(ma, mb).unwrap_or_else(|| {
        let mut all: Vec<(Op, usize, usize)> = (0..ma.len()).map(|i| (Op::Del, i, 0)).collect();
        all.extend((0..mb.len()).map(|j| (Op::Add, ma.len(), j)));
        all
    });
    out.extend(middle.into_iter().map(|(op, i, j)| (op, i + prefix, j + prefix)));
    out.extend((0..suffix).map(|k| (Op::Same, a.len() - suffix + k, b.len() - suffix + k)));
    out
}

/// Myers' O(ND) search; `None` past [`MAX_EDITS`].
fn myers(a: &[&str], b: &[&str]) -> Option<Vec<(Op, usize, usize)>> {
    let (n, m) = (a.len() as isize, b.len() as isize);
    let max = (n + m) as usize;
    let offset = max as isize + 1;
    let mut v = vec![0isize; 2 * max + 3];
    // Frontier before each round d, kept for k in -d-1..=d+1 only (memory O(D²), not O(D·N)).
    let mut trace: Vec<Vec<isize>> = Vec::new();
    let mut found = None;
    for d in 0..=max.min(MAX_EDITS) as isize {
        trace.push(v[(offset - d - 1) as usize..=(offset + d + 1) as usize].to_vec());
        let mut k = -d;
        while k <= d {
            let idx = (k + offset) as usize;
            let mut x = if k == -d || (k != d && v[idx - 1] < v[idx + 1]) { v[idx + 1] } else { v[idx - 1] + 1 };
            let mut y = x - k;
            while x < n && y < m && a[x as usize] == b[y as usize] {
                x += 1;
                y += 1;
            }
            v[idx] = x;
            if x >= n && y >= m {
                found = Some(d);
                break;
            }
            k += 2;
        }
        if found.is_some() {
            break;
        }
    }
    let d_end = found?;
    // Walk back through the saved frontiers (trace[d] is the frontier before round d).
    let mut ops = Vec::new();
    let (mut x, mut y) = (n, m);
    for d in (0..=d_end).rev() {
        let saved = &trace[d as usize];
        let at = |k: isize| saved[(k + d + 1) as usize];
        let k = x - y;
        let prev_k = if k == -d || (k != d && at(k - 1) < at(k + 1)) { k + 1 } else { k - 1 };
        let prev_x = at(prev_k);
        let prev_y = prev_x - prev_k;
        while x > prev_x && y > prev_y {
            x -= 1;
            y -= 1;
            ops.push((Op::Same, x as usize, y as usize));
        }
        if d > 0 {
            if x == prev_x {
                ops.push((Op::Add, x as usize, prev_y as usize));
            } else {
                ops.push((Op::Del, prev_x as usize, y as usize));
            }
        }
        x = prev_x;
        y = prev_y;
    }
    ops.reverse();
    Some(ops)
}

/// How many lines a unified diff removes and adds.
pub fn counts_of(diff: &str) -> (usize, usize) {
    let body = diff.lines().skip(2);
    body.fold((0, 0), |(r, a), l| match l.as_bytes().first() {
        Some(b'-') => (r + 1, a),
        Some(b'+') => (r, a + 1),
        _ => (r, a),
    })
}

/// The unified diff of `old` and `new` under the names `old_name` and `new_name`; empty when
/// they are the same.
pub fn unified(old_name: &str, new_name: &str, old: &str, new: &str) -> String {
    if old == new {
        return String::new();
    }
    let (a, b): (Vec<&str>, Vec<&str>) = (old.lines().collect(), new.lines().collect());
    let ops = script(&a, &b);
    let mut out = format!("--- {old_name}\n+++ {new_name}\n");
    let changed: Vec<usize> = ops.iter().enumerate().filter(|(_, o)| o.0 != Op::Same).map(|(i, _)| i).collect();
    let mut i = 0;
    while i < changed.len() {
        // A hunk: changes closer than twice the context share one.
        let first = changed[i];
        let mut last = first;
        while i + 1 < changed.len() && changed[i + 1] - last <= 2 * CONTEXT + 1 {
            i += 1;
            last = changed[i];
        }
        i += 1;
        let start = first.saturating_sub(CONTEXT);
        let end = (last + CONTEXT + 1).min(ops.len());
        let hunk = &ops[start..end];
        let old_len = hunk.iter().filter(|o| o.0 != Op::Add).count();
        let new_len = hunk.iter().filter(|o| o.0 != Op::Del).count();
        let old_start = hunk[0].1 + usize::from(old_len > 0);
        let new_start = hunk[0].2 + usize::from(new_len > 0);
        out.push_str(&format!("@@ -{old_start},{old_len} +{new_start},{new_len} @@\n"));
        for (op, x, y) in hunk {
            match op {
                Op::Same => out.push_str(&format!(" {}\n", a[*x])),
                Op::Del => out.push_str(&format!("-{}\n", a[*x])),
                Op::Add => out.push_str(&format!("+{}\n", b[*y])),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(old: &str, diff: &str) -> String {
        // Rebuilds the new text from the old and the hunks, to check them.
        let a: Vec<&str> = old.lines().collect();
        let mut out: Vec<String> = Vec::new();
        let mut at = 0;
        for line in diff.lines().skip(2) {
            if let Some(h) = line.strip_prefix("@@ -") {
                let start: usize = h.split([',', ' ']).next().unwrap().parse().unwrap();
                let len: usize = h.split(',').nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
                let start = if len == 0 { start } else { start - 1 };
                while at < start {
                    out.push(a[at].to_string());
                    at += 1;
                }
            } else if let Some(l) = line.strip_prefix(' ') {
                assert_eq!(a[at], l);
                out.push(l.to_string());
                at += 1;
            } else if let Some(l) = line.strip_prefix('-') {
                assert_eq!(a[at], l);
                at += 1;
            } else if let Some(l) = line.strip_prefix('+') {
                out.push(l.to_string());
            }
        }
        out.extend(a[at..].iter().map(|s| s.to_string()));
        out.join("\n")
    }

    #[test]
    fn a_changed_line_and_a_dropped_block_make_hunks_with_context() {
        let old = "a\nb\nc\napiVersion: policy/v1beta1\nkind: X\nd\ne\nf\ng\nh\ni\n---\npsp\nx\ny\n";
        let new = "a\nb\nc\napiVersion: policy/v1\nkind: X\nd\ne\nf\ng\nh\ni\n";
        let d = unified("a/m", "b/m", old, new);
        assert_eq!(
            d,
            "--- a/m\n+++ b/m\n@@ -1,7 +1,7 @@\n a\n b\n c\n-apiVersion: policy/v1beta1\n+apiVersion: policy/v1\n kind: X\n d\n e\n@@ -9,7 +9,3 @@\n g\n h\n i\n----\n-psp\n-x\n-y\n"
        );
        assert_eq!(apply(old, &d), new.trim_end());
        assert_eq!(counts_of(&d), (5, 1));
        assert_eq!(unified("a", "b", old, old), "");
    }

    #[test]
    fn random_edits_round_trip() {
        let mut seed = 7u32;
        let mut next = || {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            seed >> 16
        };
        for _ in 0..200 {
            let a: Vec<String> = (0..(next() % 30)).map(|_| (next() % 5).to_string()).collect();
            let b: Vec<String> = (0..(next() % 30)).map(|_| (next() % 5).to_string()).collect();
            let (old, new) = (a.join("\n"), b.join("\n"));
            let d = unified("a", "b", &old, &new);
            if old != new {
                assert_eq!(apply(&old, &d), new, "{old:?} → {new:?}\n{d}");
            }
        }
    }
}
