//! The lease clock: the one clock the engine's callers read. It is this host's, except in
//! cluster mode, where the database's clock decides every lease and the membership's
//! heartbeats set the offset. And the monotonic clock of deadlines ([`mono_ms`]).

/// The lease clock: Unix time in seconds, saturating into u32, the one clock the engine's callers
/// read. In cluster mode it is the database's time ([`set_lease_clock_offset_ms`]).
pub fn unix_now() -> u32 {
    let ms = host_millis().saturating_add(LEASE_CLOCK_OFFSET_MS.load(std::sync::atomic::Ordering::Relaxed));
    u32::try_from(ms.max(0) / 1000).unwrap_or(u32::MAX)
}

/// Milliseconds the lease clock ([`unix_now`]) runs ahead of this host's clock: 0 alone; in
/// cluster mode the database's clock is the only one that decides a lease, and the membership
/// loop sets this from its measurement at every heartbeat.
static LEASE_CLOCK_OFFSET_MS: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

/// This host's clock, in Unix milliseconds.
pub fn host_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Sets how far the lease clock runs ahead of this host's clock (negative: behind).
pub fn set_lease_clock_offset_ms(ms: i64) {
    LEASE_CLOCK_OFFSET_MS.store(ms, std::sync::atomic::Ordering::Relaxed);
}

/// Milliseconds on the monotonic clock since the first call: the clock of deadlines and ages
/// (a cluster node's liveness, the lease store's commit lag) that a pause of the process or a
/// wrong wall clock cannot move backwards.
pub fn mono_ms() -> u64 {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    EPOCH.get_or_init(std::time::Instant::now).elapsed().as_millis() as u64
}
