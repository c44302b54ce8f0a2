//! Caller-provided randomness: branch ids, tags and cnonces come from a [`Random`] the caller
//! supplies, so the protocol core reads no global state and tests are deterministic.
//!
//! RFC 3261 §8.1.1.7 wants branches unique across space and time, §19.3 wants tags with at
//! least 32 bits of randomness, and RFC 7616 §3.4 wants an unguessable cnonce: a runtime passes
//! a cryptographically secure generator (for example one seeded from the OS).

/// A source of random bytes.
///
/// Any `FnMut(&mut [u8])` is one, so a test can pass a counter closure.
pub trait Random {
    /// Fills `dest` with random bytes.
    fn fill_bytes(&mut self, dest: &mut [u8]);
}

impl<F: FnMut(&mut [u8])> Random for F {
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self(dest);
    }
}

/// The characters of generated tokens: lower-case letters and digits are SIP tokens (§25.1)
/// and survive case-insensitive handling by careless peers.
pub const TOKEN_ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// Draws that a broken source (one returning only bytes of 252 and up) gets before the token
/// falls back to a biased mapping instead of looping forever.
const MAX_DRAWS: usize = 64;

/// A random token of `len` characters from [`TOKEN_ALPHABET`] (about 5.17 bits each).
///
/// Each byte `b < 252` gives `TOKEN_ALPHABET[b % 36]`; larger bytes are redrawn so that every
/// character is equally likely. Exactly as many bytes are asked for as characters are still
/// missing, so a scripted source in a test maps byte `i` to character `TOKEN_ALPHABET[i]`.
pub fn token(random: &mut impl Random, len: usize) -> String {
    let mut out = String::with_capacity(len);
    let mut buf = vec![0u8; len];
    for draw in 0.. {
        let missing = len - out.len();
        if missing == 0 {
            break;
        }
        let chunk = buf.get_mut(..missing).unwrap_or_default();
        random.fill_bytes(chunk);
        for &byte in chunk.iter() {
            if byte < 252 || draw >= MAX_DRAWS {
                out.push(char::from(TOKEN_ALPHABET[usize::from(byte % 36)]));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripted_bytes_map_to_alphabet() {
        let mut script = [1u8, 22, 33].into_iter().chain(std::iter::repeat(35));
        let mut random =
            |dest: &mut [u8]| dest.iter_mut().for_each(|b| *b = script.next().unwrap());
        assert_eq!(token(&mut random, 5), "1mxzz");
    }

    #[test]
    fn unbiased_draw_skips_high_bytes_and_a_broken_source_still_ends() {
        let mut script = [255u8, 0, 253, 1].into_iter();
        let mut random = |dest: &mut [u8]| {
            dest.iter_mut()
                .for_each(|b| *b = script.next().unwrap_or(2));
        };
        assert_eq!(token(&mut random, 2), "01");
        let mut broken = |dest: &mut [u8]| dest.fill(255);
        assert_eq!(token(&mut broken, 3).len(), 3);
    }
}
