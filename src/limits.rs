//! One size limit for every input read from a file: plans, journals, inventories, scenarios,
//! catalog files, node scripts, files inlined into kubeconfigs. Sizes reported by the file system
//! are not trusted (devices, pipes and `/proc` say 0): the read itself stops one byte past the
//! limit, so `/dev/zero` or an endless pipe costs at most the limit in memory. Each input has its
//! own default; `--max-input-bytes` (or `K8S_UPGRADE_MAX_INPUT_BYTES`) replaces them all, and
//! the error names the input, the limit and that flag.

use std::io::Read;
use std::path::Path;
use std::sync::OnceLock;

static OVERRIDE: OnceLock<u64> = OnceLock::new();

/// Replaces every input's default limit for this process (set once, from the command line).
pub fn set_override(bytes: u64) {
    let _ = OVERRIDE.set(bytes);
}

/// The limit in force for an input whose default is `default`.
pub fn limit(default: u64) -> u64 {
    OVERRIDE.get().copied().unwrap_or(default)
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReadError {
    #[error("cannot read {what} {path}: {message}")]
    Io { what: String, path: String, message: String },
    #[error(
        "{what} {path} is larger than {limit} bytes, the limit for it; if it is what you meant, raise the limit with --max-input-bytes (or K8S_UPGRADE_MAX_INPUT_BYTES)"
    )]
    TooLarge { what: String, path: String, limit: u64 },
    #[error("{what} {path} is not UTF-8 text")]
    NotText { what: String, path: String },
    #[error("{what} {path} is not text: it holds a NUL byte at offset {offset}")]
    Binary { what: String, path: String, offset: u64 },
}

/// Reads `path` (`what` names it in errors, e.g. "--plan") up to the limit for `default`.
pub fn read(path: &Path, what: &str, default: u64) -> Result<Vec<u8>, ReadError> {
    read_bounded(path, what, default, false)
}

/// [`read`] for text (YAML, JSON): the read also stops at the first NUL byte, which no text
/// input holds, so a device such as `/dev/zero` is refused at once instead of at the limit.
pub fn read_text(path: &Path, what: &str, default: u64) -> Result<String, ReadError> {
    let bytes = read_bounded(path, what, default, true)?;
    String::from_utf8(bytes).map_err(|_| ReadError::NotText { what: what.into(), path: path.display().to_string() })
}

/// The read behind [`read`] and [`read_text`]. A chunk that would take the input past the limit
/// is refused before it is kept. What does not fit the buffer sized from the reported length (all
/// of a pipe's input) is kept in chunks and joined once at the end: a buffer doubled as it fills
/// leaves each smaller copy behind, and an allocator may hold on to them, so an endless pipe
/// would cost several times the limit instead of about once.
fn read_bounded(path: &Path, what: &str, default: u64, text: bool) -> Result<Vec<u8>, ReadError> {
    let shown = || path.display().to_string();
    let io = |e: std::io::Error| ReadError::Io { what: what.into(), path: shown(), message: e.to_string() };
    let limit = limit(default);
    let mut file = std::fs::File::open(path).map_err(io)?;
    // The reported length only sizes the buffer: a device or a pipe reports 0.
    let hint = file.metadata().map(|m| m.len()).unwrap_or(0).min(limit).min(64 * 1024 * 1024);
    let mut bytes = Vec::with_capacity(hint as usize);
    let mut spill: Vec<Vec<u8>> = Vec::new();
    let mut total = 0usize;
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = match file.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io(e)),
        };
        if text && let Some(at) = chunk[..n].iter().position(|b| *b == 0) {
            return Err(ReadError::Binary { what: what.into(), path: shown(), offset: (total + at) as u64 });
        }
        if (total + n) as u64 > limit {
            return Err(ReadError::TooLarge { what: what.into(), path: shown(), limit });
        }
        if spill.is_empty() && bytes.len() + n <= bytes.capacity() {
            bytes.extend_from_slice(&chunk[..n]);
        } else {
            spill.push(chunk[..n].to_vec());
        }
        total += n;
    }
    if !spill.is_empty() {
        bytes.reserve_exact(total - bytes.len());
        for c in spill {
            bytes.extend_from_slice(&c);
        }
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endless_device_stops_at_the_limit_and_names_it() {
        let e = read(Path::new("/dev/zero"), "--plan", 1024).unwrap_err();
        assert_eq!(e, ReadError::TooLarge { what: "--plan".into(), path: "/dev/zero".into(), limit: 1024 });
        assert!(e.to_string().contains("--max-input-bytes"), "{e}");
    }

    #[test]
    fn a_file_within_the_limit_is_read_whole() {
        let dir = std::env::temp_dir().join(format!("k8s-upgrade-limits-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("x");
        std::fs::write(&f, "hello").unwrap();
        assert_eq!(read_text(&f, "x", 5).unwrap(), "hello");
        assert!(matches!(read_text(&f, "x", 4), Err(ReadError::TooLarge { limit: 4, .. })));
        std::fs::write(&f, [0xff, 0xfe]).unwrap();
        assert!(matches!(read_text(&f, "x", 5), Err(ReadError::NotText { .. })));
        std::fs::write(&f, b"ab\0cd").unwrap();
        assert!(matches!(read_text(&f, "x", 50), Err(ReadError::Binary { offset: 2, .. })));
        assert!(matches!(read_text(Path::new("/dev/zero"), "x", 1 << 30), Err(ReadError::Binary { offset: 0, .. })));
        assert!(matches!(read(&dir.join("missing"), "x", 5), Err(ReadError::Io { .. })));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
