//! The scrape body, encoded once per change and kept gzip-compressed only, so a scrape costs a
//! copy of bytes rather than an encoding of every series.
//!
//! The body is a function of three things: the published snapshot (a poll or a webhook bumps
//! its version), the registered counters and histograms (reachable only through [`Live::change`],
//! which counts every change), and the request budget left, which the sliding window moves as
//! time passes. The cache is keyed on all three; any difference encodes afresh.
//!
//! Only the gzip form is kept: at 200,000 deployments the text is about 1.9 MB a format and its
//! gzip form about 0.15 MB. The text is encoded straight into the compressor (never held whole),
//! and a scrape that does not take gzip is sent the text inflated from it a chunk at a time
//! ([`Body::plain_chunks`]), so no copy of the whole text is ever held.

use std::fmt;
use std::io::{Read as _, Write as _};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::{Buf as _, Bytes};
use flate2::bufread::GzDecoder;

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

/// One exposition format's body, kept gzip-compressed.
#[derive(Debug, Clone)]
pub struct Body {
    /// The text, gzip-compressed.
    pub gzip: Bytes,
    /// Length in bytes of the text uncompressed (`Content-Length` of an uncompressed scrape).
    pub plain_len: usize,
}

/// Bytes of text inflated per chunk of an uncompressed scrape: what each such scrape holds at a
/// time, beside the inflater's 32 KiB window.
const PLAIN_CHUNK: usize = 16 * 1024;

impl Body {
    /// The text uncompressed, whole (tests and small callers; a scrape takes
    /// [`plain_chunks`](Self::plain_chunks)).
    #[must_use]
    pub fn plain(&self) -> Bytes {
        let mut text = Vec::with_capacity(self.plain_len);
        for chunk in self.plain_chunks() {
            text.extend_from_slice(&chunk);
        }
        Bytes::from(text)
    }

    /// The text uncompressed, inflated from the gzip body a chunk at a time as it is taken.
    #[must_use]
    pub fn plain_chunks(&self) -> PlainChunks {
        PlainChunks {
            decoder: GzDecoder::new(self.gzip.clone().reader()),
            left: self.plain_len,
        }
    }
}

/// The chunks of [`Body::plain_chunks`].
pub struct PlainChunks {
    decoder: GzDecoder<bytes::buf::Reader<Bytes>>,
    /// Bytes of text not yet given.
    left: usize,
}

impl fmt::Debug for PlainChunks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlainChunks")
            .field("left", &self.left)
            .finish_non_exhaustive()
    }
}

