//! The scrape body, encoded once per change and kept with its gzip form, so a scrape costs a
//! copy of bytes rather than an encoding of every series.
//!
//! The body is a function of three things: the published snapshot (a poll or a webhook bumps
//! its version), the registered counters and histograms (reachable only through [`Live::change`],
//! which counts every change), and the request budget left, which the sliding window moves as
//! time passes. The cache is keyed on all three; any difference encodes afresh.

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;

/// The registered families, reachable only through [`Live::change`], which counts every change
/// after it is made: the cached body is keyed on that count, so no change to a registered metric
/// can miss the next scrape, whoever makes it.
///
/// The count moves after the change, never before: a scrape encoding in between encodes under
/// the old count (whatever of the change it saw), and the next scrape encodes again.
#[derive(Debug)]
pub(crate) struct Live<T> {
    families: T,
    changes: AtomicU64,
}

impl<T> Live<T> {
    /// Holds `families`; nothing else may keep a handle that changes them.
    pub(crate) fn new(families: T) -> Self {
        Self {
            families,
            changes: AtomicU64::new(0),
        }
    }

    /// Changes the families through `f`, then counts the change.
    pub(crate) fn change<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        let result = f(&self.families);
        self.changes.fetch_add(1, Ordering::Release);
        result
    }

    /// Changes so far.
    pub(crate) fn changes(&self) -> u64 {
        self.changes.load(Ordering::Acquire)
    }
}

/// What a body was encoded from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Key {
    /// Version of the published snapshot.
    pub(crate) snapshot: u64,
    /// [`Live::changes`] of the registered families.
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
pub(crate) struct Cache {
    slots: Mutex<Slots>,
    /// Per format: a scrape is encoding a new body now.
    encoding: [AtomicBool; 2],
}

/// Clears a format's "encoding" flag when the encoding ends, however it ends.
struct Encoding<'a>(&'a AtomicBool);

impl Drop for Encoding<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl Cache {
    /// The body [`get_or_encode`](Self::get_or_encode) would give without encoding, if any: the
    /// body of `key`, or the previous one while another scrape encodes.
    pub(crate) fn ready(&self, format: usize, key: Key) -> Option<Arc<Body>> {
        match &self.lock()[format] {
            Some((cached, body))
                if *cached == key || self.encoding[format].load(Ordering::Acquire) =>
            {
                Some(body.clone())
            }
            _ => None,
        }
    }

    /// The body of `format` (0 text, 1 `OpenMetrics`) for `key`, encoding it with `encode` when
    /// the cached one is of another key.
    ///
    /// One scrape encodes at a time per format: while it does, concurrent scrapes get the
    /// previous body (older by at most that encoding) instead of each encoding the same body
    /// again. Under 50 concurrent scrapers of a 10,000-environment organisation, where every
    /// request a poll makes changes the key, encoding in every scrape took the CPU from serving.
    /// The lock is not held while encoding, so a slow encoding never queues scrapes behind it.
    pub(crate) fn get_or_encode(
        &self,
        format: usize,
        key: Key,
        encode: impl FnOnce() -> Result<String, std::fmt::Error>,
    ) -> Result<Arc<Body>, std::fmt::Error> {
        let stale = match &self.lock()[format] {
            Some((cached, body)) if *cached == key => return Ok(body.clone()),
            Some((_, body)) => Some(body.clone()),
            None => None,
        };
        let flag = &self.encoding[format];
        if let Some(stale) = stale
            && flag.swap(true, Ordering::AcqRel)
        {
            return Ok(stale);
        }
        flag.store(true, Ordering::Release);
        let _encoding = Encoding(flag);
        let text = encode()?;
        let body = Arc::new(Body {
            gzip: gzip(text.as_bytes()),
            plain: Bytes::from(text),
        });
        self.lock()[format] = Some((key, body.clone()));
        Ok(body)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
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
    fn while_one_scrape_encodes_the_others_get_the_previous_body_instead_of_encoding() {
        let cache = Cache::default();
        let old = cache
            .get_or_encode(0, key(1, 1, 1), || Ok("old".to_owned()))
            .unwrap();
        assert_eq!(old.plain, "old");
        let inner = cache
            .get_or_encode(0, key(2, 2, 2), || {
                // A concurrent scrape, while this one encodes: served the previous body.
                let concurrent = cache
                    .get_or_encode(0, key(2, 2, 2), || panic!("encoded twice"))
                    .unwrap();
                assert_eq!(concurrent.plain, "old");
                Ok("new".to_owned())
            })
            .unwrap();
        assert_eq!(inner.plain, "new");
        // The encoding ended: the next scrape of a newer key encodes again.
        let next = cache
            .get_or_encode(0, key(3, 3, 3), || Ok("next".to_owned()))
            .unwrap();
        assert_eq!(next.plain, "next");
        // A failed encoding does not leave the flag set.
        assert!(
            cache
                .get_or_encode(0, key(4, 4, 4), || Err(std::fmt::Error))
                .is_err()
        );
        let after = cache
            .get_or_encode(0, key(4, 4, 4), || Ok("after".to_owned()))
            .unwrap();
        assert_eq!(after.plain, "after");
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
