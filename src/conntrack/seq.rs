//! Sequence-number arithmetic modulo 2^32, as the kernel's `before()` / `after()`.
//!
//! These are deliberately free functions rather than a modular `PartialOrd`: the relation is not
//! transitive, and the window checks read best when they look like the kernel's comparisons.

/// `a` comes strictly before `b` in sequence space.
#[inline]
pub fn before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// `a` comes strictly after `b` in sequence space.
#[inline]
pub fn after(a: u32, b: u32) -> bool {
    before(b, a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ordinary_numbers() {
        assert!(before(1, 2));
        assert!(!before(2, 2));
        assert!(after(3, 2));
        assert!(!after(2, 2));
    }

    #[test]
    fn wraparound() {
        assert!(before(u32::MAX, 0));
        assert!(after(5, u32::MAX - 5));
        // Half the space away is "before" in both directions' sense of the sign bit.
        assert!(before(0, 0x8000_0000));
    }

    proptest! {
        #[test]
        fn after_is_before_swapped(a: u32, b: u32) {
            prop_assert_eq!(after(a, b), before(b, a));
        }

        #[test]
        fn at_most_one_holds(a: u32, b: u32) {
            prop_assert!(!(before(a, b) && after(a, b)));
            prop_assert_eq!(a == b, !before(a, b) && !after(a, b));
        }

        #[test]
        fn small_steps_are_ordered(a: u32, d in 1u32..0x7fff_ffff) {
            prop_assert!(before(a, a.wrapping_add(d)));
            prop_assert!(after(a.wrapping_add(d), a));
        }
    }
}
