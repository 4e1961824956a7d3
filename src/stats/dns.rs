//! What the metrics say of DNS beyond the lookups: answers by RCODE and transport, questions by
//! type, and how long answers take, from the front cache and from the registry (and beside them
//! how long the Handle protocol's and the HTTP API's lookups take). Counted in each
//! worker's [`super::Tally`] like the lookups, since the process started (not saved).
//!
//! The time of an answer is sampled: one question in [`SAMPLE_EVERY`] is timed (two clock reads),
//! so the histogram costs the query path nothing measurable.

use std::time::Duration;

/// 64: one question in this many is timed.
pub const SAMPLE_EVERY: u32 = 64;

/// The question types counted one by one; any other is `other`.
pub const QTYPES: [(u16, &str); 7] =
    [(16, "TXT"), (256, "URI"), (255, "ANY"), (6, "SOA"), (2, "NS"), (1, "A"), (28, "AAAA")];

/// Upper bounds of the answer-time buckets, in microseconds; above the last: `+Inf`.
pub const LATENCY_BOUNDS_US: [u64; 10] = [1, 2, 5, 10, 20, 50, 100, 500, 1_000, 10_000];

/// Where a timed answer came from: DNS from the front cache or the registry, or another
/// protocol's answer (the Handle protocol's, sampled like DNS; every HTTP lookup's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    DnsCache = 0,
    DnsRegistry = 1,
    Handle = 2,
    Http = 3,
}

/// How many [`Source`]s.
pub const SOURCES: usize = 4;

/// DNS counts of one worker, or of the node since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DnsCounts {
    /// `[transport (0 UDP, 1 TCP)][rcode]`.
    pub rcodes: [[u64; 16]; 2],
    /// By [`QTYPES`], then `other`.
    pub qtypes: [u64; QTYPES.len() + 1],
    /// Sampled answer times, `[Source][bucket]`; the last bucket is `+Inf`.
    pub latency: [[u64; LATENCY_BOUNDS_US.len() + 1]; SOURCES],
    /// The sum of the sampled times, in seconds, by [`Source`].
    pub latency_sum: [f64; SOURCES],
}

impl DnsCounts {
    /// Counts one answer: `response` over TCP or not, and its time when it was sampled
    /// (`hit`: from the front cache).
    pub fn count(&mut self, tcp: bool, response: &[u8], name_len: usize, timed: Option<(bool, Duration)>) {
        let Some(header) = response.get(..12) else { return };
        self.rcodes[usize::from(tcp)][usize::from(header[3] & 0x0f)] += 1;
        let qtype = response.get(12 + name_len..14 + name_len).map_or(0, |t| u16::from_be_bytes([t[0], t[1]]));
        let at = QTYPES.iter().position(|(t, _)| *t == qtype).unwrap_or(QTYPES.len());
        self.qtypes[at] += 1;
        if let Some((hit, took)) = timed {
            self.time(if hit { Source::DnsCache } else { Source::DnsRegistry }, took);
        }
    }

    /// Counts one timed answer from `source`.
    pub fn time(&mut self, source: Source, took: Duration) {
        let us = took.as_micros();
        let bucket = LATENCY_BOUNDS_US.iter().position(|b| us <= u128::from(*b)).unwrap_or(LATENCY_BOUNDS_US.len());
        self.latency[source as usize][bucket] += 1;
        self.latency_sum[source as usize] += took.as_secs_f64();
    }

    pub(super) fn add(&mut self, other: &DnsCounts) {
        for (mine, theirs) in self.rcodes.iter_mut().flatten().zip(other.rcodes.iter().flatten()) {
            *mine += theirs;
        }
        for (mine, theirs) in self.qtypes.iter_mut().zip(other.qtypes) {
            *mine += theirs;
        }
        for (mine, theirs) in self.latency.iter_mut().flatten().zip(other.latency.iter().flatten()) {
            *mine += theirs;
        }
        for (mine, theirs) in self.latency_sum.iter_mut().zip(other.latency_sum) {
            *mine += theirs;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_counted_by_rcode_type_and_time() {
        let mut counts = DnsCounts::default();
        // Header (NXDOMAIN), the name `\x01a\x00` (3 bytes), type TXT.
        let response = [0, 0, 0x84, 0x03, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'a', 0, 0, 16, 0, 1];
        counts.count(false, &response, 3, Some((true, Duration::from_micros(3))));
        counts.count(true, &response, 3, Some((false, Duration::from_millis(50))));
        counts.count(true, &response[..12], 3, None);
        assert_eq!((counts.rcodes[0][3], counts.rcodes[1][3]), (1, 2));
        assert_eq!((counts.qtypes[0], counts.qtypes[QTYPES.len()]), (2, 1), "TXT twice, a cut answer as other");
        assert_eq!(counts.latency[0][2], 1, "3 us: the 5 us bucket");
        assert_eq!(counts.latency[1][LATENCY_BOUNDS_US.len()], 1, "50 ms: +Inf");
        counts.time(Source::Http, Duration::from_micros(700));
        assert_eq!(counts.latency[Source::Http as usize][8], 1, "700 us: the 1 ms bucket");
        let mut total = DnsCounts::default();
        total.add(&counts);
        total.add(&counts);
        assert_eq!(total.rcodes[1][3], 4);
    }
}
