//! The Internet checksum (RFC 1071), used for the IPv4 header and the TCP segment.

/// The sum of `bytes` as 16-bit words, not yet folded. The sums of the parts of a checksummed
/// whole (pseudo-header, header, payload; each part but the last of even length) are added
/// together and then folded once, with [`fold`] or [`verifies`]. An odd last byte is padded with
/// a zero, as the pseudo-header rules say.
///
/// The one's-complement sum comes out the same in either byte order once its two bytes are
/// swapped back (RFC 1071 §2(B)), so the words are read in the machine's own order, 32 bits at
/// a time into a u64 (which cannot overflow below 2^32 words): a loop the compiler turns into
/// vector instructions. [`fold`] swaps the bytes back.
// Inlined: most calls sum a few bytes of known length (addresses, a 16-bit word), which the
// compiler then sums without a loop; as calls, a segment's sums cost ~17 instructions more.
#[inline(always)]
pub(super) fn sum(bytes: &[u8]) -> u64 {
    let (words, rest) = bytes.as_chunks::<4>();
    let acc: u64 = words.iter().map(|w| u64::from(u32::from_ne_bytes(*w))).sum();
    // The last 0–3 bytes, zero-padded, read byte by byte (a slice copy of that size is a call).
    let byte = |i: usize| rest.get(i).copied().unwrap_or(0);
    acc + u64::from(u32::from_ne_bytes([byte(0), byte(1), byte(2), 0]))
}

/// A 16-bit field, given by its value, as the [`sum`] of its two bytes in network order.
pub(super) fn word(value: u16) -> u64 {
    sum(&value.to_be_bytes())
}

/// Folds a [`sum`] into 16 bits with end-around carries: the one's-complement sum, in network
/// order (the value a checksum field holds, complemented).
pub(super) fn fold(acc: u64) -> u16 {
    // Four fixed rounds instead of a loop: 64 → 33 → 18 → 17 → 16 bits.
    let acc = (acc & 0xffff_ffff) + (acc >> 32);
    let acc = (acc & 0xffff) + (acc >> 16);
    let acc = (acc & 0xffff) + (acc >> 16);
    let acc = (acc & 0xffff) + (acc >> 16);
    u16::from_be_bytes((acc as u16).to_ne_bytes())
}

/// True when data that includes its own checksum field sums to all ones (the receiver's test,
/// as the kernel's `csum_fold(...) == 0`).
pub(super) fn verifies(acc: u64) -> bool {
    fold(acc) == 0xffff
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: 0001 f203 f4f5 f6f7 sums to ddf2 (folded).
        assert_eq!(
            fold(sum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7])),
            0xddf2
        );
    }

    /// The folding of a sum of big-endian 16-bit words, the slow way.
    fn naive_fold(mut acc: u64) -> u16 {
        while acc >> 16 != 0 {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc as u16
    }

    #[test]
    fn fold_carries_around_from_any_width() {
        // Sums of one word, in the machine's order, of any width.
        for acc in [0, 0xffff, 0x1_0000, 0x1_ffff, 0x2_fffe, 0xffff_ffff, 0x1_ffff_fffe, u64::MAX, u64::MAX - 1, 0x8000_0000_0000_0000] {
            let swapped = |v: u16| u16::from_be_bytes(v.to_ne_bytes());
            assert_eq!(fold(acc), swapped(naive_fold(acc)), "{acc:#x}");
        }
    }

    #[test]
    fn odd_lengths_and_chunk_boundaries_match_a_naive_sum() {
        let data: Vec<u8> = (0..300u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let naive = |bytes: &[u8]| -> u64 {
            bytes.chunks(2).map(|p| u64::from(u16::from_be_bytes([p[0], p.get(1).copied().unwrap_or(0)]))).sum()
        };
        for len in 0..data.len() {
            assert_eq!(fold(sum(&data[..len])), naive_fold(naive(&data[..len])), "len {len}");
            // Parts of even length add up to the whole, whatever the last part's length.
            let cut = (len / 3) & !1;
            assert_eq!(fold(sum(&data[..cut]) + sum(&data[cut..len])), naive_fold(naive(&data[..len])), "len {len} cut at {cut}");
        }
    }

    #[test]
    fn a_word_sums_like_its_bytes() {
        for value in [0, 1, 0x00ff, 0xff00, 0x1234, 0xfffe, 0xffff] {
            assert_eq!(fold(word(value)), value, "{value:#06x}");
        }
    }
}
