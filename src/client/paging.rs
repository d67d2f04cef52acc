//! The offset paging loop of env0's listings, with deduplication by id.
//!
//! env0 answers a bare JSON array per page: no total, no cursor. The loop asks for `limit` items
//! at `offset`, moves `offset` on by the length of the page it got, and stops at the first page
//! shorter than `limit`. Items created while paging shift later pages, so an item may come twice:
//! the first occurrence wins. A server that never sends a short page stops the loop after
//! [`MAX_PAGES`] pages with [`Error::Decode`]. A caller that needs only the newest items of a
//! listing ordered newest first says when a full page is enough ([`fetch_until`]): the loop
//! then stops there instead of reading the listing's whole history.

use std::collections::HashSet;
use std::future::Future;

use super::error::{Error, Result};
use super::model::Identified;
use super::records::Page;

/// Items per page asked for (env0's maximum).
pub const PAGE_LIMIT: usize = 100;

/// Pages after which a listing that never ends is given up (a million items at 100 per page).
pub const MAX_PAGES: usize = 10_000;

/// Fetches every page through `fetch_page(offset)` and returns the items, duplicates dropped.
///
/// `path` names the listing in the error when the pages never end.
///
/// # Errors
/// The first error of `fetch_page`, or [`Error::Decode`] after `max_pages` full pages.
pub(super) async fn fetch_all<T, P, F, Fut>(
    path: &str,
    limit: usize,
    max_pages: usize,
    fetch_page: F,
) -> Result<Vec<T>>
where
    T: Identified,
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Result<P>>,
    P: Into<Page<T>>,
{
    fetch_until(path, limit, max_pages, |_: &[T]| false, fetch_page).await
}

/// Like [`fetch_all`], also stopping after a full page for which `enough(records of the page)`
/// holds: the items up to and including that page are returned.
///
/// # Errors
/// As [`fetch_all`].
pub(super) async fn fetch_until<T, P, F, Fut>(
    path: &str,
    limit: usize,
    max_pages: usize,
    enough: impl FnMut(&[T]) -> bool,
    fetch_page: F,
) -> Result<Vec<T>>
where
    T: Identified,
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Result<P>>,
    P: Into<Page<T>>,
{
    let mut items = Vec::new();
    visit(path, limit, max_pages, 0, enough, fetch_page, |page| {
        items.extend(page);
    })
    .await?;
    Ok(items)
}

