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
}

impl DropReason {
    /// Number of reasons.
    pub const COUNT: usize = 12;
    /// Counter names, indexed by `reason as usize`.
    pub const NAMES: [&'static str; Self::COUNT] = [
        "drop_malformed",
        "drop_not_for_us",
        "drop_no_room",
        "drop_not_request",
        "drop_bad_hlen",
        "drop_bootp",
        "drop_no_subnet",
        "drop_no_address",
        "drop_other_server",
        "drop_silent",
        "consumed",
        "drop_journal_failed",
    ];
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
