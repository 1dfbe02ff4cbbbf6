//! Least privilege. Attaching the XDP program, creating and binding the AF_XDP sockets and
//! filling the XSKMAP need CAP_BPF, CAP_NET_ADMIN, CAP_NET_RAW and CAP_SYS_RESOURCE (or root);
//! nothing after that does: the datapath works on the sockets and maps it already holds
//! (ring operations, `sendto` kicks and map updates check the file descriptor, not the caller),
//! the journal writes files in its own state directory, a reload reads the configuration file,
//! and the XDP program goes with the BPF link's descriptor at exit. So every thread drops every
//! capability once its setup is done — the main thread after the datapath has started, each
//! worker and journal syncer when it starts (capabilities belong to threads). It must never be
//! called before the sockets are bound and announced to the XDP program.

use caps::CapSet;

/// Clears every capability set of the calling thread (ambient, inheritable, effective,
/// permitted), so that nothing it runs later can regain them.
pub fn drop_for_this_thread() -> Result<(), caps::errors::CapsError> {
    // The ambient set is cleared where the kernel has one; an unprivileged thread already has
    // nothing to clear.
    let _ = caps::clear(None, CapSet::Ambient);
    caps::clear(None, CapSet::Inheritable)?;
    caps::clear(None, CapSet::Effective)?;
    caps::clear(None, CapSet::Permitted)
}

/// What the calling thread may still do: its effective set, empty once dropped.
pub fn effective() -> Result<caps::CapsHashSet, caps::errors::CapsError> {
    caps::read(None, CapSet::Effective)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_thread_that_drops_keeps_nothing_and_others_keep_theirs() {
        let before = super::effective().expect("read");
        std::thread::spawn(|| {
            super::drop_for_this_thread().expect("drop");
            assert!(super::effective().expect("read").is_empty());
            assert!(caps::read(None, caps::CapSet::Permitted).expect("read").is_empty(), "permitted set kept");
        })
        .join()
        .expect("thread");
        assert_eq!(super::effective().expect("read"), before, "capabilities are per thread");
    }
}
