//! The work budget: every password-based key derivation is priced from its parameters and paid
//! for *before* it runs, so a file that asks for 2^31 iterations (or a thousand bags with a
//! million each) is refused in microseconds instead of burning minutes of CPU.

use crate::pki::refusal::{Code, Refusal};

use super::hash::HashAlg;
use super::HINT_REEXPORT;

/// Which key-derivation function a cost is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KdfKind {
    /// RFC 7292 Appendix B.
    Pkcs12(HashAlg),
    /// PBKDF2 with HMAC over the hash.
    Pbkdf2(HashAlg),
    /// scrypt (RFC 7914).
    Scrypt,
}

impl KdfKind {
    fn describe(self) -> String {
        match self {
            KdfKind::Pkcs12(h) => format!("PKCS#12 key-derivation ({})", h.name()),
            KdfKind::Pbkdf2(h) => format!("PBKDF2-HMAC-{}", h.name()),
            KdfKind::Scrypt => "scrypt".to_string(),
        }
    }
}

/// Work units per iteration and per output block, measured on the reference machine (AMD EPYC
/// with SHA extensions, `opt-level = 2`): one unit is about one nanosecond there. See
/// [`WorkBudget`].
const fn iteration_weight(kind: KdfKind) -> u64 {
    match kind {
        KdfKind::Pkcs12(HashAlg::Sha1) => 90,
        KdfKind::Pkcs12(HashAlg::Sha224) | KdfKind::Pkcs12(HashAlg::Sha256) => 100,
        KdfKind::Pkcs12(HashAlg::Sha384) | KdfKind::Pkcs12(HashAlg::Sha512) => 240,
        KdfKind::Pbkdf2(HashAlg::Sha1) => 150,
        KdfKind::Pbkdf2(HashAlg::Sha224) | KdfKind::Pbkdf2(HashAlg::Sha256) => 150,
        KdfKind::Pbkdf2(HashAlg::Sha384) | KdfKind::Pbkdf2(HashAlg::Sha512) => 420,
        // per unit of N * r * p
        KdfKind::Scrypt => 400,
    }
}

/// The price of one key derivation, computed from its parameters before it runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfCost {
    pub kind: KdfKind,
    /// The iteration count the file asks for (scrypt: N).
    pub iterations: u64,
    /// Output blocks of the hash (PKCS#12 KDF, PBKDF2); scrypt: r.
    pub blocks: u64,
    /// scrypt: p; otherwise 1.
    pub parallel: u64,
    /// Work units (about nanoseconds on the reference machine; see [`WorkBudget`]).
    pub units: u64,
}

impl KdfCost {
    /// PKCS#12 KDF producing `out_len` bytes.
    pub fn pkcs12(hash: HashAlg, iterations: u64, out_len: usize) -> KdfCost {
        let blocks = out_len.div_ceil(hash.output_len()).max(1) as u64;
        Self::iterated(KdfKind::Pkcs12(hash), iterations, blocks)
    }

    /// PBKDF2-HMAC producing `out_len` bytes.
    pub fn pbkdf2(prf: HashAlg, iterations: u64, out_len: usize) -> KdfCost {
        let blocks = out_len.div_ceil(prf.output_len()).max(1) as u64;
        Self::iterated(KdfKind::Pbkdf2(prf), iterations, blocks)
    }

    /// scrypt with cost N, block size r, parallelization p (work is proportional to N*r*p).
    pub fn scrypt(n: u64, r: u64, p: u64) -> KdfCost {
        let units = n.saturating_mul(r).saturating_mul(p).saturating_mul(iteration_weight(KdfKind::Scrypt));
        KdfCost { kind: KdfKind::Scrypt, iterations: n, blocks: r, parallel: p, units }
    }

    fn iterated(kind: KdfKind, iterations: u64, blocks: u64) -> KdfCost {
        let units = iterations.max(1).saturating_mul(blocks).saturating_mul(iteration_weight(kind));
        KdfCost { kind, iterations, blocks, parallel: 1, units }
    }

