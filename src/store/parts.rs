//! Multipart part sizes under R2's rules: every part but the last the same
//! size, 5 MiB to 5 GiB, at most 10,000 parts.

pub const MIN_PART: u64 = 5 * 1024 * 1024;
pub const MAX_PART: u64 = 5 * 1024 * 1024 * 1024;
pub const MAX_PARTS: u64 = 10_000;
/// The preferred part size: big enough for few requests, small enough that a
/// few parts in flight stay within a small, fixed memory budget.
pub use crate::bounds::DEFAULT_PART;

/// The part size for an object of `size` bytes (the declared length, or the
/// byte limit when the length is unknown), rounded up to a whole MiB.
///
/// Returns `None` when the object cannot be uploaded in 10,000 parts of at
/// most 5 GiB.
pub fn part_size(size: u64) -> Option<u64> {
    const MIB: u64 = 1024 * 1024;
    let needed = size.div_ceil(MAX_PARTS).div_ceil(MIB) * MIB;
    let part = needed.max(DEFAULT_PART).max(MIN_PART);
    (part <= MAX_PART).then_some(part)
}

/// The sizes of the parts of an object of `size` bytes cut at `part`.
pub fn plan(size: u64, part: u64) -> Vec<u64> {
    if size == 0 || part == 0 {
        return Vec::new();
    }
    let full = size / part;
    let mut sizes = vec![part; usize::try_from(full).unwrap_or(0)];
    if !size.is_multiple_of(part) {
        sizes.push(size % part);
    }
    sizes
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1024 * 1024 * 1024;

    fn check_rules(size: u64) {
        let part = part_size(size).expect("uploadable");
        let sizes = plan(size, part);
        assert_eq!(sizes.iter().sum::<u64>(), size, "{size}");
        assert!(
            sizes.len() as u64 <= MAX_PARTS,
            "{size}: {} parts",
            sizes.len()
        );
        let (last, rest) = sizes.split_last().expect("at least one part");
        assert!(
            rest.iter().all(|&p| p == part),
            "all but the last the same size"
        );
        assert!(*last <= part && *last > 0);
        assert!((MIN_PART..=MAX_PART).contains(&part));
    }

    #[test]
    fn r2_rules_hold_for_every_size() {
        for size in [
            1,
            MIN_PART - 1,
            MIN_PART,
            DEFAULT_PART,
            DEFAULT_PART + 1,
            GIB,
            4 * GIB,
            4 * GIB + 7,
            80 * GIB,
            5 * 1024 * GIB,
        ] {
            check_rules(size);
        }
        assert_eq!(part_size(GIB), Some(DEFAULT_PART));
        assert_eq!(part_size(4 * GIB), Some(DEFAULT_PART));
        assert!(part_size(100 * GIB).is_some_and(|p| p > DEFAULT_PART));
        assert_eq!(part_size(MAX_PART * MAX_PARTS + 1), None);
    }

    #[test]
    fn plan_cuts_equal_parts() {
        assert_eq!(plan(20, 8), vec![8, 8, 4]);
        assert_eq!(plan(16, 8), vec![8, 8]);
        assert!(plan(0, 8).is_empty());
    }
}
