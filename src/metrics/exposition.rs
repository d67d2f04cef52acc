//! The scrape body, encoded once per change and kept with its gzip form, so a scrape costs a
//! copy of bytes rather than an encoding of every series.
//!
//! The body is a function of three things: the published snapshot (a poll or a webhook bumps
//! its version), the registered counters and histograms (every change goes through a `Metrics`
//! method that bumps [`Changes`]), and the request budget left, which the sliding window moves as
//! time passes. The cache is keyed on all three; any difference encodes afresh.

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;

/// Counts changes to the registered families (a counter incremented, a series created).
#[derive(Debug, Default)]
pub(crate) struct Changes(AtomicU64);

impl Changes {
    /// Notes one change.
    pub(crate) fn bump(&self) {
        self.0.fetch_add(1, Ordering::Release);
    }

    /// Changes so far.
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
}

/// What a body was encoded from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Key {
    /// Version of the published snapshot.
    pub(crate) snapshot: u64,
    /// [`Changes`] of the registered families.
    pub(crate) changes: u64,
    /// The request budget left.
    pub(crate) budget: u32,
}

/// One exposition format's bodies, plain and gzip.
#[derive(Debug, Clone)]
pub struct Body {
    /// The text as served without compression.
    pub plain: Bytes,
    /// The same text, gzip-compressed.
    pub gzip: Bytes,
}

/// The last body of each format (Prometheus text, `OpenMetrics`), with what it was encoded from.
type Slots = [Option<(Key, Arc<Body>)>; 2];

/// The last bodies encoded, per format.
#[derive(Debug, Default)]
pub(crate) struct Cache(Mutex<Slots>);

impl Cache {
    /// The body of `format` (0 text, 1 `OpenMetrics`) for `key`, encoding it with `encode` when
    /// the cached one is of another key. Concurrent scrapes of a stale body may both encode;
    /// the lock is not held while encoding, so a slow encoding never queues scrapes behind it.
    pub(crate) fn get_or_encode(
        &self,
        format: usize,
        key: Key,
        encode: impl FnOnce() -> Result<String, std::fmt::Error>,
    ) -> Result<Arc<Body>, std::fmt::Error> {
        if let Some((cached, body)) = &self.lock()[format]
            && *cached == key
        {
            return Ok(body.clone());
        }
        let text = encode()?;
        let body = Arc::new(Body {
            gzip: gzip(text.as_bytes()),
            plain: Bytes::from(text),
        });
        self.lock()[format] = Some((key, body.clone()));
        Ok(body)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `data`, gzip-compressed at a fast level (scrapes repeat; the body is highly redundant).
fn gzip(data: &[u8]) -> Bytes {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 8),
        flate2::Compression::fast(),
    );
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(data);
    Bytes::from(encoder.finish().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    fn key(snapshot: u64, changes: u64, budget: u32) -> Key {
        Key {
            snapshot,
            changes,
            budget,
        }
    }

    #[test]
    fn a_body_is_encoded_once_per_key_and_again_when_any_part_changes() {
        let cache = Cache::default();
        let encodings = std::cell::Cell::new(0);
        let encode = |text: &'static str| {
            let encodings = &encodings;
            move || {
                encodings.set(encodings.get() + 1);
                Ok(text.to_owned())
            }
        };
        let a = cache.get_or_encode(0, key(1, 1, 10), encode("a")).unwrap();
        let again = cache.get_or_encode(0, key(1, 1, 10), encode("x")).unwrap();
        assert_eq!(
            (a.plain.clone(), again.plain.clone()),
            ("a".into(), "a".into())
        );
        assert_eq!(encodings.get(), 1);
        for (i, k) in [key(2, 1, 10), key(2, 2, 10), key(2, 2, 9)]
            .into_iter()
            .enumerate()
        {
            let body = cache.get_or_encode(0, k, encode("b")).unwrap();
            assert_eq!(body.plain, "b");
            assert_eq!(encodings.get(), 2 + i);
        }
        // The other format has its own slot.
        let om = cache.get_or_encode(1, key(2, 2, 9), encode("om")).unwrap();
        assert_eq!(om.plain, "om");
    }

    #[test]
    fn the_gzip_body_inflates_to_the_plain_one() {
        let cache = Cache::default();
        let text = "env0_up 1\n".repeat(1000);
        let body = cache
            .get_or_encode(0, key(0, 0, 0), || Ok(text.clone()))
            .unwrap();
        let mut inflated = String::new();
        flate2::read::GzDecoder::new(&body.gzip[..])
            .read_to_string(&mut inflated)
            .unwrap();
        assert_eq!(inflated, text);
        assert!(
            body.gzip.len() * 20 < body.plain.len(),
            "repetitive text compresses"
        );
    }
}
