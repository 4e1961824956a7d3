//! Quotas (`[quota]`): how many identifiers a prefix may hold, how many derived prefixes may lie
//! directly under it, and how many requests an administrator may make in a UTC day. They are the
//! national system's codes 603-605 (RC_REQUEST_LIMIT_DAILY, RC_REGISTER_COUNT_LIMIT,
//! RC_PREFIX_LIMIT) made real, and protocol-neutral: the two registry quotas are decided by
//! `rules::apply` inside the write transaction, from counts that transaction keeps (so two
//! concurrent creates cannot both pass, and a batch's earlier operations count for its later
//! ones); the daily count is asked for by each front end once it knows who is asking.
//!
//! A limit of 0 means none. A per-prefix override applies to that prefix and those below it, the
//! deepest override that sets a key winning; for the daily count an administrator belongs to
//! the prefix its identifier lies under (`0.NA/88.100.1` and `88.100.1/admin` to `88.100.1`).
//! The node's own principal ([`Admin::node`]: `idnode admin`, imports, the demo) has no quota.
//!
//! The daily counts live in memory only: they restart at a restart, and at 00:00 UTC. At most
//! [`MAX_TRACKED_ADMINS`] administrators are counted a day; a day that sees more lets the extra
//! ones through uncounted (with one warning), rather than refuse administrators the node never
//! counted or forget the counts of those it did.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::auth::Admin;
use crate::code::ResponseCode;
use crate::identifier::{Identifier, parent_prefix};

/// 100,000: administrators counted in one UTC day (about 10 MiB at most). A national node has a
/// few thousand registrars, each with a handful of administrators.
pub const MAX_TRACKED_ADMINS: usize = 100_000;

/// Seconds in a UTC day (Unix time has no leap seconds).
const DAY: i64 = 86_400;

/// The three limits; 0 means none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Identifiers one prefix may hold (604).
    pub identifiers: u64,
    /// Derived prefixes with a prefix record directly under one prefix (605).
    pub prefixes: u64,
    /// Requests one administrator may make in a UTC day (603).
    pub daily_requests: u64,
}

/// A per-prefix override: the keys it sets replace the global value at and below its prefix.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Override {
    pub identifiers: Option<u64>,
    pub prefixes: Option<u64>,
    pub daily_requests: Option<u64>,
}

/// An administrator over its day's requests.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "{admin} has made the {limit} requests a day its quota allows (quota daily_requests; national code 603, \
     RC_REQUEST_LIMIT_DAILY); the count restarts at 00:00 UTC"
)]
pub struct DailyLimit {
    pub admin: String,
    pub limit: u64,
    /// Seconds until the count restarts.
    pub retry_after: u64,
}

impl DailyLimit {
    /// The Handle response code of this refusal.
    pub fn code(&self) -> ResponseCode {
        ResponseCode::RequestLimitDaily
    }
}

/// The node's quotas (see the module docs). The default has none.
#[derive(Debug, Default)]
pub struct Quotas {
    global: Limits,
    /// Overrides by prefix, ASCII lower case.
    overrides: HashMap<String, Override>,
    daily: Mutex<Daily>,
}

/// One UTC day's request counts.
#[derive(Debug, Default)]
struct Daily {
    /// Days since the Unix epoch.
    day: i64,
    /// Requests so far by administrator (identifier in registry key form, whatever the index).
    counts: HashMap<String, u64>,
    /// Whether this day's "too many administrators" warning was logged.
    warned: bool,
}

impl Quotas {
    /// Quotas of `global`, with `overrides` by prefix (prefixes already checked).
    pub fn new(global: Limits, overrides: impl IntoIterator<Item = (String, Override)>) -> Self {
        let overrides = overrides.into_iter().map(|(p, o)| (p.to_ascii_lowercase(), o)).collect();
        Self { global, overrides, daily: Mutex::default() }
    }

