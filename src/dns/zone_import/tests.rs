//! Zone files as idnode, Knot and BIND write them, imported into real registries.

use super::*;
use crate::config::Config;
use crate::dns::zonefile;

fn registry() -> (tempfile::TempDir, Registry) {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(dir.path()).unwrap();
    (dir, registry)
}

fn put(registry: &Registry, id: &str, values: Vec<Value>) {
    let record = Record::new(&Identifier::parse(id).unwrap(), values).unwrap();
    registry.transact(|txn| txn.put(&record, false).map(drop)).unwrap();
}

fn value(index: u32, kind: &str, data: &[u8], ttl: u32) -> Value {
    Value { ttl: Ttl::Relative(ttl), ..Value::new(index, kind, data, 0) }
}

fn import_text(registry: &Registry, text: &str) -> Result<ZoneReport, ZoneImportError> {
    import(registry, "id.example.", text.as_bytes(), 3, |_| {})
}

/// What a record holds that a zone file carries: the identifier as written, and each value's
/// index, type, data and TTL.
type Seen = (String, Vec<(u32, String, Vec<u8>, Ttl)>);

fn seen(record: &Record) -> Seen {
    let values = record.values.iter().map(|v| (v.index, v.kind.clone(), v.data.clone(), v.ttl)).collect();
    (record.identifier.as_str().to_owned(), values)
}

fn all(registry: &Registry) -> Vec<Seen> {
    let mut out = Vec::new();
    registry
        .for_each(|r| {
            out.push(seen(&r));
            Ok::<_, crate::registry::RegistryError>(())
        })
        .unwrap();
    out
}

fn get(registry: &Registry, id: &str) -> Option<Record> {
    registry.get(&Identifier::parse(id).unwrap()).unwrap()
}

#[test]
fn a_written_zone_imports_back_to_the_same_records() {
    let (_d1, source) = registry();
    let long = format!("Long-{}", "AbC".repeat(40)); // 125 bytes: two full labels and a short one
    let exactly = "x".repeat(126); // two full labels
    put(&source, "88.100.1/ABC-123", vec![value(1, "URL", b"https://example.com/ABC-123", 86_400)]);
    put(&source, &format!("88.100.1/{long}"), vec![value(1, "URL", b"https://x/1", 60), value(2, "EMAIL", b"a@b", 0)]);
    put(&source, &format!("88.100.1/{exactly}"), vec![value(7, "NOTE", b"full labels", 1)]);
    let odd = "quote \" backslash \\ semicolon ; paren ( tab\t nul \0 泵 Ä".as_bytes();
    put(
        &source,
        "88.100.2/Pump Ä ö",
        vec![
            value(1, "URL", "https://例え.jp/ä?q=\"x\"".as_bytes(), 300),
            value(2, "DESC", odd, 3600),
            value(3, "BLOB", &(0..=255).collect::<Vec<u8>>().repeat(3), 7200),
            value(100_000, "URL", b"https://big-index", 5),
            value(4, "EMPTY", b"", 10),
        ],
    );
    put(&source, "88/Top.Level/x", vec![value(1, "URL", b"https://t", 42)]);
    let config = Config::default();
    let zone = crate::dns::zone_config(&config.dns, &config.dns.zones()).unwrap().remove(0);
    let mut file = Vec::new();
    assert_eq!(zonefile::write(&source, &zone, &mut file).unwrap(), 5);

    let (_d2, target) = registry();
    let report = import(&target, "id.example.", file.as_slice(), 2, |_| {}).unwrap();
    assert_eq!(report.import.records, 5, "{}", String::from_utf8_lossy(&file));
    assert_eq!((report.soa, report.nameservers, report.glue), (1, 1, 1));
    assert_eq!((report.apex.as_str(), report.prefix.as_str()), ("id.example.", ""));
    // DNS names lose case and `zonefile::write` writes them lower-cased, so the identifiers come
    // back in lower case (the Knot and BIND tests below import names as written). An RRset has
    // one TTL (RFC 2181 5.2), the shortest of its values', so each value comes back with that.
    let as_served = |records: Vec<Seen>| {
        let served = |(id, values): Seen| {
            let ttl = values.iter().map(|v| v.3.seconds_at(0)).min().unwrap_or(0);
            let values = values.into_iter().map(|(i, k, d, _)| (i, k, d, Ttl::Relative(ttl))).collect();
            (id.to_ascii_lowercase(), values)
        };
        records.into_iter().map(served).collect::<Vec<_>>()
    };
    assert_eq!(all(&target), as_served(all(&source)));
}

