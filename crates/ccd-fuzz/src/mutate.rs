//! A small seeded mutator, enough to shake a parser on the stable toolchain:
//! byte flips, inserts, deletes, repeats, splices of two inputs and tokens
//! of the input's language. libFuzzer does this with coverage feedback in
//! `make fuzz`; here the point is the same inputs on every run.

/// xorshift64*: deterministic, no dependency.
#[derive(Debug, Clone)]
pub struct Mutator {
    state: u64,
    dictionary: &'static [&'static [u8]],
}

impl Mutator {
    pub fn new(seed: u64, dictionary: &'static [&'static [u8]]) -> Self {
        Mutator {
            state: seed.max(1),
            dictionary,
        }
    }

    fn next(&mut self) -> u64 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            usize::try_from(self.next() % n as u64).unwrap_or(0)
        }
    }

    /// A corpus input with one to eight edits.
    pub fn next_input(&mut self, seeds: &[Vec<u8>]) -> Vec<u8> {
        let mut input = match seeds.len() {
            0 => Vec::new(),
            n => seeds[self.below(n)].clone(),
        };
        for _ in 0..=self.below(8) {
            self.edit(&mut input, seeds);
        }
        input
    }

    fn edit(&mut self, input: &mut Vec<u8>, seeds: &[Vec<u8>]) {
        let at = self.below(input.len() + 1);
        match self.below(7) {
            0 if at < input.len() => input[at] ^= 1 << self.below(8),
            1 => {
                let byte = u8::try_from(self.below(256)).unwrap_or(0);
                input.insert(at, byte);
            }
            2 if at < input.len() => {
                let end = (at + 1 + self.below(16)).min(input.len());
                input.drain(at..end);
            }
            3 if at < input.len() => {
                // Repeat a slice: the shape of "100,000 keys" and deep nesting.
                let end = (at + 1 + self.below(32)).min(input.len());
                let piece = input[at..end].to_vec();
                for _ in 0..=self.below(64) {
                    input.splice(at..at, piece.iter().copied());
                }
            }
            4 if !seeds.is_empty() => {
                let other = &seeds[self.below(seeds.len())];
                let from = self.below(other.len());
                let end = (from + self.below(64)).min(other.len());
                input.splice(at..at, other[from..end].iter().copied());
            }
            5 | 6 if !self.dictionary.is_empty() => {
                let token = self.dictionary[self.below(self.dictionary.len())];
                input.splice(at..at, token.iter().copied());
            }
            _ => {}
        }
        input.truncate(1 << 20);
    }
}