impl Iterator for PlainChunks {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        if self.left == 0 {
            return None;
        }
        let mut chunk = vec![0; PLAIN_CHUNK.min(self.left)];
        let mut filled = 0;
        while filled < chunk.len() {
            match self.decoder.read(&mut chunk[filled..]) {
                Ok(0) | Err(_) => break,
                Ok(n) => filled += n,
            }
        }
        // The body was compressed here from `plain_len` bytes: it inflates to exactly that many.
        // Should it ever not, the response ends short rather than claiming bytes it lacks.
        if filled == 0 {
            self.left = 0;
            return None;
        }
        chunk.truncate(filled);
        self.left -= filled;
        Some(Bytes::from(chunk))
    }
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
        encode: impl FnOnce(&mut dyn fmt::Write) -> fmt::Result,
    ) -> Result<Arc<Body>, fmt::Error> {
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
        let body = Arc::new(compress(encode)?);
        self.lock()[format] = Some((key, body.clone()));
        Ok(body)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Text buffered before it goes to the compressor: the encoder writes many short pieces (a
/// label, a value), which deflate takes better in larger runs.
const GZIP_INPUT_BUFFER: usize = 32 * 1024;

/// The text `encode` writes, gzip-compressed at a fast level as it is written (scrapes repeat;
/// the body is highly redundant): the text is never held whole.
fn compress(encode: impl FnOnce(&mut dyn fmt::Write) -> fmt::Result) -> Result<Body, fmt::Error> {
    let mut sink = GzipSink {
        buffer: String::with_capacity(GZIP_INPUT_BUFFER),
        encoder: flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()),
        len: 0,
    };
    encode(&mut sink)?;
    sink.flush();
    let plain_len = sink.len;
    // Writing into a Vec cannot fail.
    let mut gzip = sink.encoder.finish().unwrap_or_default();
    gzip.shrink_to_fit();
    Ok(Body {
        gzip: Bytes::from(gzip),
        plain_len,
    })
}

/// A [`fmt::Write`] that compresses what is written to it.
struct GzipSink {
    buffer: String,
    encoder: flate2::write::GzEncoder<Vec<u8>>,
    /// Bytes of text written.
    len: usize,
}

impl GzipSink {
    fn flush(&mut self) {
        // Writing into a Vec cannot fail.
        let _ = self.encoder.write_all(self.buffer.as_bytes());
        self.buffer.clear();
    }
}

impl fmt::Write for GzipSink {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.len += s.len();
        if self.buffer.len() + s.len() > GZIP_INPUT_BUFFER {
            self.flush();
        }
        if s.len() > GZIP_INPUT_BUFFER {
            let _ = self.encoder.write_all(s.as_bytes());
        } else {
            self.buffer.push_str(s);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An encoding that writes `text`.
    fn writes(text: &str) -> impl FnOnce(&mut dyn fmt::Write) -> fmt::Result + '_ {
        move |out| out.write_str(text)
    }

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
            move |out: &mut dyn fmt::Write| {
                encodings.set(encodings.get() + 1);
                out.write_str(text)
            }
        };
        let a = cache.get_or_encode(0, key(1, 1, 10), encode("a")).unwrap();
        let again = cache.get_or_encode(0, key(1, 1, 10), encode("x")).unwrap();
        assert_eq!((a.plain(), again.plain()), ("a".into(), "a".into()));
        assert_eq!(encodings.get(), 1);
        for (i, k) in [key(2, 1, 10), key(2, 2, 10), key(2, 2, 9)]
            .into_iter()
            .enumerate()
        {
            let body = cache.get_or_encode(0, k, encode("b")).unwrap();
            assert_eq!(body.plain(), "b");
            assert_eq!(encodings.get(), 2 + i);
        }
        // The other format has its own slot.
        let om = cache.get_or_encode(1, key(2, 2, 9), encode("om")).unwrap();
        assert_eq!(om.plain(), "om");
    }

    #[test]
    fn while_one_scrape_encodes_the_others_get_the_previous_body_instead_of_encoding() {
        let cache = Cache::default();
        let old = cache.get_or_encode(0, key(1, 1, 1), writes("old")).unwrap();
        assert_eq!(old.plain(), "old");
        let inner = cache
            .get_or_encode(0, key(2, 2, 2), |out| {
                // A concurrent scrape, while this one encodes: served the previous body.
                let concurrent = cache
                    .get_or_encode(0, key(2, 2, 2), |_| panic!("encoded twice"))
                    .unwrap();
                assert_eq!(concurrent.plain(), "old");
                out.write_str("new")
            })
            .unwrap();
        assert_eq!(inner.plain(), "new");
        // The encoding ended: the next scrape of a newer key encodes again.
        let next = cache
            .get_or_encode(0, key(3, 3, 3), writes("next"))
            .unwrap();
        assert_eq!(next.plain(), "next");
        // A failed encoding does not leave the flag set.
        assert!(
            cache
                .get_or_encode(0, key(4, 4, 4), |_| Err(fmt::Error))
                .is_err()
        );
        let after = cache
            .get_or_encode(0, key(4, 4, 4), writes("after"))
            .unwrap();
        assert_eq!(after.plain(), "after");
    }

    #[test]
    fn the_gzip_body_inflates_to_the_text_written_in_any_pieces() {
        use std::io::Read as _;
        // Pieces short and long, across the compressor's input buffer and its chunks, that
        // repeat (as series do) and that do not (as values do).
        let mut rng = fastrand::Rng::with_seed(7);
        let mut pieces: Vec<String> = Vec::new();
        for i in 0..20_000 {
            pieces.push(format!(
                "env0_deployments{{status=\"S{}\"}} {}\n",
                i % 12,
                rng.u64(..)
            ));
            if i % 5_000 == 0 {
                pieces.push("#".repeat(GZIP_INPUT_BUFFER + 1 + i / 100));
            }
        }
        let text: String = pieces.concat();
        assert!(text.len() > 2 * GZIP_INPUT_BUFFER + 3 * PLAIN_CHUNK);
        let cache = Cache::default();
        let body = cache
            .get_or_encode(0, key(0, 0, 0), |out| {
                pieces.iter().try_for_each(|p| out.write_str(p))
            })
            .unwrap();
        assert_eq!(body.plain_len, text.len());
        let mut inflated = String::new();
        flate2::read::GzDecoder::new(&body.gzip[..])
            .read_to_string(&mut inflated)
            .unwrap();
        assert_eq!(inflated, text, "the gzip body");
        assert_eq!(body.plain(), text.as_bytes(), "the plain body");
        let chunks: Vec<Bytes> = body.plain_chunks().collect();
        assert!(
            chunks
                .iter()
                .all(|c| !c.is_empty() && c.len() <= PLAIN_CHUNK)
        );
        assert_eq!(chunks.concat(), text.as_bytes(), "the plain body in chunks");
        assert!(
            body.gzip.len() * 3 < text.len(),
            "repetitive text compresses: {} of {}",
            body.gzip.len(),
            text.len()
        );
        // An empty text is an empty body.
        let empty = cache.get_or_encode(1, key(0, 0, 0), writes("")).unwrap();
        assert_eq!((empty.plain_len, empty.plain_chunks().count()), (0, 0));
    }
}