#[test]
fn knot_style_absolute_names_ttl_column_and_decimal_escapes() {
    let text = "\
id.example.\t3600\tSOA\tns1.id.example. hostmaster.id.example. 7 3600 900 604800 300
id.example.\t3600\tNS\tns1.id.example.
id.example.\t3600\tNS\tns2.elsewhere.example.
Pump-\\195\\132._id.1.100.88.id.example.\t600\tTXT\t\"1\" \"URL\" \"https://example.com/\\195\\132\"
Pump-\\195\\132._id.1.100.88.id.example.\t600\tTXT\t\"2\" \"NOTE\" \"say \\\"hi\\\" \\\\ \\059\"
Pump-\\195\\132._id.1.100.88.id.example.\t600\tURI\t1 1 \"https://example.com/\\195\\132\"
ns1.id.example.\t3600\tA\t192.0.2.1
ns1.id.example.\t3600\tAAAA\t2001:db8::1
";
    let (_d, reg) = registry();
    let report = import_text(&reg, text).unwrap();
    assert_eq!((report.import.records, report.soa, report.nameservers, report.glue), (1, 1, 2, 2));
    let record = get(&reg, "88.100.1/pump-Ä").unwrap();
    assert_eq!(record.identifier.as_str(), "88.100.1/Pump-Ä");
    assert_eq!(record.values[0].data, "https://example.com/Ä".as_bytes());
    assert_eq!(record.values[1].data, b"say \"hi\" \\ ;");
    assert_eq!(record.values[1].ttl, Ttl::Relative(600));
}

