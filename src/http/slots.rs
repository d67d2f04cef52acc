//! The connection limit: at most `max` connections are open at once, and a connection that is
//! doing nothing gives its place to a new one.
//!
//! A plain semaphore would let whoever opens `max` idle connections first (or trickles one byte
//! a second into each, the slow-loris attack) lock every scraper out until the header timeout
//! closes them. Here, a connection is *busy* only while a request it sent in full is being
//! answered; the rest of the time (the TLS handshake, waiting for or reading request headers,
//! keep-alive) it is idle. When every place is taken, a new connection takes the place of the
//! connection idle the longest, which is closed; only when all are busy is the new one refused.
//! So a scraper gets in at once however many idle connections are held open, and what it costs an
//! attacker to keep it out is as many requests in flight as there are places.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use tokio::sync::Notify;

/// The open connections of one listener.
#[derive(Debug)]
pub(crate) struct Slots {
    max: usize,
    table: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    next_id: u64,
    open: HashMap<u64, Entry>,
    /// Connections closed to make room, since the listener opened.
    evicted: u64,
}

#[derive(Debug)]
struct Entry {
    /// When the connection last became idle; `None` while it is answering a request.
    idle_since: Option<Instant>,
    /// Told when the connection must close to make room.
    evict: Arc<Notify>,
}

impl Slots {
    /// A limit of `max` open connections (at least one).
    pub(crate) fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max: max.max(1),
            table: Mutex::new(Table::default()),
        })
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A place for a new connection, closing the connection idle the longest when every place is
    /// taken; `None` when every open connection is busy.
    pub(crate) fn admit(self: &Arc<Self>) -> Option<Slot> {
        let mut table = self.table();
        if table.open.len() >= self.max {
            let oldest = table
                .open
                .iter()
                .filter_map(|(id, e)| e.idle_since.map(|t| (t, *id)))
                .min()
                .map(|(_, id)| id)?;
            if let Some(entry) = table.open.remove(&oldest) {
                entry.evict.notify_one();
                table.evicted += 1;
            }
        }
        let id = table.next_id;
        table.next_id += 1;
        let evict = Arc::new(Notify::new());
        table.open.insert(
            id,
            Entry {
                idle_since: Some(Instant::now()),
                evict: evict.clone(),
            },
        );
        Some(Slot {
            id,
            slots: self.clone(),
            evict,
        })
    }

    /// Connections open now.
    #[cfg(test)]
    pub(crate) fn open(&self) -> usize {
        self.table().open.len()
    }

    /// Connections closed to make room so far.
    pub(crate) fn evicted(&self) -> u64 {
        self.table().evicted
    }

    fn set_idle(&self, id: u64, idle: bool) {
        if let Some(entry) = self.table().open.get_mut(&id) {
            entry.idle_since = idle.then(Instant::now);
        }
    }
}

/// One connection's place; dropping it frees the place.
#[derive(Debug)]
pub(crate) struct Slot {
    id: u64,
    slots: Arc<Slots>,
    evict: Arc<Notify>,
}

impl Slot {
    /// Completes when the connection must close to make room for a new one.
    pub(crate) async fn evicted(&self) {
        self.evict.notified().await;
    }

    /// Marks the connection busy until the returned guard is dropped.
    pub(crate) fn busy(&self) -> Busy {
        self.slots.set_idle(self.id, false);
        Busy {
            id: self.id,
            slots: self.slots.clone(),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots.table().open.remove(&self.id);
    }
}

/// A request being answered: its connection cannot be closed to make room.
#[derive(Debug)]
pub(crate) struct Busy {
    id: u64,
    slots: Arc<Slots>,
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.slots.set_idle(self.id, true);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_full_table_closes_the_connection_idle_the_longest() {
        let slots = Slots::new(2);
        let first = slots.admit().unwrap();
        std::thread::sleep(Duration::from_millis(2));
        let second = slots.admit().unwrap();
        let third = slots.admit().unwrap();
        assert_eq!(slots.open(), 2);
        assert_eq!(slots.evicted(), 1);
        // The first was told to close; the second was not.
        tokio::time::timeout(Duration::from_secs(1), first.evicted())
            .await
            .unwrap();
        assert!(
            tokio::time::timeout(Duration::from_millis(20), second.evicted())
                .await
                .is_err()
        );
        drop(first);
        assert_eq!(
            slots.open(),
            2,
            "an evicted slot's drop frees nothing twice"
        );
        drop((second, third));
        assert_eq!(slots.open(), 0);
    }

    #[test]
    fn busy_connections_are_never_closed_and_a_full_busy_table_refuses() {
        let slots = Slots::new(2);
        let a = slots.admit().unwrap();
        let b = slots.admit().unwrap();
        let busy_a = a.busy();
        let _busy_b = b.busy();
        assert!(slots.admit().is_none(), "every connection is answering");
        drop(busy_a);
        let c = slots.admit().unwrap();
        assert_eq!(slots.evicted(), 1, "a, idle again, made room");
        drop(c);
    }
}
