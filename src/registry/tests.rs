//! The registry's tests: real redb databases in temporary directories.

use super::*;
use crate::record::Value;

fn record(id: &str) -> Record {
    Record::new(&Identifier::parse(id).unwrap(), vec![Value::new(1, "URL", format!("https://x/{id}"), 0)]).unwrap()
}

/// Writes `records` in one transaction, all or none, as the node core does.
fn put_all(reg: &Registry, records: &[Record]) -> Result<(), RegistryError> {
    reg.transact(|txn| {
        for (position, record) in records.iter().enumerate() {
            txn.put(record, false).map_err(|e| e.at(position))?;
        }
        Ok(())
    })
}

fn delete(reg: &Registry, id: &str) -> bool {
    reg.transact(|txn| txn.delete(Identifier::parse(id).unwrap().key().as_bytes())).unwrap()
}

#[test]
fn put_get_delete_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let id = Identifier::parse("88.100.1/ABC").unwrap();
    {
        let reg = Registry::open(dir.path()).unwrap();
        put_all(&reg, &[record("88.100.1/ABC")]).unwrap();
        assert_eq!(reg.get(&Identifier::parse("88.100.1/abc").unwrap()).unwrap().unwrap().identifier, "88.100.1/ABC");
    }
    let reg = Registry::open(dir.path()).unwrap();
    assert!(reg.get(&id).unwrap().is_some());
    assert!(delete(&reg, "88.100.1/ABC"));
    assert!(!delete(&reg, "88.100.1/abc"));
    assert!(reg.get(&id).unwrap().is_none());
}

#[test]
fn second_open_reports_the_directory_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Registry::open(dir.path()).unwrap();
    let err = Registry::open(dir.path()).err().unwrap();
    assert!(matches!(err, RegistryError::InUse { .. }), "{err}");
    assert!(err.to_string().contains("in use by another idnode process"));
}

#[test]
fn case_variant_is_refused_and_aborts_the_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::open(dir.path()).unwrap();
    put_all(&reg, &[record("88/ABC")]).unwrap();
    put_all(&reg, &[record("88/ABC")]).unwrap(); // same case: replace
    let err = put_all(&reg, &[record("88/new"), record("88/abc")]).unwrap_err();
    assert!(matches!(err, RegistryError::CaseConflict { position: 1, .. }), "{err}");
    assert!(reg.get(&Identifier::parse("88/new").unwrap()).unwrap().is_none(), "batch rolled back");
}

#[test]
fn a_transaction_bumps_the_serial_once() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::open(dir.path()).unwrap();
    let s0 = reg.serial();
    let batch: Vec<_> = (0..MAX_BATCH).map(|i| record(&format!("88/{i}"))).collect();
    put_all(&reg, &batch).unwrap();
    assert_eq!(reg.len().unwrap(), MAX_BATCH as u64);
    assert_eq!(reg.serial(), s0 + 1);
}

#[test]
fn a_bulk_load_is_visible_at_once_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let reg = Registry::open(dir.path()).unwrap();
        let mut bulk = reg.bulk();
        for i in 0..3 {
            bulk.transact(|txn| txn.put(&record(&format!("88/{i}")), false)).unwrap();
            assert_eq!(reg.len().unwrap(), i + 1, "visible before any sync");
        }
        bulk.sync().unwrap();
        bulk.transact(|txn| txn.put(&record("88/last"), false)).unwrap();
        bulk.finish().unwrap();
    }
    let reg = Registry::open(dir.path()).unwrap();
    assert_eq!(reg.len().unwrap(), 4);
}

#[test]
fn transact_sees_its_own_changes_and_an_error_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::open(dir.path()).unwrap();
    put_all(&reg, &[record("88/old")]).unwrap();
    let serial = reg.serial();
    let err: Result<(), RegistryError> = reg.transact(|txn| {
        txn.put(&record("88/other"), true)?;
        assert!(txn.get(b"88/other")?.is_some(), "a transaction reads its own writes");
        txn.put(&record("88/old"), true).map_err(|e| e.at(1))?;
        Ok(())
    });
    assert!(matches!(err, Err(RegistryError::AlreadyExists { position: 1, .. })), "{err:?}");
    assert_eq!(reg.serial(), serial, "nothing was committed");
    assert!(reg.get(&Identifier::parse("88/other").unwrap()).unwrap().is_none(), "rolled back");
    let deleted =
        reg.transact::<_, RegistryError>(|txn| Ok((txn.delete(b"88/old")?, txn.delete(b"88/none")?))).unwrap();
    assert_eq!(deleted, (true, false));
    assert!(reg.get(&Identifier::parse("88/old").unwrap()).unwrap().is_none());
    assert_eq!(reg.serial(), serial + 1);
}

