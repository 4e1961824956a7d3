//! The statistics' own tests: counting, merging, the day rolling over, the bounds, and counts
//! saved to a real registry and read back.

use super::*;

fn registry() -> (tempfile::TempDir, Registry) {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(dir.path()).unwrap();
    (dir, registry)
}

#[test]
fn dns_and_handle_answers_have_their_outcomes() {
    let header = |flags: u8, rcode: u8, answers: u8| [0, 0, flags, rcode, 0, 1, 0, answers, 0, 0, 0, 0];
    assert_eq!(Outcome::of_dns(&header(0x84, 0, 1)), Outcome::Answer);
    assert_eq!(Outcome::of_dns(&header(0x84, 3, 0)), Outcome::NotFound);
    assert_eq!(Outcome::of_dns(&header(0x84, 0, 0)), Outcome::NotFound, "NODATA");
    assert_eq!(Outcome::of_dns(&header(0x80, 0, 0)), Outcome::Referral, "not authoritative: a cut");
    assert_eq!(Outcome::of_dns(&header(0x80, 5, 0)), Outcome::Refused);
    assert_eq!(Outcome::of_dns(&header(0x80, 2, 0)), Outcome::Error);
    assert_eq!(Outcome::of_dns(&[0; 5]), Outcome::Error);
    assert_eq!(Outcome::of_handle(1), Outcome::Answer);
    assert_eq!(Outcome::of_handle(100), Outcome::NotFound);
    assert_eq!(Outcome::of_handle(303), Outcome::Referral);
    assert_eq!(Outcome::of_handle(402), Outcome::Refused);
    assert_eq!(Outcome::of_handle(4), Outcome::Error);
}

#[test]
fn tallies_merge_into_today_and_prefixes_stay_bounded() {
    let stats = Stats::empty();
    let mut tally = Tally::default();
    tally.count(Protocol::DnsUdp, Outcome::Answer, Some(b"88.100.1"));
    tally.count(Protocol::DnsUdp, Outcome::NotFound, Some(b"88.100.1"));
    tally.count(Protocol::HandleTcp, Outcome::Answer, Some(b"88.200.7"));
    tally.count(Protocol::DnsTcp, Outcome::Error, None);
    tally.merge(&stats);
    stats.count(Protocol::Http, Outcome::Answer, Some("88.100.2"));
    let report = stats.report();
    assert_eq!(report.today.lookups, 5);
    assert_eq!(report.today.by_protocol["dns-udp"], 2);
    assert_eq!(report.today.by_outcome["answer"], 3);
    assert_eq!((report.top_prefixes[0].prefix.as_str(), report.top_prefixes[0].lookups), ("88.100.1", 2));
    let secondary: Vec<(&str, u64)> =
        report.top_secondary_prefixes.iter().map(|p| (p.prefix.as_str(), p.lookups)).collect();
    assert_eq!(secondary, [("88.100", 3), ("88.200", 1)]);

    let mut tally = Tally::default();
    for n in 0..(MAX_PREFIXES + 300) {
        tally.count(Protocol::DnsUdp, Outcome::Answer, Some(format!("88.{n}").as_bytes()));
        if n % 200 == 0 {
            tally.merge(&stats);
        }
    }
    tally.merge(&stats);
    // One worker between merges keeps at most TALLY_PREFIXES, the rest as `other`.
    let mut busy = Tally::default();
    for n in 0..(TALLY_PREFIXES + 10) {
        busy.count(Protocol::DnsUdp, Outcome::Answer, Some(format!("99.{n}").as_bytes()));
    }
    assert_eq!((busy.prefixes.len(), busy.other), (TALLY_PREFIXES, 10));
    let inner = stats.inner.lock().unwrap();
    assert_eq!(inner.today.prefixes.len(), MAX_PREFIXES + 1, "the first ones and `other`");
    assert_eq!(inner.today.total(), 5 + MAX_PREFIXES as u64 + 300);
    let counted: u64 = inner.today.prefixes.values().sum();
    assert_eq!(counted, 4 + MAX_PREFIXES as u64 + 300, "every lookup with a prefix is in one");
}

#[test]
fn counts_are_saved_by_day_and_read_back_after_a_restart() {
    let (_dir, registry) = registry();
    let target = Target { lookups: 1000, days: 365 };
    let stats = Stats::load(&registry, Some(target)).unwrap();
    let today = day_of(crate::record::unix_now());
    stats.inner.lock().unwrap().day = today - 2;
    let mut tally = Tally::default();
    // Two days ago, yesterday, today.
    for (day, n) in [(today - 2, 3), (today - 1, 5), (today, 7)] {
        for _ in 0..n {
            tally.count(Protocol::DnsUdp, Outcome::Answer, Some(b"88.100.1"));
        }
        stats.merge_at(&tally, day);
        tally = Tally::default();
        stats.save_at(&registry, day).unwrap();
    }
    let again = Stats::load(&registry, Some(target)).unwrap();
    let report = again.report();
    assert_eq!(report.today.lookups, 7);
    assert_eq!(report.days.iter().map(|d| d.lookups).collect::<Vec<_>>(), [3, 5, 7]);
    assert_eq!(report.total, 15);
    let progress = report.target.unwrap();
    assert_eq!((progress.done, progress.lookups), (15, 1000));
    assert_eq!(progress.projected, 4 * 365, "the average of the full days kept");
    assert_eq!(report.days[2].date, super::report::date(today));
    assert_eq!(super::report::date(20_422), "2025-11-30");
}

#[test]
fn days_beyond_the_kept_ones_are_dropped() {
    let (_dir, registry) = registry();
    let stats = Stats::empty();
    let today = day_of(crate::record::unix_now());
    let mut tally = Tally::default();
    tally.count(Protocol::DnsUdp, Outcome::Answer, None);
    stats.merge_at(&tally, today - KEEP_DAYS - 5);
    stats.save_at(&registry, today - KEEP_DAYS - 5).unwrap();
    stats.save_at(&registry, today).unwrap();
    let days: Vec<i64> = registry.stats_days().unwrap().into_iter().map(|(d, _)| d).collect();
    assert_eq!(days, [today]);
}

#[test]
fn a_save_with_nothing_new_writes_nothing() {
    let (_dir, registry) = registry();
    let stats = Stats::load(&registry, None).unwrap();
    let today = day_of(crate::record::unix_now());
    let mut tally = Tally::default();
    tally.count(Protocol::DnsUdp, Outcome::Answer, Some(b"88.100.1"));
    stats.merge_at(&tally, today);
    stats.save_at(&registry, today).unwrap();
    assert!(registry.settle().unwrap(), "the save committed");
    stats.save_at(&registry, today).unwrap();
    assert!(!registry.unsettled(), "nothing new: no commit");
    stats.merge_at(&tally, today);
    stats.save_at(&registry, today).unwrap();
    assert!(registry.unsettled(), "a new count is saved");
    assert_eq!(Stats::load(&registry, None).unwrap().report().today.lookups, 2);
}
