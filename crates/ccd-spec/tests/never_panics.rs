//! Whatever the bytes, validation answers with a spec or with located problems.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly on the first surprise

use proptest::prelude::*;

const EXAMPLE: &str = include_str!("../../../specs/examples/notes.yaml");

fn check(bytes: &[u8]) {
    if let Err(problems) = ccd_spec::parse_bytes(bytes) {
        assert!(!problems.0.is_empty());
        let lines = bytes.iter().filter(|b| **b == b'\n').count() + 1;
        for p in &problems.0 {
            assert!(
                p.at.line >= 1 && p.at.line <= lines,
                "{p} is outside the file"
            );
            assert!(p.at.column >= 1, "{p}");
            assert!(!p.message.is_empty());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        check(&bytes);
    }

    #[test]
    fn yaml_shaped_noise(text in "[-a-z:{}\\[\\]\"'&*!|>#%@ ,\n0-9.]{0,300}") {
        check(text.as_bytes());
    }

    /// A real spec with a few bytes changed, inserted or removed: the mistakes users make.
    #[test]
    fn mutated_example(edits in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..3, any::<u8>()), 1..6)) {
        let mut bytes = EXAMPLE.as_bytes().to_vec();
        for (at, op, byte) in edits {
            let i = at.index(bytes.len() + 1);
            match op {
                0 if i < bytes.len() => bytes[i] = byte,
                1 => bytes.insert(i, byte),
                _ if i < bytes.len() => { bytes.remove(i); }
                _ => {}
            }
        }
        check(&bytes);
    }
}

#[test]
fn deep_nesting_and_huge_input_are_refused_not_crashed() {
    check(
        &b"a: "
            .iter()
            .chain([b'['; 100_000].iter())
            .copied()
            .collect::<Vec<_>>(),
    );
    check("{a: ".repeat(50_000).as_bytes());
    check(&vec![b'#'; 2 << 20]);
    check("- ".repeat(100_000).as_bytes());
}
