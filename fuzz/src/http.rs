//! `http_params`: the parts of an HTTP API request that are text from the client. The first
//! byte picks the parser, the rest is its input:
//!
//! - 0: the query string (`index=`, `type=`, `page=`, `pageSize=`, `after=`, flags), as the
//!   handlers read it: a listing never starts past its bound.
//! - 1: the `Authorization` header value (Basic, user percent-encoded or not).
//! - 2: an identifier (the `{handle}` of the path): a valid one splits and joins back, and its
//!   DNS name maps back to its registry key.
//! - 3: a prefix (`prefix=` of a listing): its DNS name maps back to it.

use idnode::dns::mapping::{self, NameKind};
use idnode::http::parse;
use idnode::identifier::{self, Identifier};
use idnode::registry::MAX_LIST_OFFSET;

pub fn http_params(data: &[u8]) {
    let Some((&selector, input)) = data.split_first() else { return };
    match selector % 4 {
        0 => query(input),
        1 => {
            parse::authorization(input);
        }
        2 => handle(input),
        _ => prefix(input),
    }
}

fn query(input: &[u8]) {
    let Ok(text) = std::str::from_utf8(input) else { return };
    if let Some((page, page_size)) = parse::query(text) {
        assert!((1..=10_000).contains(&page_size), "page size {page_size} from {text:?}");
        assert!(page * page_size <= MAX_LIST_OFFSET, "page {page} of {page_size} from {text:?}");
    }
}

fn handle(input: &[u8]) {
    let Ok(text) = std::str::from_utf8(input) else { return };
    let Ok(id) = Identifier::parse(text) else { return };
    assert_eq!(id.as_str(), text);
    assert_eq!(format!("{}/{}", id.prefix(), id.suffix()), text);
    assert_eq!(Identifier::from_parts(id.prefix(), id.suffix()).as_ref(), Ok(&id));
    let key = Identifier::parse(&id.key()).unwrap_or_else(|e| panic!("the key of {text:?} is refused: {e}"));
    assert_eq!(key.key(), id.key(), "a key is its own key");
    let labels = mapping::identifier_labels(&id);
    let labels: Vec<&[u8]> = labels.iter().map(Vec::as_slice).collect();
    let may_have_children = id.suffix().len() % mapping::MAX_LABEL == 0;
    assert_eq!(
        mapping::classify(&labels),
        NameKind::Identifier { key: id.key(), may_have_children },
        "the DNS name of {text:?} maps back to it"
    );
}

fn prefix(input: &[u8]) {
    let Ok(text) = std::str::from_utf8(input) else { return };
    if identifier::check_prefix(text).is_err() {
        return;
    }
    let labels: Vec<Vec<u8>> = mapping::prefix_labels(text).collect();
    let labels: Vec<&[u8]> = labels.iter().map(Vec::as_slice).collect();
    assert_eq!(
        mapping::classify(&labels),
        NameKind::Prefix(text.to_ascii_lowercase()),
        "the DNS name of {text:?} maps back to it"
    );
}
