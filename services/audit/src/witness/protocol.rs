//! The `add-checkpoint` request body of c2sp.org/tlog-witness:
//!
//! ```text
//! old <size>
//! <base64 consistency proof hash>   (zero to 63 lines)
//!
//! <checkpoint note>
//! ```

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::merkle::Hash;

/// The most consistency proof lines a request may carry.
pub const MAX_PROOF_LINES: usize = 63;

/// An `add-checkpoint` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddCheckpoint {
    /// The size of the checkpoint the client believes the witness last cosigned (0: none).
    pub old: u64,
    /// The consistency proof from `old` to the checkpoint's size (empty when `old` is 0).
    pub proof: Vec<Hash>,
    /// The signed checkpoint note.
    pub checkpoint: String,
}

impl AddCheckpoint {
    /// The request body.
    pub fn to_body(&self) -> String {
        let mut body = format!("old {}\n", self.old);
        for hash in &self.proof {
            body.push_str(&STANDARD.encode(hash));
            body.push('\n');
        }
        body.push('\n');
        body.push_str(&self.checkpoint);
        body
    }

    /// Reads a request body; the error says which line is wrong.
    pub fn parse(body: &str) -> Result<Self, String> {
        let (first, mut rest) = body.split_once('\n').ok_or("the body has no `old` line")?;
        let old = first.strip_prefix("old ").ok_or("the first line is not `old <size>`")?;
        if old.is_empty() || !old.bytes().all(|b| b.is_ascii_digit()) || (old.len() > 1 && old.starts_with('0')) {
            return Err(format!("the old size `{old}` is not a decimal without leading zeroes"));
        }
        let old: u64 = old.parse().map_err(|_| format!("the old size `{old}` is too large"))?;
        let mut proof = Vec::new();
        loop {
            let (line, after) = rest.split_once('\n').ok_or("no blank line before the checkpoint")?;
            rest = after;
            if line.is_empty() {
                break;
            }
            if proof.len() == MAX_PROOF_LINES {
                return Err(format!("more than {MAX_PROOF_LINES} consistency proof lines"));
            }
            let hash = STANDARD
                .decode(line)
                .ok()
                .and_then(|b| Hash::try_from(b).ok())
                .ok_or_else(|| format!("proof line `{line}` is not 32 bytes of base64"))?;
            proof.push(hash);
        }
        Ok(Self { old, proof, checkpoint: rest.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_example_request_parses_and_formats_back() {
        let body = "old 20852014\nPlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\njrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=\n5+pKlUdi2LeF/BcMHBn+Ku6yhPGNCswZZD1X/6QgPd8=\n/6WVhPs2CwSsb5rYBH5cjHV/wSmA79abXAwhXw3Kj/0=\n\nexample.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n\u{2014} example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n";
        let request = AddCheckpoint::parse(body).expect("the spec's example parses");
        assert_eq!(request.old, 20_852_014);
        assert_eq!(request.proof.len(), 4);
        assert!(request.checkpoint.starts_with("example.com/behind-the-sofa\n20852163\n"));
        assert_eq!(request.to_body(), body);
    }

    #[test]
    fn malformed_requests_are_refused() {
        for body in ["", "old 01\n\nx", "old -1\n\nx", "new 1\n\nx", "old 1\nnot base64\n\nx", "old 1\nAAAA\n"] {
            assert!(AddCheckpoint::parse(body).is_err(), "{body:?}");
        }
        let long = format!("old 1\n{}\nx", format!("{}\n", STANDARD.encode([0u8; 32])).repeat(64));
        assert!(AddCheckpoint::parse(&long).is_err());
    }
}
