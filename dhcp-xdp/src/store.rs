//! Where the lease changes a worker makes go before the reply that promises them leaves: the
//! local journal, or (cluster mode) the shared PostgreSQL database. Both group-commit a batch
//! of changes per worker and hand back a ticket the worker polls.

use dhcp_xdp_core::leases::Change;

use crate::journal::{Health, Journal, JournalError};

/// A group-committing lease store.
pub trait LeaseStore: Send + Sync {
    /// Hands numbered `changes` to slot `slot`'s syncer and returns at once: a ticket to poll
    /// with [`settled`](Self::settled), or None when nothing will wait (async durability).
    fn append(&self, slot: usize, changes: &[(u64, Change)]) -> Result<Option<u64>, JournalError>;
    /// Whether `ticket`'s batch is durable (`Some(true)`), never will be (`Some(false)`), or
    /// still on its way (`None`).
    fn settled(&self, slot: usize, ticket: u64) -> Option<bool>;
    /// Changes handed over since start.
    fn records(&self) -> u64;
    /// How writing goes.
    fn health(&self) -> &Health;
    /// What it is, for messages ("lease journal", "lease database").
    fn name(&self) -> &'static str;
    /// Whether the management API's removal `edit` can mean what it says in this store, before
    /// the tables change: a store shared by several nodes refuses to remove what another live
    /// node serves (its next commit would put it back), saying why, and takes the rows of nodes
    /// that are gone out itself (returned: how many). A store of one node agrees to everything.
    fn admin_removal(&self, edit: AdminRemoval) -> Result<u64, String> {
        let _ = edit;
        Ok(0)
    }
}

/// A removal through the management API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminRemoval {
    /// `lease4-del` of the lease on this address.
    Lease(std::net::Ipv4Addr),
    /// `lease4-wipe` of this subnet (None: every subnet).
    Subnet(Option<u32>),
}

impl LeaseStore for Journal {
    fn append(&self, slot: usize, changes: &[(u64, Change)]) -> Result<Option<u64>, JournalError> {
        Journal::append(self, slot, changes)
    }
    fn settled(&self, slot: usize, ticket: u64) -> Option<bool> {
        Journal::settled(self, slot, ticket)
    }
    fn records(&self) -> u64 {
        Journal::records(self)
    }
    fn health(&self) -> &Health {
        &self.health
    }
    fn name(&self) -> &'static str {
        "lease journal"
    }
}
