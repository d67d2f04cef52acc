//! Decoding a page record by record: a page is a JSON array, and each of its records is read on
//! its own, so one record of the wrong shape (no `id`, a number where text belongs) is skipped
//! and counted instead of failing the page, and the poll goes on with the rest.
//!
//! The page is first split into borrowed raw records (no copy, no value tree), then each record
//! is decoded with the lenient types of [`model`](super::model): the cost over decoding the
//! array at once is one extra scan of the bytes.
//!
//! A body that is not an array at all (an object, HTML) is not a page: that is
//! [`Error::Decode`](super::Error::Decode) as before.

use std::fmt;

use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

/// The largest body the client reads (after decompression); a larger answer is a decode error,
/// not an unbounded allocation. A full page of 100 deployment logs is about 200 KB; env0's
/// `output` and `error` fields can make records large, so the limit leaves ample room.
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// Why a record of a page was skipped, a bounded label value of
/// `env0_exporter_skipped_records_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SkipReason {
    /// The record is an object without an `id`, or with a null one.
    MissingId,
    /// The record is not an object, its `id` is not a string, or a field the exporter cannot do
    /// without has the wrong type.
    WrongShape,
}

impl SkipReason {
    /// Every reason, for pre-creating the series at 0.
    pub const ALL: [Self; 2] = [Self::MissingId, Self::WrongShape];

    /// The label value: `missing_id` or `wrong_shape`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MissingId => "missing_id",
            Self::WrongShape => "wrong_shape",
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body of `response`, read chunk by chunk up to [`MAX_BODY_BYTES`]; `None` when it is
/// larger (said by `Content-Length` up front, or found while reading), so memory stays bounded.
///
/// # Errors
/// When the body breaks off.
pub(super) async fn read_body(mut response: reqwest::Response) -> reqwest::Result<Option<Vec<u8>>> {
    let declared = response.content_length().unwrap_or(0);
    if usize::try_from(declared).map_or(true, |n| n > MAX_BODY_BYTES) {
        return Ok(None);
    }
    // The declared length is only a hint (a compressed body is longer once decoded).
    let mut body = Vec::with_capacity(usize::try_from(declared).unwrap_or(0));
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

/// A decoded page: the records that could be read, and why each other one was skipped.
#[derive(Debug)]
pub struct Page<T> {
    /// The readable records, in the page's order.
    pub records: Vec<T>,
    /// One reason per skipped record.
    pub skipped: Vec<SkipReason>,
    /// The number of records the page held, readable or not: the paging loop moves its offset
    /// by this, so a skipped record does not end the listing early.
    pub len: usize,
}

/// Decodes a JSON array record by record.
///
/// # Errors
/// When `body` is not a JSON array (the records inside may be anything).
pub fn decode_records<T: DeserializeOwned>(body: &[u8]) -> serde_json::Result<Page<T>> {
    let raw: Vec<&RawValue> = serde_json::from_slice(body)?;
    let len = raw.len();
    let mut records = Vec::with_capacity(len);
    let mut skipped = Vec::new();
    for record in raw {
        match serde_json::from_str::<T>(record.get()) {
            Ok(value) => records.push(value),
            Err(e) => {
                let reason = skip_reason(record);
                tracing::debug!(%reason, error = %e, "skipping an unreadable record");
                skipped.push(reason);
            }
        }
    }
    Ok(Page {
        records,
        skipped,
        len,
    })
}

/// `MissingId` for an object whose `id` is absent or null, `WrongShape` for anything else.
fn skip_reason(record: &RawValue) -> SkipReason {
    #[derive(serde::Deserialize)]
    struct IdOnly<'a> {
        #[serde(borrow)]
        id: Option<std::borrow::Cow<'a, str>>,
    }
    match serde_json::from_str::<IdOnly<'_>>(record.get()) {
        Ok(IdOnly { id: None }) => SkipReason::MissingId,
        _ => SkipReason::WrongShape,
    }
}

impl<T> From<Vec<T>> for Page<T> {
    fn from(records: Vec<T>) -> Self {
        Self {
            len: records.len(),
            records,
            skipped: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::DeploymentLog;

    #[test]
    fn records_without_an_id_or_of_the_wrong_shape_are_skipped_and_the_rest_kept() {
        let page: Page<DeploymentLog> = decode_records(
            br#"[{"id":"a","status":"SUCCESS"},{"status":"FAILURE"},{"id":null},
                {"id":"b","status":7},17,"text",{"id":"c","resourceCount":"twelve"}]"#,
        )
        .expect("an array");
        let ids: Vec<&str> = page.records.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["a", "c"]);
        assert_eq!(page.len, 7);
        assert_eq!(
            page.skipped,
            [
                SkipReason::MissingId,
                SkipReason::MissingId,
                SkipReason::WrongShape,
                SkipReason::WrongShape,
                SkipReason::WrongShape,
            ]
        );
    }

    #[test]
    fn a_body_that_is_not_an_array_is_an_error() {
        for body in [&br#"{"data":[]}"#[..], b"<html>", b"", b"[1,"] {
            assert!(decode_records::<DeploymentLog>(body).is_err());
        }
    }

    #[test]
    fn escaped_ids_are_read() {
        let page: Page<DeploymentLog> =
            decode_records(br#"[{"id":"a\"b"},{"id":"\u00e9","type":1}]"#).expect("an array");
        assert_eq!(page.records.len(), 1);
        assert_eq!(page.records[0].id, "a\"b");
        assert_eq!(page.skipped, [SkipReason::WrongShape]);
    }
}
