//! Timestamps and ids in Compute's formats, without a date library.

use std::sync::atomic::{AtomicU64, Ordering};

/// RFC 3339 in UTC with milliseconds, as Compute writes `creationTimestamp`
/// (Google uses the Pacific offset; any offset is valid RFC 3339).
pub fn now_rfc3339() -> String {
    let since = ccd_clock::since_epoch();
    rfc3339(since.as_secs(), since.subsec_millis())
}

pub fn rfc3339(secs: u64, millis: u32) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}-00:00",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// A unique numeric id, sent as a decimal string like Compute's `id`.
pub fn new_id() -> String {
    let seed = ccd_clock::since_epoch().as_nanos() as u64;
    let _ = NEXT_ID.compare_exchange(0, seed | (1 << 60), Ordering::Relaxed, Ordering::Relaxed);
    NEXT_ID.fetch_add(1, Ordering::Relaxed).to_string()
}

/// A short unique suffix for generated names (instances, operations).
pub fn suffix(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut n = new_id()
        .parse::<u64>()
        .unwrap_or(0)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (0..len)
        .map(|_| {
            let c = ALPHABET[(n % 36) as usize] as char;
            n = (n / 36) ^ n.rotate_left(17);
            c
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000-00:00");
        assert_eq!(rfc3339(1_795_523_045, 7), "2026-11-24T12:24:05.007-00:00");
        assert_eq!(rfc3339(951_782_400, 0), "2000-02-29T00:00:00.000-00:00");
    }

    #[test]
    fn ids_and_suffixes_are_unique() {
        let ids: std::collections::BTreeSet<_> = (0..1000).map(|_| new_id()).collect();
        assert_eq!(ids.len(), 1000);
        let names: std::collections::BTreeSet<_> = (0..1000).map(|_| suffix(6)).collect();
        assert!(names.len() > 990);
    }
}
