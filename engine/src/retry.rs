//! Delays between attempts: exponential, linear or fixed backoff, capped, with optional full
//! jitter (the delay is drawn uniformly from `[0, delay]`, as AWS's "full jitter").

use std::time::Duration;

use crate::spec::{Backoff, RetryPolicy};

/// The delay before attempt `next_attempt` (2 for the first retry), without jitter.
pub fn base_delay(policy: &RetryPolicy, next_attempt: u32) -> Duration {
    let retry = next_attempt.saturating_sub(1).max(1);
    let delay = match policy.backoff {
        Backoff::Fixed => policy.initial_delay,
        Backoff::Linear => policy.initial_delay.saturating_mul(retry),
        Backoff::Exponential => {
            let factor = 2u32.saturating_pow(retry.saturating_sub(1).min(31));
            policy.initial_delay.saturating_mul(factor)
        }
    };
    delay.min(policy.max_delay)
}

/// The delay before attempt `next_attempt`, with jitter when the policy asks for it.
pub fn delay(policy: &RetryPolicy, next_attempt: u32) -> Duration {
    let base = base_delay(policy, next_attempt);
    if policy.jitter && !base.is_zero() {
        let nanos = base.as_nanos().min(u64::MAX as u128) as u64;
        Duration::from_nanos(rand::random_range(0..=nanos))
    } else {
        base
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(backoff: Backoff, jitter: bool) -> RetryPolicy {
        RetryPolicy {
            max_attempts: 10,
            backoff,
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(5),
            jitter,
        }
    }

    #[test]
    fn grows_and_caps() {
        let secs = |b, n| base_delay(&policy(b, false), n).as_secs();
        assert_eq!(
            (2..=6)
                .map(|n| secs(Backoff::Exponential, n))
                .collect::<Vec<_>>(),
            vec![1, 2, 4, 5, 5]
        );
        assert_eq!(
            (2..=7)
                .map(|n| secs(Backoff::Linear, n))
                .collect::<Vec<_>>(),
            vec![1, 2, 3, 4, 5, 5]
        );
        assert_eq!(
            (2..=4).map(|n| secs(Backoff::Fixed, n)).collect::<Vec<_>>(),
            vec![1, 1, 1]
        );
        assert_eq!(
            base_delay(&policy(Backoff::Exponential, false), 200),
            Duration::from_secs(5)
        );
    }

    #[test]
    fn jitter_stays_within_the_base_delay() {
        let p = policy(Backoff::Exponential, true);
        let samples: Vec<Duration> = (0..200).map(|_| delay(&p, 4)).collect();
        assert!(samples.iter().all(|d| *d <= Duration::from_secs(4)));
        assert!(
            samples.iter().any(|d| *d != samples[0]),
            "jitter varies the delay"
        );
    }
}