#[test]
fn a_plain_secret_is_never_stored() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::open(dir.path()).unwrap();
    let id = Identifier::parse("88/ops").unwrap();
    let plain = Record::new(&id, vec![Value::new(300, "hs_seckey", "plain", 0)]).unwrap();
    assert!(matches!(put_all(&reg, &[plain]), Err(RegistryError::UnsealedSecret { index: 300, .. })));
    assert!(reg.get(&id).unwrap().is_none());
}

#[test]
fn list_pages_stay_under_the_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::open(dir.path()).unwrap();
    let ids = ["88.100.1/a", "88.100.1/B", "88.100.1/c", "88.100.10/x", "88.100.1.5/y", "88.100/z"];
    put_all(&reg, &ids.map(record)).unwrap();
    assert_eq!(reg.list("88.100.1", None, 0, 2).unwrap(), ["88.100.1/a", "88.100.1/B"]);
    assert_eq!(reg.list("88.100.1", None, 2, 2).unwrap(), ["88.100.1/c"]);
    assert!(reg.list("88.100.1", None, 4, 2).unwrap().is_empty());
    assert_eq!(reg.list("88.100.1", Some("88.100.1/b"), 0, 5).unwrap(), ["88.100.1/c"]);
    assert_eq!(reg.list("88.100.1", Some("88.100.1/c"), 0, 5).unwrap(), Vec::<String>::new());
    assert_eq!(reg.count_under("88.100.1").unwrap(), 3);
    assert_eq!(reg.count_under("88.100").unwrap(), 1);
    delete(&reg, "88.100.1/a");
    put_all(&reg, &[record("88.100.1/c")]).unwrap();
    assert_eq!(reg.count_under("88.100.1").unwrap(), 2, "deletes count down, replacements do not count");
    let snap = reg.snapshot().unwrap();
    assert!(snap.has_key_starting_with(b"88.100.1.", Some(b"88.100.1/")).unwrap());
    assert!(snap.has_key_starting_with(b"88.100.1.5.", Some(b"88.100.1.5/")).unwrap());
    assert!(!snap.has_key_starting_with(b"88.100.2.", Some(b"88.100.2/")).unwrap());
    assert!(!snap.has_key_starting_with(b"88.100.1/d", None).unwrap());
    let prefixes = ["0.NA/88.100.1", "0.NA/88.100.1.5", "0.NA/88.100.1-x", "0.NA/88.100.2.9", "0.NA/88.100.10"];
    put_all(&reg, &prefixes.map(record)).unwrap();
    let derived = |at_most| reg.transact::<_, RegistryError>(|txn| txn.count_derived("88.100", at_most)).unwrap();
    // 88.100.1, 88.100.1-x and 88.100.10, not 88.100.1.5; 88.100.2 has no record of its own.
    assert_eq!((derived(10), derived(2)), (3, 2), "no further than asked");
}

