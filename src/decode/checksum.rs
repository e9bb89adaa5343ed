//! The Internet checksum (RFC 1071), used for the IPv4 header and the TCP segment.

/// Sum of `bytes` read as big-endian 16-bit words, not yet folded. An odd last byte is padded
/// with a zero, as the pseudo-header rules say.
///
/// Adding 32-bit halves of 64-bit words into a u64 is the same one's-complement sum once folded
/// (RFC 1071 §2), and cannot overflow below 2^31 chunks — far above any IP datagram.
pub(super) fn sum(bytes: &[u8]) -> u64 {
    let (words, rest) = bytes.as_chunks::<8>();
    let mut acc: u64 = words
        .iter()
        .map(|w| {
            let w = u64::from_be_bytes(*w);
            (w >> 32) + (w & 0xffff_ffff)
        })
        .sum();
    // `rest` starts at an even offset, so its pairs are whole 16-bit words of the input.
    for pair in rest.chunks(2) {
        acc += u64::from(u16::from_be_bytes([
            pair[0],
            pair.get(1).copied().unwrap_or(0),
        ]));
    }
    acc
}

/// Folds a [`sum`] into 16 bits with end-around carries.
pub(super) fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
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

    #[test]
    fn odd_lengths_and_chunk_boundaries_match_a_naive_sum() {
        let data: Vec<u8> = (0..300u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        for len in 0..data.len() {
            let naive: u64 = data[..len]
                .chunks(2)
                .map(|p| u64::from(u16::from_be_bytes([p[0], p.get(1).copied().unwrap_or(0)])))
                .sum();
            assert_eq!(fold(sum(&data[..len])), fold(naive), "len {len}");
        }
    }
}