    /// The largest iteration count (scrypt: N) this derivation could have within `units`.
    fn max_iterations_within(&self, units: u64) -> u64 {
        let per = iteration_weight(self.kind).saturating_mul(self.blocks.max(1)).saturating_mul(self.parallel.max(1));
        units / per.max(1)
    }
}

/// How much password-hashing work certgate spends on one input before giving up.
///
/// Costs are in work units of about one nanosecond of CPU on the reference machine (2-core AMD
/// EPYC with SHA extensions, `opt-level = 2`); see [`KdfCost`]. For the PKCS#12 KDF and PBKDF2
/// a derivation costs `iterations x output blocks x weight`; the weights, measured there, are
/// 90 (PKCS#12 KDF, SHA-1), 100 (SHA-224/256), 240 (SHA-384/512) and 150 (PBKDF2-HMAC-SHA-1,
/// -SHA-224, -SHA-256), 420 (-SHA-384/512); scrypt costs `N x r x p x 400`. In a build of
/// certgate at `opt-level = 0` the PKCS#12 KDF and PBMAC1's PBKDF2 run about 10x slower
/// (their generic hash code is instantiated in certgate, see `kdf.rs`); pkcs5's PBKDF2 and
/// scrypt are unaffected.
///
/// Every KDF entry point (`kdf.rs`, and PBES2 in `schemes.rs`) spends from the budget before
/// computing anything, and refuses (unsupported-algorithm) when one derivation is over the
/// per-call cap or the total left is not enough. [`WorkBudget::precheck`] lets a reader price everything it can already
/// see (a whole SafeContents, the MAC and all encrypted parts) and refuse before spending.
#[derive(Clone, Debug)]
pub struct WorkBudget {
    per_call: u64,
    total: u64,
    spent: u64,
    derivations: u32,
}

impl WorkBudget {
    /// Default cap for one derivation: about 1 s (6.6 million PBKDF2-HMAC-SHA256 iterations
    /// for an AES-256 key, 11.1 million PKCS#12-KDF SHA-1 iterations for a SHA-1 MAC key,
    /// 5.5 million for a 3DES key).
    pub const DEFAULT_PER_CALL: u64 = 1_000_000_000;
    /// Default total for one input: about 2 s.
    pub const DEFAULT_TOTAL: u64 = 2_000_000_000;

    /// A budget with the default limits. Under `cargo fuzz` (`cfg(fuzzing)`) they are 1/200 of
    /// that (still enough for the fixtures' files), so that inputs asking for a second of
    /// hashing do not slow the fuzzer down to one input a second.
    pub fn new() -> Self {
        #[cfg(fuzzing)]
        return Self::with_limits(Self::DEFAULT_PER_CALL / 200, Self::DEFAULT_TOTAL / 200);
        #[cfg(not(fuzzing))]
        Self::with_limits(Self::DEFAULT_PER_CALL, Self::DEFAULT_TOTAL)
    }

    /// A budget with explicit limits (work units, see above).
    pub fn with_limits(per_call: u64, total: u64) -> Self {
        WorkBudget { per_call, total, spent: 0, derivations: 0 }
    }

    /// Units still available.
    pub fn remaining(&self) -> u64 {
        self.total.saturating_sub(self.spent)
    }

    /// Units spent so far.
    #[allow(dead_code)] // diagnostics and tests
    pub fn spent(&self) -> u64 {
        self.spent
    }

    /// Key derivations paid for so far.
    #[allow(dead_code)] // diagnostics and tests
    pub fn derivations(&self) -> u32 {
        self.derivations
    }

    /// Refuse if this one derivation is over the per-call cap.
    pub fn check_one(&self, cost: &KdfCost) -> Result<(), Refusal> {
        if cost.units <= self.per_call {
            return Ok(());
        }
        let message = match cost.kind {
            KdfKind::Scrypt => format!(
                "the file asks for scrypt with N={}, r={}, p={}; certgate accepts at most \
                 N*r*p = {} (it would take {} to open)",
                cost.iterations,
                cost.blocks,
                cost.parallel,
                self.per_call / iteration_weight(KdfKind::Scrypt),
                estimate(cost.units)
            ),
            kind => format!(
                "the file asks for {} {} iterations; certgate accepts at most {} \
                 (it would take {} to open)",
                cost.iterations,
                kind.describe(),
                cost.max_iterations_within(self.per_call),
                estimate(cost.units)
            ),
        };
        Err(Refusal::new(Code::UnsupportedAlgorithm, message, HINT_REEXPORT))
    }