#[test]
fn each_committed_write_is_logged_with_the_bytes_before_and_after() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::open(dir.path()).unwrap();
    let start = reg.seq();
    put_all(&reg, &[record("88/a"), record("88/b")]).unwrap();
    let mut changed = record("88/a");
    changed.values[0].data = b"https://changed".to_vec();
    put_all(&reg, &[changed.clone()]).unwrap();
    assert!(delete(&reg, "88/b"));
    assert!(!delete(&reg, "88/b"), "a delete that finds nothing");
    let _ = put_all(&reg, &[record("88/new"), record("88/A")]).unwrap_err();
    assert_eq!(reg.seq(), start + 3, "one number a write; nothing for a no-op or a rolled-back one");
    let view = reg.log_view().unwrap();
    assert_eq!((view.seq, view.floor), (start + 3, start));
    let sets: Vec<_> = view.changes_after(start).unwrap().map(Result::unwrap).collect();
    let seqs: Vec<u64> = sets.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, [start + 1, start + 2, start + 3]);
    let first = &sets[0].1.changes;
    assert_eq!(first.len(), 2);
    assert_eq!((first[0].key.as_slice(), first[0].old.as_deref()), (b"88/a".as_slice(), None));
    assert_eq!(Record::decode(b"88/a", first[0].new.as_deref().unwrap()).unwrap(), record("88/a"));
    let replaced = &sets[1].1.changes[0];
    assert_eq!(Record::decode(&replaced.key, replaced.old.as_deref().unwrap()).unwrap(), record("88/a"));
    assert_eq!(Record::decode(&replaced.key, replaced.new.as_deref().unwrap()).unwrap(), changed);
    let deleted = &sets[2].1.changes[0];
    assert_eq!((deleted.key.as_slice(), deleted.new.as_deref()), (b"88/b".as_slice(), None));
    assert_eq!(view.changes_after(start + 2).unwrap().count(), 1, "from a later sequence number");
}

#[test]
fn the_log_keeps_its_window_and_a_bulk_load_moves_its_floor() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::open(dir.path()).unwrap();
    reg.set_log_window(LogWindow { keep: 5, keep_secs: 3600 });
    for i in 0..20 {
        put_all(&reg, &[record(&format!("88/{i}"))]).unwrap();
    }
    let view = reg.log_view().unwrap();
    assert_eq!(view.seq - view.floor, 5, "the last 5 writes are kept");
    assert_eq!(view.changes_after(view.floor).unwrap().count(), 5);
    drop(view);
    let mut bulk = reg.bulk();
    bulk.transact(|txn| txn.put(&record("88/bulk"), false)).unwrap();
    bulk.finish().unwrap();
    let view = reg.log_view().unwrap();
    assert_eq!(view.floor, view.seq, "nothing before the bulk load can be brought up to date from the log");
    drop(view);
    drop(reg);
    let reg = Registry::open(dir.path()).unwrap();
    let view = reg.log_view().unwrap();
    assert_eq!((view.floor, view.seq), (reg.seq(), reg.seq()), "kept across a reopen");
}

#[test]
fn a_registry_with_a_small_page_cache_reads_what_it_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::open_with_cache(dir.path(), Some(1 << 20)).unwrap();
    let batch: Vec<_> = (0..MAX_BATCH).map(|i| record(&format!("88/{i}"))).collect();
    put_all(&reg, &batch).unwrap();
    assert_eq!(reg.get(&Identifier::parse("88/1999").unwrap()).unwrap().unwrap(), record("88/1999"));
}

#[test]
fn settling_after_writes_changes_nothing_a_reader_sees() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::open(dir.path()).unwrap();
    assert!(reg.unsettled(), "opening commits");
    assert!(reg.settle().unwrap());
    assert!(!reg.unsettled());
    assert!(!reg.settle().unwrap(), "nothing written since");
    let records: Vec<Record> = (0..300).map(|i| record(&format!("88.100.1/S-{i}"))).collect();
    put_all(&reg, &records).unwrap();
    // A replaced record frees the pages it was on: the case redb's epilogue handles.
    put_all(&reg, &records[..10]).unwrap();
    assert!(delete(&reg, "88.100.1/S-0"));
    reg.save_stats_day(1, b"x").unwrap();
    assert!(reg.unsettled(), "every kind of commit marks it");
    let (seq, len) = (reg.seq(), reg.len().unwrap());
    assert!(reg.settle().unwrap());
    assert_eq!((reg.seq(), reg.len().unwrap()), (seq, len));
    assert_eq!(reg.get(&Identifier::parse("88.100.1/S-299").unwrap()).unwrap().unwrap(), records[299]);
    drop(reg);
    let reg = Registry::open(dir.path()).unwrap();
    assert_eq!((reg.seq(), reg.len().unwrap()), (seq, len));
    assert!(reg.get(&Identifier::parse("88.100.1/S-0").unwrap()).unwrap().is_none());
}
