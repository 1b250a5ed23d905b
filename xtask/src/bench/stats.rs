//! Medians, spreads and A/B alternation.

use anyhow::Result;
use serde::{Deserialize, Serialize};

/// Median and range of a set of samples.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

impl Spread {
    pub fn of(samples: &[f64]) -> Spread {
        let mut v: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = match n {
            0 => f64::NAN,
            _ if n % 2 == 1 => v[n / 2],
            _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        };
        Spread {
            median,
            min: v.first().copied().unwrap_or(f64::NAN),
            max: v.last().copied().unwrap_or(f64::NAN),
            n,
        }
    }
}

impl Spread {
    /// The same spread in other units.
    pub fn map(self, f: impl Fn(f64) -> f64) -> Spread {
        Spread {
            median: f(self.median),
            min: f(self.min),
            max: f(self.max),
            n: self.n,
        }
    }
}

/// One A/B comparison: both sides' samples in the order they were taken.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Paired {
    pub a: Vec<f64>,
    pub b: Vec<f64>,
}

/// The ratio of the two sides' medians, with the spread of the per-round
/// ratios (round i's A over round i's B).
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Ratio {
    pub value: f64,
    pub rounds: Spread,
    pub a: Spread,
    pub b: Spread,
}

impl Paired {
    pub fn ratio(&self) -> Ratio {
        let a = Spread::of(&self.a);
        let b = Spread::of(&self.b);
        let per_round: Vec<f64> = self.a.iter().zip(&self.b).map(|(x, y)| x / y).collect();
        Ratio {
            value: a.median / b.median,
            rounds: Spread::of(&per_round),
            a,
            b,
        }
    }
}

/// Runs `rounds` rounds of A and B, in the order A B, B A, A B, ... so that
/// a trend in the machine's load does not favour either side.
pub fn alternate(
    rounds: usize,
    mut a: impl FnMut(usize) -> Result<()>,
    mut b: impl FnMut(usize) -> Result<()>,
) -> Result<()> {
    for r in 0..rounds {
        if r % 2 == 0 {
            a(r)?;
            b(r)?;
        } else {
            b(r)?;
            a(r)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(Spread::of(&[3.0, 1.0, 2.0]).median, 2.0);
        let s = Spread::of(&[4.0, 1.0, 3.0, 2.0]);
        assert_eq!((s.median, s.min, s.max, s.n), (2.5, 1.0, 4.0, 4));
        assert!(Spread::of(&[]).median.is_nan());
    }

    #[test]
    fn ratio_uses_medians_and_per_round_spread() {
        let p = Paired {
            a: vec![11.0, 12.0, 30.0],
            b: vec![10.0, 10.0, 10.0],
        };
        let r = p.ratio();
        assert!((r.value - 1.2).abs() < 1e-9);
        assert!((r.rounds.min - 1.1).abs() < 1e-9);
        assert!((r.rounds.max - 3.0).abs() < 1e-9);
    }

    #[test]
    fn alternation_order_is_abba() {
        let log = std::cell::RefCell::new(String::new());
        alternate(
            3,
            |_| {
                log.borrow_mut().push('A');
                Ok(())
            },
            |_| {
                log.borrow_mut().push('B');
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(log.into_inner(), "ABBAAB");
    }
}
