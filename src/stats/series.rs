//! Lookups per day and per prefix over the days kept, for the status page's charts: the
//! secondary-node prefixes (an enterprise prefix's first two segments, `88.100`) and the
//! enterprise prefixes (`88.100.1`), each the busiest few over the window and the rest as
//! [`OTHER`], so a chart has a bounded number of lines whatever the traffic.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::report::date;
use super::{DayCounts, OTHER};

/// Per-day lookups, oldest day first; every series has one number per date.
#[derive(Debug, Clone, Serialize)]
pub struct Series {
    /// `YYYY-MM-DD`, every day of the window (days without counts are zeros).
    pub dates: Vec<String>,
    /// Lookups per day of every day.
    pub total: Vec<u64>,
    /// The busiest secondary-node prefixes, then [`OTHER`] when there are more.
    pub secondary: Vec<PrefixSeries>,
    /// The busiest enterprise prefixes, then [`OTHER`] when there are more.
    pub prefixes: Vec<PrefixSeries>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PrefixSeries {
    pub prefix: String,
    pub lookups: Vec<u64>,
}

/// The secondary-node prefix of an enterprise prefix: its first two segments.
pub(super) fn secondary_of(prefix: &str) -> String {
    match prefix {
        OTHER => OTHER.to_owned(),
        prefix => prefix.splitn(3, '.').take(2).collect::<Vec<_>>().join("."),
    }
}

impl Series {
    /// The `days` days up to `today` (counts of today and of `past`), `top` prefixes a chart.
    pub(super) fn new(
        today: i64,
        counts: &DayCounts,
        past: &BTreeMap<i64, DayCounts>,
        days: usize,
        top: usize,
    ) -> Self {
        let days = i64::try_from(days.max(1)).unwrap_or(1);
        let first = today - days + 1;
        let window: Vec<(i64, Option<&DayCounts>)> =
            (first..=today).map(|d| (d, if d == today { Some(counts) } else { past.get(&d) })).collect();
        let per_day = |key: &dyn Fn(&str) -> String| -> Vec<HashMap<String, u64>> {
            window
                .iter()
                .map(|(_, c)| {
                    let mut sums = HashMap::new();
                    for (prefix, n) in c.map(|c| &c.prefixes).into_iter().flatten() {
                        *sums.entry(key(prefix)).or_insert(0) += n;
                    }
                    sums
                })
                .collect()
        };
        Series {
            dates: window.iter().map(|(d, _)| date(*d)).collect(),
            total: window.iter().map(|(_, c)| c.map_or(0, DayCounts::total)).collect(),
            secondary: busiest(&per_day(&secondary_of), top),
            prefixes: busiest(&per_day(&str::to_owned), top),
        }
    }
}

/// The `top` prefixes with most lookups over all `days`, most first, each with its lookups
/// per day; the others summed as [`OTHER`].
fn busiest(days: &[HashMap<String, u64>], top: usize) -> Vec<PrefixSeries> {
    let mut totals: HashMap<&str, u64> = HashMap::new();
    for day in days {
        for (prefix, n) in day {
            *totals.entry(prefix.as_str()).or_insert(0) += n;
        }
    }
    let mut ranked: Vec<(&str, u64)> = totals.into_iter().filter(|(p, _)| *p != OTHER).collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let (shown, rest) = ranked.split_at(ranked.len().min(top));
    let mut out: Vec<PrefixSeries> = shown
        .iter()
        .map(|(prefix, _)| PrefixSeries {
            prefix: (*prefix).to_owned(),
            lookups: days.iter().map(|d| d.get(*prefix).copied().unwrap_or(0)).collect(),
        })
        .collect();
    let rest: Vec<&str> = rest.iter().map(|(p, _)| *p).chain([OTHER]).collect();
    let other: Vec<u64> = days.iter().map(|d| rest.iter().filter_map(|p| d.get(*p)).sum()).collect();
    if other.iter().any(|n| *n > 0) {
        out.push(PrefixSeries { prefix: OTHER.to_owned(), lookups: other });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(prefixes: &[(&str, u64)]) -> DayCounts {
        let mut counts = DayCounts::default();
        counts.counts[0][0] = prefixes.iter().map(|(_, n)| n).sum();
        counts.prefixes = prefixes.iter().map(|(p, n)| ((*p).to_owned(), *n)).collect();
        counts
    }

    #[test]
    fn sums_by_secondary_prefix_keeps_the_busiest_and_the_rest_as_other() {
        let mut past = BTreeMap::new();
        past.insert(98, day(&[("88.100.1", 5), ("88.101.7", 1)]));
        // Day 99 was never saved: zeros.
        let today = day(&[("88.100.1", 2), ("88.100.2", 3), ("88.102.1", 1), (OTHER, 4)]);
        let s = Series::new(100, &today, &past, 4, 1);
        assert_eq!(s.dates.len(), 4);
        assert_eq!(s.total, [0, 6, 0, 10]);
        assert_eq!(s.secondary.len(), 2);
        assert_eq!((s.secondary[0].prefix.as_str(), &s.secondary[0].lookups[..]), ("88.100", &[0, 5, 0, 5][..]));
        assert_eq!((s.secondary[1].prefix.as_str(), &s.secondary[1].lookups[..]), (OTHER, &[0, 1, 0, 5][..]));
        assert_eq!((s.prefixes[0].prefix.as_str(), &s.prefixes[0].lookups[..]), ("88.100.1", &[0, 5, 0, 2][..]));
        assert_eq!(s.prefixes[1].lookups, [0, 1, 0, 8]);
    }

    #[test]
    fn no_other_line_when_every_prefix_is_shown() {
        let s = Series::new(10, &day(&[("88.100.1", 2)]), &BTreeMap::new(), 1, 8);
        assert_eq!(s.secondary.len(), 1);
        assert_eq!(s.prefixes.len(), 1);
        assert_eq!(s.dates, [date(10)]);
    }
}
