//! What the engine (or any handler) decides about one frame: reply, reply once durable, or drop
//! with a counted reason. Plain values shared by the sans-IO core and the datapath; nothing here
//! may depend on how frames are received or sent.

/// Where a frame came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameMeta {
    /// NIC receive queue.
    pub queue: u32,
    /// Worker index within that queue (the XDP program's choice by chaddr hash).
    pub worker: u32,
}

/// Why a frame got no reply. Each reason has a counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum DropReason {
    /// Headers or options did not parse (truncated, inconsistent lengths, bad checksum).
    Malformed = 0,
    /// Parsed, but not a message this handler answers.
    NotForUs = 1,
    /// The reply would not fit into the frame buffer.
    NoRoom = 2,
    /// BOOTREPLY or a server message type (OFFER/ACK/NAK) arriving at port 67.
    NotRequest = 3,
    /// Hardware address length above 16.
    BadHlen = 4,
    /// BOOTP request (no option 53) and BOOTP is not answered for this client.
    Bootp = 5,
    /// No configured subnet matches the client's link.
    NoSubnet = 6,
    /// The client's subnets have no free address.
    NoAddress = 7,
    /// REQUEST naming another server: our offer is withdrawn silently.
    OtherServer = 8,
    /// RFC 2131 says to stay silent (unknown client, non-authoritative subnet).
    Silent = 9,
    /// RELEASE or DECLINE handled: no reply is sent by design.
    Consumed = 10,
    /// The lease journal could not be written: replies withheld.
    JournalFailed = 11,
    /// The client's record is in another shard, whose lock could not be had in time (the
    /// client retransmits); frames decided there after the batch are not counted here.
    Redirected = 12,
    /// A reply waited for a journal sync so long that newer replies needed its place: the
    /// disk stalls (the client retransmits).
    JournalStalled = 13,
    /// Relay fields from a sender that is not a trusted relay: giaddr set by a client (source
    /// port not 67), giaddr of our own, or outside `[relays] trusted`.
    UntrustedRelay = 14,
    /// A DECLINE or RELEASE for an address the client does not hold.
    Refused = 15,
    /// Over a `[limits]` quota or rate (per chaddr, circuit or remote id).
    OverLimit = 16,
    /// Cluster mode: this node's heartbeats are not committing, or it resumed from a pause
    /// longer than the takeover time; it answers nobody until it has rejoined (its second
    /// heartbeat), since other nodes may serve its clients meanwhile.
    Standby = 17,
    /// Cluster mode: a DHCPv6 client of a load-balancing bucket another node serves (the XDP
    /// program drops DHCPv4's; a v6 client's DUID may sit inside relay layers).
    OtherBucket = 18,
    /// A DHCPLEASEQUERY (RFC 4388): answered by the worker outside the engine (it looks at
    /// every shard), or dropped there when the asker may not ask.
    LeaseQuery = 19,
}

impl DropReason {
    /// Number of reasons.
    pub const COUNT: usize = 20;
    /// Every reason, in slot order.
    pub const ALL: [Self; Self::COUNT] = [
        Self::Malformed,
        Self::NotForUs,
        Self::NoRoom,
        Self::NotRequest,
        Self::BadHlen,
        Self::Bootp,
        Self::NoSubnet,
        Self::NoAddress,
        Self::OtherServer,
        Self::Silent,
        Self::Consumed,
        Self::JournalFailed,
        Self::Redirected,
        Self::JournalStalled,
        Self::UntrustedRelay,
        Self::Refused,
        Self::OverLimit,
        Self::Standby,
        Self::OtherBucket,
        Self::LeaseQuery,
    ];

    /// The reason's slot in an array of [`COUNT`](Self::COUNT).
    pub const fn slot(self) -> usize {
        self as usize
    }

    /// The counter's name in statistics.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Malformed => "drop_malformed",
            Self::NotForUs => "drop_not_for_us",
            Self::NoRoom => "drop_no_room",
            Self::NotRequest => "drop_not_request",
            Self::BadHlen => "drop_bad_hlen",
            Self::Bootp => "drop_bootp",
            Self::NoSubnet => "drop_no_subnet",
            Self::NoAddress => "drop_no_address",
            Self::OtherServer => "drop_other_server",
            Self::Silent => "drop_silent",
            Self::Consumed => "consumed",
            Self::JournalFailed => "drop_journal_failed",
            Self::Redirected => "drop_redirected",
            Self::JournalStalled => "drop_journal_stalled",
            Self::UntrustedRelay => "drop_untrusted_relay",
            Self::Refused => "drop_refused",
            Self::OverLimit => "drop_over_limit",
            Self::Standby => "drop_standby",
            Self::OtherBucket => "drop_other_bucket",
            Self::LeaseQuery => "drop_leasequery",
        }
    }
}

/// What to do with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Transmit the first `n` bytes of the buffer.
    Reply(usize),
    /// Transmit the first `n` bytes of the buffer once what the batch changed is durable
    /// (the datapath's handler decides when: group commit): a reply that promises a lease.
    ReplyWhenDurable(usize),
    /// Give the buffer back without transmitting.
    Drop(DropReason),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_fill_their_slots_and_have_distinct_names() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.slot(), i, "{r:?} is listed out of slot order");
        }
        let names: std::collections::HashSet<_> = DropReason::ALL.iter().map(|r| r.name()).collect();
        assert_eq!(names.len(), DropReason::COUNT);
    }
}