    /// Refuse (without spending) if these derivations, together, do not fit in what is left,
    /// or if one of them is over the per-call cap.
    pub fn precheck<'c>(&self, costs: impl IntoIterator<Item = &'c KdfCost>) -> Result<(), Refusal> {
        let mut sum = 0u64;
        let mut count = 0u64;
        let mut iterations = 0u64;
        for cost in costs {
            self.check_one(cost)?;
            sum = sum.saturating_add(cost.units);
            iterations = iterations.saturating_add(cost.iterations);
            count += 1;
        }
        if sum <= self.remaining() {
            return Ok(());
        }
        Err(self.total_refusal(count, iterations, sum))
    }

    /// Whether these derivations would pass [`WorkBudget::precheck`] (for optional attempts,
    /// e.g. a second password encoding, that are skipped rather than refused).
    pub fn affords<'c>(&self, costs: impl IntoIterator<Item = &'c KdfCost>) -> bool {
        self.precheck(costs).is_ok()
    }

    /// Pay for one derivation, or refuse.
    pub fn spend(&mut self, cost: &KdfCost) -> Result<(), Refusal> {
        self.check_one(cost)?;
        if cost.units > self.remaining() {
            return Err(self.total_refusal(
                u64::from(self.derivations) + 1,
                cost.iterations,
                self.spent.saturating_add(cost.units),
            ));
        }
        self.spent += cost.units;
        self.derivations = self.derivations.saturating_add(1);
        Ok(())
    }

    fn total_refusal(&self, count: u64, iterations: u64, units: u64) -> Refusal {
        Refusal::new(
            Code::UnsupportedAlgorithm,
            format!(
                "the file asks for {count} password-based key derivations ({iterations} \
                 iterations in all); certgate accepts {} of such work per file (it would \
                 take {} to open)",
                estimate(self.total),
                estimate(units)
            ),
            HINT_REEXPORT,
        )
    }
}

impl Default for WorkBudget {
    fn default() -> Self {
        Self::new()
    }
}

/// Human estimate of a number of work units (about nanoseconds).
fn estimate(units: u64) -> String {
    let secs = units / 1_000_000_000;
    match secs {
        0..=9 => format!("about {:.1} seconds", units as f64 / 1e9),
        10..=119 => format!("about {secs} seconds"),
        120..=7_199 => format!("about {} minutes", secs / 60),
        7_200..=172_799 => format!("about {} hours", secs / 3600),
        _ => format!("about {} days", secs / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_affordable_derivations_run_out_of_the_total() {
        let mut budget = WorkBudget::with_limits(1000, 2500);
        let one =
            KdfCost { kind: KdfKind::Pbkdf2(HashAlg::Sha256), iterations: 1, blocks: 1, parallel: 1, units: 1000 };
        budget.spend(&one).unwrap();
        budget.spend(&one).unwrap();
        assert_eq!(budget.spend(&one).unwrap_err().code, Code::UnsupportedAlgorithm);
        assert!(budget.precheck(&[one, one, one]).is_err());
        assert_eq!(budget.spent(), 2000);
        assert_eq!(budget.derivations(), 2);
    }

    #[test]
    fn pbkdf2_budget_message() {
        let budget = WorkBudget::new();
        let err = budget.check_one(&KdfCost::pbkdf2(HashAlg::Sha256, 50_000_000, 32)).unwrap_err();
        assert!(
            err.message
                .starts_with("the file asks for 50000000 PBKDF2-HMAC-SHA-256 iterations; certgate accepts at most "),
            "{}",
            err.message
        );
    }
}