    /// These limits with the day's request counts of `old` (a reload: the counts go on; requests
    /// counted by `old` while the reload runs may be lost).
    pub fn keeping_counts_of(self, old: &Quotas) -> Self {
        let daily = std::mem::take(&mut *old.daily.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        Self { daily: Mutex::new(daily), ..self }
    }

    /// The deepest override at or above `prefix` that sets the key `pick` reads, else `global`.
    fn limit(&self, prefix: &str, pick: fn(&Override) -> Option<u64>, global: u64) -> u64 {
        if self.overrides.is_empty() {
            return global;
        }
        let prefix = prefix.to_ascii_lowercase();
        let mut at = Some(prefix.as_str());
        while let Some(p) = at {
            if let Some(limit) = self.overrides.get(p).and_then(pick) {
                return limit;
            }
            at = parent_prefix(p);
        }
        global
    }

    /// The most identifiers `prefix` may hold; 0 for no limit.
    pub fn identifiers(&self, prefix: &str) -> u64 {
        self.limit(prefix, |o| o.identifiers, self.global.identifiers)
    }

    /// The most derived prefixes directly under `prefix`; 0 for no limit.
    pub fn prefixes(&self, prefix: &str) -> u64 {
        self.limit(prefix, |o| o.prefixes, self.global.prefixes)
    }

    /// The most requests in a day for administrators under `prefix`; 0 for no limit.
    pub fn daily_requests(&self, prefix: &str) -> u64 {
        self.limit(prefix, |o| o.daily_requests, self.global.daily_requests)
    }

    /// Counts a request of `admin` made at Unix time `now`, or refuses it: the administrator made
    /// its day's requests already. A refused request is not counted.
    pub fn count_request(&self, admin: &Admin, now: i64) -> Result<(), DailyLimit> {
        if admin.is_node() || (self.global.daily_requests == 0 && self.overrides.is_empty()) {
            return Ok(());
        }
        let Ok(id) = Identifier::parse(&admin.identifier) else { return Ok(()) };
        let limit = self.daily_requests(id.record_prefix().unwrap_or(id.prefix()));
        if limit == 0 {
            return Ok(());
        }
        let day = now.div_euclid(DAY);
        let over = || DailyLimit {
            admin: admin.identifier.clone(),
            limit,
            retry_after: u64::try_from((day + 1) * DAY - now).unwrap_or(1),
        };
        // Held for a map lookup and insert, never across I/O.
        let mut daily = self.daily.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if daily.day != day {
            // A new day: yesterday's counts mean nothing now.
            *daily = Daily { day, ..Daily::default() };
        }
        if let Some(count) = daily.counts.get_mut(admin.key()) {
            if *count >= limit {
                return Err(over());
            }
            *count += 1;
            return Ok(());
        }
        if daily.counts.len() >= MAX_TRACKED_ADMINS {
            if !daily.warned {
                daily.warned = true;
                tracing::warn!(
                    max = MAX_TRACKED_ADMINS,
                    "quota: more administrators made requests today than are counted; the others go uncounted until \
                     00:00 UTC"
                );
            }
            return Ok(());
        }
        daily.counts.insert(admin.key().to_owned(), 1);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quotas() -> Quotas {
        let global = Limits { identifiers: 10, prefixes: 5, daily_requests: 2 };
        let at_88_100 = Override { identifiers: Some(100), daily_requests: Some(3), ..Override::default() };
        let at_88_100_1 = Override { prefixes: Some(1), ..Override::default() };
        let at_88_100_2 = Override { identifiers: Some(0), ..Override::default() };
        Quotas::new(
            global,
            [
                ("88.100".to_owned(), at_88_100),
                ("88.100.1".to_owned(), at_88_100_1),
                ("88.100.2".to_owned(), at_88_100_2),
            ],
        )
    }

    #[test]
    fn the_deepest_override_that_sets_a_key_wins_else_the_global_value() {
        let q = quotas();
        assert_eq!((q.identifiers("88.200"), q.prefixes("88.200"), q.daily_requests("88")), (10, 5, 2));
        assert_eq!(q.identifiers("88.100"), 100);
        assert_eq!(q.identifiers("88.100.1"), 100, "88.100.1 sets no identifiers: 88.100's value");
        assert_eq!(q.prefixes("88.100.1.7"), 1, "below 88.100.1");
        assert_eq!(q.prefixes("88.100"), 5);
        assert_eq!(q.identifiers("88.100.2"), 0, "an override of 0 lifts the limit");
        assert_eq!(q.identifiers("88.1000"), 10, "88.1000 is beside 88.100, not below it");
        assert_eq!(q.identifiers("88.100.1".to_uppercase().as_str()), 100, "prefixes ignore case");
    }

    #[test]
    fn the_daily_count_refuses_past_the_limit_and_restarts_at_the_utc_day() {
        let q = quotas();
        let admin = Admin::for_tests(300, "0.NA/88.200");
        let day = 20_000 * DAY;
        let noon = day + DAY / 2;
        q.count_request(&admin, noon).unwrap();
        q.count_request(&Admin::for_tests(301, "0.na/88.200"), noon).unwrap();
        let err = q.count_request(&admin, day + DAY - 1).unwrap_err();
        assert_eq!((err.limit, err.retry_after, err.code().number()), (2, 1, 603), "every index of one identifier");
        assert!(err.to_string().contains("603"), "{err}");
        q.count_request(&admin, day + DAY).unwrap();
        q.count_request(&admin, day + DAY + 1).unwrap();
        assert!(q.count_request(&admin, day + DAY + 2).is_err(), "the new day's limit");
    }

    #[test]
    fn the_daily_limit_follows_the_administrators_prefix() {
        let q = quotas();
        let now = 1_800_000_000;
        for admin in ["0.NA/88.100.1", "88.100.1/admin"] {
            let admin = Admin::for_tests(300, admin);
            for _ in 0..3 {
                q.count_request(&admin, now).unwrap();
            }
            assert_eq!(q.count_request(&admin, now).unwrap_err().limit, 3, "{}: 88.100's override", admin.identifier);
        }
        for _ in 0..5 {
            q.count_request(&Admin::node(), now).unwrap();
        }
        let none = Quotas::default();
        for _ in 0..5 {
            none.count_request(&Admin::for_tests(300, "0.NA/88.200"), now).unwrap();
        }
    }

    #[test]
    fn beyond_the_tracked_administrators_the_others_go_uncounted() {
        let q = Quotas::new(Limits { daily_requests: 1, ..Limits::default() }, []);
        let now = 1_800_000_000;
        {
            let mut daily = q.daily.lock().unwrap();
            daily.day = now / DAY;
            daily.counts = (0..MAX_TRACKED_ADMINS).map(|i| (format!("88/{i}"), 1)).collect();
        }
        let tracked = Admin::for_tests(300, "88/7");
        assert!(q.count_request(&tracked, now).is_err(), "still counted");
        let extra = Admin::for_tests(300, "88/extra");
        q.count_request(&extra, now).unwrap();
        q.count_request(&extra, now).unwrap();
        q.count_request(&extra, now + DAY).unwrap();
        assert!(q.count_request(&extra, now + DAY).is_err(), "counted again on a day with room");
    }
}