#[test]
fn bind_style_relative_names_blank_owners_and_parentheses() {
    let text = "\
; the zone of secondary node 88.100
$ORIGIN 100.88.id.example.
$TTL 1h
@   IN  SOA ns1 hostmaster (
        2024010101 ; serial
        3h 15m 1w 5m )
    IN  NS  ns1
ns1 IN  A   192.0.2.1

$ORIGIN _id.1.100.88.id.example.
Pump-7  IN 300 TXT \"1\" \"URL\" \"https://example.com/pump/7\" ; TTL after the class
        IN URI 1 1 \"https://example.com/pump/7\"
        TXT \"2\" \"EMAIL\" \"ops@example.com\"
valve   1d TXT ( \"1\"
               \"NOTE\" \"two lines\" )
";
    let (_d, reg) = registry();
    let report = import_text(&reg, text).unwrap();
    assert_eq!(
        (report.import.records, report.apex.as_str(), report.prefix.as_str()),
        (2, "100.88.id.example.", "88.100")
    );
    let (id, values) = seen(&get(&reg, "88.100.1/PUMP-7").unwrap());
    assert_eq!(id, "88.100.1/Pump-7");
    assert_eq!(values[0], (1, "URL".into(), b"https://example.com/pump/7".to_vec(), Ttl::Relative(300)));
    assert_eq!(values[1], (2, "EMAIL".into(), b"ops@example.com".to_vec(), Ttl::Relative(3600)));
    assert_eq!(seen(&get(&reg, "88.100.1/valve").unwrap()).1[0].3, Ttl::Relative(86_400));
}

const HEAD: &str = "$ORIGIN id.example.\n$TTL 60\n@ SOA ns1 hostmaster 1 2 3 4 5\n@ NS ns1\nns1 A 192.0.2.1\n";

fn txt(suffix: &str) -> String {
    format!("{suffix}._id.1.100.88 TXT \"1\" \"URL\" \"https://x/{suffix}\"\n")
}

/// Imports HEAD, `a` and `b`, then `bad` (at line 8 or later), then `c`; checks the error names
/// `line` and says `says`, and that a and b are stored (unless `bad` belongs to b) and c is not.
fn refused(bad: &str, line: u64, says: &str, b_stored: bool) {
    let text = format!("{HEAD}{}{}{bad}\n{}", txt("a"), txt("b"), txt("c"));
    let (_d, reg) = registry();
    let err = import_text(&reg, &text).unwrap_err().to_string();
    assert!(err.starts_with(&format!("line {line}: ")), "{bad}: {err}");
    assert!(err.contains(says), "{bad}: {err}");
    assert!(get(&reg, "88.100.1/a").is_some(), "{bad}: {err}");
    assert_eq!(get(&reg, "88.100.1/b").is_some(), b_stored, "{bad}: {err}");
    assert!(get(&reg, "88.100.1/c").is_none(), "{bad}: {err}");
}

#[test]
fn refusals_name_the_line_and_keep_what_came_before() {
    refused(
        "b._id.1.100.88 MX 10 mail",
        8,
        "MX at b._id.1.100.88.id.example.: MX records are not identifier values",
        false,
    );
    refused("x._id.1.100.88 MX 10 mail", 8, "MX at x._id.1.100.88.id.example.", true);
    refused(
        "x._id.1.100.88 TXT \"v=spf1 -all\"",
        8,
        "TXT at x._id.1.100.88.id.example.: not an identifier value",
        true,
    );
    refused("x.other.example. TXT \"1\" \"URL\" \"u\"", 8, "outside the zone id.example.", true);
    refused("www TXT \"1\" \"URL\" \"u\"", 8, "TXT at www.id.example.: no identifier has this name", true);
    refused("$INCLUDE other.zone", 8, "$INCLUDE: a zone file that names other files is not imported", true);
    refused("$GENERATE 1-9 x$ TXT y", 8, "$GENERATE: not supported", true);
    refused("x._id.1.100.88 TXT \"1\" \"URL\" \"open", 8, "unterminated quoted string", true);
    refused("\nx._id.1.100.88 TXT ( \"1\" \"URL\"\n\"u\"", 9, "unterminated parenthesis", true);
    refused("x._id.1.100.88 URI 1 1 \"https://x/x\"", 8, "URI record without the TXT value it derives from", true);
    refused("b._id.1.100.88 URI 1 1 \"https://other\"", 8, "URI record without the TXT value it derives from", false);
    refused("b._id.1.100.88 TXT \"1\" \"NOTE\" \"again\"", 8, "index 1 appears twice", false);
    refused("a._id.1.100.88 TXT \"2\" \"NOTE\" \"late\"", 8, "were interrupted by another name", true);
    refused("1.100.88 NS ns1.1.100.88", 8, "a delegation of prefix 88.100.1 is not imported", true);
    refused("mail A 192.0.2.9", 8, "A at mail.id.example.: not the address of a name server", true);
    refused("x._id.1.100.88 CH TXT \"1\" \"URL\" \"u\"", 8, "class CH; only IN records", true);
    refused("x._id.1.100.88 RRSIG TXT 8 7 60 1 2 3 id.example. AAAA", 8, "import the unsigned zone", true);
    refused("x._id.1.100.88 TXT \"1\" \"HS_SECKEY\" \"pw\"", 8, "a secret served in DNS is no secret", true);
    refused("sub SOA ns1 hostmaster 1 2 3 4 5", 8, "SOA at sub.id.example.: only the zone's apex", true);
}

#[test]
fn the_zone_must_be_the_national_apex_or_a_prefix_below_it() {
    let (_d, reg) = registry();
    let err = import_text(&reg, "other.example. 60 SOA ns1 host 1 2 3 4 5\n").unwrap_err().to_string();
    assert!(err.starts_with("line 1: zone other.example.: not the node's apex id.example."), "{err}");
    let err = import_text(&reg, "\n_id.id.example. 60 SOA ns1 host 1 2 3 4 5\n").unwrap_err().to_string();
    assert!(err.starts_with("line 2: zone _id.id.example.: not"), "{err}");
    let err = import_text(&reg, "a._id.88.id.example. 60 TXT \"1\" \"X\" \"y\"\n").unwrap_err().to_string();
    assert!(err.starts_with("line 1: the zone starts with neither $ORIGIN nor an SOA"), "{err}");
    let err = import_text(&reg, "$ORIGIN id.example.\nx._id.88 TXT \"1\" \"X\" \"y\"\n").unwrap_err().to_string();
    assert!(err.starts_with("line 2: TXT at x._id.88.id.example.: no TTL and no $TTL"), "{err}");
    // A prefix zone holds only names below it.
    let text =
        "$ORIGIN 100.88.id.example.\n$TTL 5\n@ SOA a b 1 2 3 4 5\nx._id.101.88.id.example. TXT \"1\" \"X\" \"y\"\n";
    let err = import_text(&reg, text).unwrap_err().to_string();
    assert!(err.starts_with("line 4: TXT at x._id.101.88.id.example.: outside the zone 100.88.id.example."), "{err}");
    assert!(reg.is_empty().unwrap());
}

#[test]
fn an_empty_or_settings_only_zone_imports_nothing() {
    let (_d, reg) = registry();
    assert_eq!(import_text(&reg, "").unwrap().import.records, 0);
    let report = import_text(&reg, HEAD).unwrap();
    assert_eq!((report.import.records, report.import.lines, report.soa, report.glue), (0, 5, 1, 1));
}
