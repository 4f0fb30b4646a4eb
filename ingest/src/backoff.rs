//! Reconnect delays: exponential growth, a ceiling, jitter, and a reset once a connection proved stable.
//!
//! The policy is pure: [`BackoffPolicy::delay`] maps an attempt number and a uniform random sample to a
//! delay, so it is tested without clocks or sockets. [`Backoff`] holds the attempt counter.

use std::time::Duration;

use serde::Deserialize;

/// How reconnect delays grow. Durations in the config file are humantime strings (`"500ms"`, `"1m"`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackoffPolicy {
    /// Delay before the first reconnect attempt.
    #[serde(with = "crate::config::duration")]
    pub initial: Duration,
    /// Upper bound for the delay, whatever the attempt number.
    #[serde(with = "crate::config::duration")]
    pub max: Duration,
    /// Growth factor between consecutive attempts (>= 1).
    pub multiplier: f64,
    /// Fraction of the delay that is randomised, in `[0, 1]`: the delay is drawn from
    /// `[base * (1 - jitter), base]`. 0 disables jitter.
    pub jitter: f64,
    /// A connection that stayed up at least this long resets the attempt counter.
    #[serde(with = "crate::config::duration")]
    pub reset_after: Duration,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(60),
            multiplier: 2.0,
            jitter: 0.5,
            reset_after: Duration::from_secs(30),
        }
    }
}

/// A backoff policy with values that make no sense.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BackoffPolicyError {
    /// The multiplier would shrink the delay or is not a number.
    #[error("backoff multiplier must be a finite number >= 1, got {0}")]
    Multiplier(f64),
    /// The jitter fraction is outside `[0, 1]`.
    #[error("backoff jitter must be between 0 and 1, got {0}")]
    Jitter(f64),
    /// The initial delay exceeds the ceiling.
    #[error("backoff initial delay {initial:?} exceeds the maximum {max:?}")]
    InitialAboveMax {
        /// Configured initial delay.
        initial: Duration,
        /// Configured ceiling.
        max: Duration,
    },
}

impl BackoffPolicy {
    /// Checks the policy's values.
    pub fn validate(&self) -> Result<(), BackoffPolicyError> {
        if !self.multiplier.is_finite() || self.multiplier < 1.0 {
            return Err(BackoffPolicyError::Multiplier(self.multiplier));
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(BackoffPolicyError::Jitter(self.jitter));
        }
        if self.initial > self.max {
            return Err(BackoffPolicyError::InitialAboveMax {
                initial: self.initial,
                max: self.max,
            });
        }
        Ok(())
    }

    /// The delay before reconnect attempt `attempt` (0-based), given `unit` drawn uniformly from `[0, 1)`.
    ///
    /// `base = min(max, initial * multiplier^attempt)`, then `delay = base * (1 - jitter * unit)`.
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let exponent = i32::try_from(attempt).unwrap_or(i32::MAX);
        let max = self.max.as_secs_f64();
        let base = (self.initial.as_secs_f64() * self.multiplier.powi(exponent)).min(max);
        let factor = 1.0 - self.jitter * unit.clamp(0.0, 1.0);
        Duration::from_secs_f64((base * factor).clamp(0.0, max))
    }
}

/// Attempt counter over a [`BackoffPolicy`].
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: BackoffPolicy,
    attempt: u32,
}

impl Backoff {
    /// A counter at attempt 0.
    pub fn new(policy: BackoffPolicy) -> Self {
        Self { policy, attempt: 0 }
    }

    /// The delay for the current attempt, then moves to the next attempt.
    pub fn next_delay(&mut self, unit: f64) -> Duration {
        let delay = self.policy.delay(self.attempt, unit);
        self.attempt = self.attempt.saturating_add(1);
        delay
    }

    /// Records how long the last connection stayed up; a stable one resets the counter.
    pub fn connection_ended(&mut self, uptime: Duration) {
        if uptime >= self.policy.reset_after {
            self.attempt = 0;
        }
    }

    /// Number of attempts since the last reset.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> BackoffPolicy {
        BackoffPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(2),
            multiplier: 2.0,
            jitter: 0.5,
            reset_after: Duration::from_secs(10),
        }
    }

    #[test]
    fn grows_exponentially_without_jitter_sample() {
        let p = policy();
        let delays: Vec<_> = (0..6).map(|a| p.delay(a, 0.0)).collect();
        let ms: Vec<u128> = delays.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, vec![100, 200, 400, 800, 1600, 2000]);
    }

    #[test]
    fn capped_at_max_even_for_huge_attempts() {
        let p = policy();
        assert_eq!(p.delay(u32::MAX, 0.0), Duration::from_secs(2));
        assert_eq!(p.delay(1000, 0.999), Duration::from_secs_f64(2.0 * (1.0 - 0.5 * 0.999)));
    }

    #[test]
    fn jitter_stays_within_band() {
        let p = policy();
        for attempt in 0..8 {
            let hi = p.delay(attempt, 0.0);
            for i in 0..100 {
                let d = p.delay(attempt, f64::from(i) / 100.0);
                assert!(d <= hi, "{d:?} > {hi:?}");
                assert!(d >= hi.mul_f64(0.5), "{d:?} < half of {hi:?}");
            }
        }
        assert!(p.delay(3, 0.9) < p.delay(3, 0.1));
    }

    #[test]
    fn counter_advances_and_resets_only_after_stable_connection() {
        let mut b = Backoff::new(BackoffPolicy { jitter: 0.0, ..policy() });
        assert_eq!(b.next_delay(0.3), Duration::from_millis(100));
        assert_eq!(b.next_delay(0.3), Duration::from_millis(200));
        b.connection_ended(Duration::from_secs(9));
        assert_eq!(b.next_delay(0.3), Duration::from_millis(400));
        assert_eq!(b.attempt(), 3);
        b.connection_ended(Duration::from_secs(10));
        assert_eq!(b.attempt(), 0);
        assert_eq!(b.next_delay(0.3), Duration::from_millis(100));
    }

    #[test]
    fn validation_rejects_nonsense() {
        let ok = policy();
        assert_eq!(ok.validate(), Ok(()));
        let m = BackoffPolicy { multiplier: 0.5, ..policy() };
        assert_eq!(m.validate(), Err(BackoffPolicyError::Multiplier(0.5)));
        let j = BackoffPolicy { jitter: 1.5, ..policy() };
        assert_eq!(j.validate(), Err(BackoffPolicyError::Jitter(1.5)));
        let i = BackoffPolicy { initial: Duration::from_secs(5), ..policy() };
        assert!(matches!(i.validate(), Err(BackoffPolicyError::InitialAboveMax { .. })));
    }
}