/// The paging loop: hands each page's items not seen on an earlier page to `on_page` as the
/// page arrives (an empty list when it held none), so the caller need not hold the whole
/// listing; returns the ids of the items listed (made with room for `capacity`). Stops as
/// [`fetch_until`] does; on an error, the pages before it have been handed over.
///
/// # Errors
/// As [`fetch_all`].
pub(super) async fn visit<T, P, F, Fut>(
    path: &str,
    limit: usize,
    max_pages: usize,
    capacity: usize,
    mut enough: impl FnMut(&[T]) -> bool,
    mut fetch_page: F,
    mut on_page: impl FnMut(Vec<T>),
) -> Result<HashSet<String>>
where
    T: Identified,
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Result<P>>,
    P: Into<Page<T>>,
{
    let mut seen = HashSet::with_capacity(capacity);
    let mut offset = 0;
    let mut duplicates = 0_usize;
    for _ in 0..max_pages {
        let mut page: Page<T> = fetch_page(offset).await?.into();
        // Skipped records count: a page with one unreadable record is still a full page.
        let len = page.len;
        let stop = len >= limit && enough(&page.records);
        let before = page.records.len();
        page.records
            .retain(|item| seen.insert(item.id().to_owned()));
        duplicates += before - page.records.len();
        on_page(page.records);
        if len < limit {
            if duplicates > 0 {
                tracing::debug!(path, duplicates, "dropped items seen on an earlier page");
            }
            return Ok(seen);
        }
        if stop {
            tracing::debug!(
                path,
                pages = offset / limit.max(1) + 1,
                "stopped paging: the rest is older than needed"
            );
            return Ok(seen);
        }
        offset += len;
    }
    Err(Error::Decode {
        path: path.to_owned(),
        message: format!("no page shorter than {limit} after {max_pages} pages"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct Item(String);

    impl Identified for Item {
        fn id(&self) -> &str {
            &self.0
        }
    }

    fn items(range: std::ops::Range<usize>) -> Vec<Item> {
        range.map(|i| Item(format!("i{i}"))).collect()
    }

    /// Runs the loop over a fixed list of `total` items, recording the offsets asked for.
    async fn run(total: usize, limit: usize) -> (Vec<usize>, Result<Vec<Item>>) {
        let mut offsets = Vec::new();
        let result = fetch_all("/x", limit, 100, |offset| {
            offsets.push(offset);
            let end = (offset + limit).min(total);
            std::future::ready(Ok(items(offset.min(total)..end)))
        })
        .await;
        (offsets, result)
    }

    #[tokio::test]
    async fn paging_moves_by_the_page_length_and_stops_at_the_short_page() {
        let (offsets, result) = run(25, 10).await;
        assert_eq!(offsets, [0, 10, 20]);
        assert_eq!(result.expect("pages").len(), 25);
    }

    #[tokio::test]
    async fn an_exact_multiple_of_the_limit_needs_one_empty_page_to_end() {
        let (offsets, result) = run(20, 10).await;
        assert_eq!(offsets, [0, 10, 20]);
        assert_eq!(result.expect("pages").len(), 20);
        let (offsets, result) = run(0, 10).await;
        assert_eq!(offsets, [0]);
        assert!(result.expect("pages").is_empty());
    }

    #[tokio::test]
    async fn items_seen_before_are_dropped_and_the_first_occurrence_wins() {
        let pages = [
            vec![Item("a".into()), Item("b".into())],
            vec![Item("b".into()), Item("c".into())],
            vec![Item("a".into())],
        ];
        let mut pages = pages.into_iter();
        let result = fetch_all("/x", 2, 100, |_| {
            std::future::ready(Ok(pages.next().unwrap_or_default()))
        })
        .await;
        assert_eq!(
            result.expect("pages"),
            [Item("a".into()), Item("b".into()), Item("c".into())]
        );
    }

    #[tokio::test]
    async fn a_listing_that_never_ends_is_given_up_with_a_decode_error() {
        let mut calls = 0;
        let result = fetch_all("/x", 2, 5, |offset| {
            calls += 1;
            std::future::ready(Ok(items(offset..offset + 2)))
        })
        .await;
        assert_eq!(calls, 5);
        assert!(
            matches!(&result, Err(Error::Decode { path, message })
                if path == "/x" && message == "no page shorter than 2 after 5 pages"),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn a_full_page_that_is_enough_ends_the_listing_and_a_short_one_always_does() {
        // Items newest first: i0 the newest. Enough once a page holds only items from i15 on.
        let older = |page: &[Item]| {
            page.iter()
                .all(|i| i.0[1..].parse::<usize>().unwrap() >= 15)
        };
        let mut offsets = Vec::new();
        let result = fetch_until("/x", 10, 100, older, |offset| {
            offsets.push(offset);
            std::future::ready(Ok(items(offset..(offset + 10).min(95))))
        })
        .await;
        assert_eq!(offsets, [0, 10, 20]);
        assert_eq!(result.expect("pages").len(), 30);
        // Never enough: every page is read.
        let mut calls = 0;
        let result = fetch_until(
            "/x",
            10,
            100,
            |_: &[Item]| false,
            |offset| {
                calls += 1;
                std::future::ready(Ok(items(offset..(offset + 10).min(95))))
            },
        )
        .await;
        assert_eq!((calls, result.expect("pages").len()), (10, 95));
    }

    #[tokio::test]
    async fn each_page_is_handed_over_as_it_arrives_without_the_items_seen_before() {
        let pages = [
            vec![Item("a".into()), Item("b".into())],
            vec![Item("b".into()), Item("b".into())],
            vec![Item("c".into())],
        ];
        let mut pages = pages.into_iter();
        // The pages handed over so far, as each next page is asked for.
        let handed = std::cell::RefCell::new(Vec::new());
        let mut seen_at_fetch = Vec::new();
        let ids = visit(
            "/x",
            2,
            100,
            0,
            |_: &[Item]| false,
            |_| {
                seen_at_fetch.push(handed.borrow().len());
                std::future::ready(Ok(pages.next().unwrap_or_default()))
            },
            |page| handed.borrow_mut().push(page),
        )
        .await
        .expect("pages");
        assert_eq!(
            seen_at_fetch,
            [0, 1, 2],
            "each page before the next is asked for"
        );
        assert_eq!(
            handed.into_inner(),
            [
                vec![Item("a".into()), Item("b".into())],
                vec![],
                vec![Item("c".into())]
            ]
        );
        let mut ids: Vec<String> = ids.into_iter().collect();
        ids.sort();
        assert_eq!(ids, ["a", "b", "c"]);
    }

    #[tokio::test]
    async fn a_failing_page_ends_the_visit_after_the_pages_before_it() {
        let mut handed = Vec::new();
        let result = visit(
            "/x",
            2,
            5,
            0,
            |_: &[Item]| false,
            |offset| {
                std::future::ready(if offset < 4 {
                    Ok(items(offset..offset + 2))
                } else {
                    Err(Error::Timeout { path: "/x".into() })
                })
            },
            |page| handed.push(page),
        )
        .await;
        assert!(matches!(result, Err(Error::Timeout { .. })));
        assert_eq!(handed, [items(0..2), items(2..4)]);
    }

    #[tokio::test]
    async fn the_first_failing_page_fails_the_listing() {
        let result: Result<Vec<Item>> = fetch_all("/x", 2, 5, |offset| {
            std::future::ready(if offset == 0 {
                Ok(items(0..2))
            } else {
                Err(Error::Timeout { path: "/x".into() })
            })
        })
        .await;
        assert!(matches!(result, Err(Error::Timeout { .. })));
    }
}
