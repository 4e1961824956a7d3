//! What `idnode stats` and the operations endpoint `/stats` show: today's lookups by protocol and
//! outcome, the busiest prefixes (enterprise prefixes, and the secondary-node prefixes above
//! them), the lookups of every day kept, and progress toward the configured target.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{DayCounts, Outcome, Protocol};

/// 20: prefixes listed in a report.
const TOP: usize = 20;
/// 7: the days whose average projects the target's period.
const PROJECT_FROM: i64 = 7;

/// A lookup target: `lookups` over any `days` days in a row (`2000000000` in `365`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Target {
    pub lookups: u64,
    pub days: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Today (UTC), `YYYY-MM-DD`.
    pub date: String,
    pub today: Day,
    /// Lookups in every day kept, today included.
    pub total: u64,
    /// Today's busiest enterprise prefixes (`88.100.1`), most lookups first.
    pub top_prefixes: Vec<PrefixCount>,
    /// Today's busiest secondary-node prefixes (the first two segments, `88.100`).
    pub top_secondary_prefixes: Vec<PrefixCount>,
    /// Lookups per day, oldest first.
    pub days: Vec<DayTotal>,
    pub target: Option<Progress>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Day {
    pub lookups: u64,
    pub by_protocol: BTreeMap<&'static str, u64>,
    pub by_outcome: BTreeMap<&'static str, u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PrefixCount {
    pub prefix: String,
    pub lookups: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct DayTotal {
    pub date: String,
    pub lookups: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Progress {
    pub lookups: u64,
    pub days: u32,
    /// Lookups in the last `days` days, today included.
    pub done: u64,
    /// `done` as a share of `lookups`.
    pub share: f64,
    /// Lookups the whole period would see at the average of the last 7 full days (today's
    /// rate until a full day is kept).
    pub projected: u64,
}

impl Report {
    pub(super) fn new(day: i64, today: &DayCounts, past: &BTreeMap<i64, DayCounts>, target: Option<&Target>) -> Self {
        let mut by_protocol = BTreeMap::new();
        let mut by_outcome = BTreeMap::new();
        for protocol in Protocol::ALL {
            by_protocol.insert(protocol.name(), today.counts[protocol as usize].iter().sum());
        }
        for outcome in Outcome::ALL {
            by_outcome.insert(outcome.name(), today.counts.iter().map(|p| p[outcome as usize]).sum());
        }
        let mut secondary: BTreeMap<String, u64> = BTreeMap::new();
        for (prefix, n) in &today.prefixes {
            *secondary.entry(super::series::secondary_of(prefix)).or_default() += n;
        }
        let mut days: Vec<DayTotal> =
            past.iter().map(|(d, counts)| DayTotal { date: date(*d), lookups: counts.total() }).collect();
        days.push(DayTotal { date: date(day), lookups: today.total() });
        let total = days.iter().map(|d| d.lookups).sum();
        let target = target.map(|t| {
            let since = day - i64::from(t.days) + 1;
            let done = today.total() + past.range(since..).map(|(_, c)| c.total()).sum::<u64>();
            let recent: Vec<u64> = past.range(day - PROJECT_FROM..).map(|(_, c)| c.total()).collect();
            let per_day = match recent.is_empty() {
                true => today.total() as f64 / day_fraction(),
                false => recent.iter().sum::<u64>() as f64 / recent.len() as f64,
            };
            Progress {
                lookups: t.lookups,
                days: t.days,
                done,
                share: if t.lookups == 0 { 0.0 } else { done as f64 / t.lookups as f64 },
                projected: (per_day * f64::from(t.days)) as u64,
            }
        });
        Report {
            date: date(day),
            today: Day { lookups: today.total(), by_protocol, by_outcome },
            total,
            top_prefixes: top(today.prefixes.iter().map(|(p, n)| (p.clone(), *n))),
            top_secondary_prefixes: top(secondary.into_iter()),
            days,
            target,
        }
    }
}

fn top(counts: impl Iterator<Item = (String, u64)>) -> Vec<PrefixCount> {
    let mut all: Vec<PrefixCount> = counts.map(|(prefix, lookups)| PrefixCount { prefix, lookups }).collect();
    all.sort_by(|a, b| b.lookups.cmp(&a.lookups).then_with(|| a.prefix.cmp(&b.prefix)));
    all.truncate(TOP);
    all
}

/// How much of today (UTC) has passed, at least a minute's worth.
fn day_fraction() -> f64 {
    (crate::record::unix_now().rem_euclid(86_400).max(60)) as f64 / 86_400.0
}

/// `YYYY-MM-DD` of a day since the Unix epoch.
pub(super) fn date(day: i64) -> String {
    let secs = u64::try_from(day.max(0) * 86_400).unwrap_or(0);
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    humantime::format_rfc3339(time).to_string()[..10].to_owned()
}
