//! Loads the XDP steering program, attaches it to the interface and manages its maps.
//!
//! The program is attached through a BPF link owned by this process, so the kernel detaches it
//! whenever the process ends — clean exit, panic or SIGKILL — and no program is left behind.

use std::os::fd::RawFd;

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, MapData, PerCpuArray, XskMap},
    programs::{Xdp, XdpMode, xdp::XdpLinkId},
};
use dhcp_xdp_common::{MAX_QUEUES, MAX_SOCKETS_PER_QUEUE, config, counter};

/// The compiled XDP program (built by `build.rs` from the `dhcp-xdp-ebpf` crate).
pub static PROGRAM_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/dhcp-xdp-ebpf"));

/// Test rig only: tc programs that act as a VLAN access/trunk switch (`access_in`,
/// `trunk_in`), so that the test suite can put real clients behind 802.1Q / QinQ tags on
/// kernels without 802.1Q support. Not used by the daemon.
#[doc(hidden)]
pub static VLAN_LAB_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/vlan-lab"));

/// Name of the XDP function in the object.
pub const PROGRAM_NAME: &str = "dhcp_xdp";

/// How to attach the program, as `--xdp-mode` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum XdpModeArg {
    /// Native (driver) mode, falling back to generic (skb) mode if the driver refuses.
    Auto,
    /// Native (driver) mode only.
    Native,
    /// Generic (skb) mode.
    Skb,
}

/// Verdict counters of the XDP program, summed over CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XdpCounters(pub [u64; counter::COUNT as usize]);

impl XdpCounters {
    /// Value of counter slot `slot` (see `dhcp_xdp_common::counter`).
    pub fn get(&self, slot: u32) -> u64 {
        self.0.get(slot as usize).copied().unwrap_or(0)
    }

    /// Every counter by name.
    pub fn values(&self) -> Vec<(&'static str, u64)> {
        counter::NAMES.iter().copied().zip(self.0).collect()
    }
}

/// What went wrong loading, attaching or driving the XDP program.
#[derive(Debug, thiserror::Error)]
pub enum EbpfError {
    /// The object did not load (verifier, BTF, permissions).
    #[error("loading the XDP object: {0}")]
    Load(#[from] aya::EbpfError),
    /// The object lacks a program or map the daemon needs (a build mismatch).
    #[error("{0} missing from the XDP object")]
    Missing(&'static str),
    /// A program operation failed.
    #[error("{what}: {source}")]
    Program {
        /// What was being done.
        what: String,
        /// The kernel's or aya's reason.
        source: aya::programs::ProgramError,
    },
    /// A map operation failed.
    #[error("{what}: {source}")]
    Map {
        /// What was being done.
        what: String,
        /// The kernel's or aya's reason.
        source: aya::maps::MapError,
    },
    /// A socket slot outside the XSKMAP.
    #[error("queue {queue} / worker {worker} beyond the XSKMAP's size")]
    Slot {
        /// Queue.
        queue: u32,
        /// Worker.
        worker: u32,
    },
}

fn map_err(what: impl Into<String>) -> impl FnOnce(aya::maps::MapError) -> EbpfError {
    let what = what.into();
    move |source| EbpfError::Map { what, source }
}

fn prog_err(what: impl Into<String>) -> impl FnOnce(aya::programs::ProgramError) -> EbpfError {
    let what = what.into();
    move |source| EbpfError::Program { what, source }
}

/// Loads the program with its log level set (0 = silent; 1 error … 5 trace) in `role`
/// (`dhcp_xdp_common::role`).
pub fn load(log_level: u8, role: u8) -> Result<Ebpf, EbpfError> {
    let mut loader = EbpfLoader::new();
    loader.override_global("AYA_LOG_LEVEL", &log_level, false);
    loader.override_global("ROLE", &role, true);
    let mut ebpf = loader.load(PROGRAM_OBJECT)?;
    let prog: &mut Xdp = program(&mut ebpf)?;
    prog.load().map_err(prog_err("verifying the XDP program"))?;
    Ok(ebpf)
}

fn program(ebpf: &mut Ebpf) -> Result<&mut Xdp, EbpfError> {
    ebpf.program_mut(PROGRAM_NAME)
        .ok_or(EbpfError::Missing("program dhcp_xdp"))?
        .try_into()
        .map_err(prog_err("program dhcp_xdp is not XDP"))
}

/// What the steering program filters and limits by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SteerSettings {
    /// Our MAC: frames to another unicast MAC pass to the kernel.
    pub mac: [u8; 6],
    /// Our IPv4 addresses (at most eight are checked): frames to another unicast address pass.
    pub addrs: Vec<std::net::Ipv4Addr>,
    /// Whether to filter by destination at all.
    pub filter_destination: bool,
    /// Key of the chaddr hash that picks a worker.
    pub hash_key: u32,
    /// Frames per second one chaddr may send (0: no limit).
    pub rate_per_mac: u32,
    /// Frames one chaddr may send at once.
    pub burst_per_mac: u32,
    /// Cluster mode: drop requests of buckets not in the `BUCKETS` map (see [`Buckets`]).
    pub cluster: bool,
    /// Steer DHCPv6 as well (the daemon serves `[[subnet6]]`).
    pub dhcp6: bool,
    /// Our IPv6 addresses (at most four are checked): unicast DHCPv6 to another passes.
    pub addrs6: Vec<std::net::Ipv6Addr>,
}

/// The `BUCKETS` map taken out of the loaded program: the load-balancing buckets this node
/// serves (cluster mode). The control loop owns it; the program reads it per frame.
pub struct Buckets(Array<MapData, u32>);

impl Buckets {
    /// Serves exactly the buckets whose bits are set (bucket `b`: bit `b % 32` of word `b / 32`).
    pub fn set(&mut self, bits: &[u32; dhcp_xdp_common::buckets::WORDS as usize]) -> Result<(), EbpfError> {
        write_buckets(&mut self.0, bits)
    }
}

/// Writes the bucket bitmap into a `BUCKETS` map, word by word.
fn write_buckets<T: std::borrow::BorrowMut<MapData>>(
    map: &mut Array<T, u32>,
    bits: &[u32; dhcp_xdp_common::buckets::WORDS as usize],
) -> Result<(), EbpfError> {
    for (i, w) in bits.iter().enumerate() {
        map.set(i as u32, *w, 0).map_err(map_err(format!("BUCKETS[{i}]")))?;
    }
    Ok(())
}

/// The loaded and attached steering program.
pub struct Steering {
    ebpf: Ebpf,
    link: Option<XdpLinkId>,
    mode: XdpMode,
}

impl Steering {
    /// Loads the program and attaches it to interface `ifindex` in `mode`, steering requests
    /// to the server.
    pub fn attach(ifindex: u32, mode: XdpModeArg, log_level: u8) -> Result<Self, EbpfError> {
        Self::attach_role(ifindex, mode, log_level, dhcp_xdp_common::role::SERVER)
    }

    /// As [`Steering::attach`], in `role` (`dhcp_xdp_common::role`).
    pub fn attach_role(ifindex: u32, mode: XdpModeArg, log_level: u8, role: u8) -> Result<Self, EbpfError> {
        let mut ebpf = load(log_level, role)?;
        let prog = program(&mut ebpf)?;
        let (link, mode) = match mode {
            XdpModeArg::Native => (prog.attach_to_if_index(ifindex, XdpMode::Driver), XdpMode::Driver),
            XdpModeArg::Skb => (prog.attach_to_if_index(ifindex, XdpMode::Skb), XdpMode::Skb),
            XdpModeArg::Auto => match prog.attach_to_if_index(ifindex, XdpMode::Driver) {
                Ok(l) => (Ok(l), XdpMode::Driver),
                Err(e) => {
                    tracing::warn!("native XDP refused ({e}); falling back to generic (skb) mode");
                    (prog.attach_to_if_index(ifindex, XdpMode::Skb), XdpMode::Skb)
                }
            },
        };
        let link = link.map_err(prog_err(format!("attaching XDP program in {mode:?} mode")))?;
        Ok(Self { ebpf, link: Some(link), mode })
    }

    /// The mode the program ended up attached in.
    pub fn mode(&self) -> XdpMode {
        self.mode
    }

    /// Mutable access to the loaded object (for the eBPF logger).
    pub fn ebpf_mut(&mut self) -> &mut Ebpf {
        &mut self.ebpf
    }

    /// Puts socket `fd` into the slot of worker `worker` on `queue`. Call only after the
    /// socket is bound.
    pub fn insert_socket(&mut self, queue: u32, worker: u32, fd: RawFd) -> Result<(), EbpfError> {
        if queue >= MAX_QUEUES || worker >= MAX_SOCKETS_PER_QUEUE {
            return Err(EbpfError::Slot { queue, worker });
        }
        let mut map: XskMap<&mut MapData> =
            self.ebpf.map_mut("XSKS").ok_or(EbpfError::Missing("map XSKS"))?.try_into().map_err(map_err("map XSKS"))?;
        map.set(queue * MAX_SOCKETS_PER_QUEUE + worker, fd, 0)
            .map_err(map_err(format!("XSKMAP insert for queue {queue} worker {worker}")))?;
        Ok(())
    }

    /// Writes what the program filters and limits by (the `CONFIG` map). Call it before the
    /// sockets are announced, and again after a reload.
    pub fn configure(&mut self, s: &SteerSettings) -> Result<(), EbpfError> {
        configure(&mut self.ebpf, s)
    }

    /// Sets the share of DISCOVERs (and direct SOLICITs) the program drops (`shed_discover`),
    /// in [`config::SHED_ALL`]ths: 0 none, `SHED_ALL` all.
    pub fn set_shed(&mut self, share: u32) -> Result<(), EbpfError> {
        set_shed(&mut self.ebpf, share)
    }

    /// Takes the `BUCKETS` map out (once) for the cluster's control loop.
    pub fn take_buckets(&mut self) -> Result<Buckets, EbpfError> {
        let map = self.ebpf.take_map("BUCKETS").ok_or(EbpfError::Missing("map BUCKETS"))?;
        Ok(Buckets(map.try_into().map_err(map_err("map BUCKETS"))?))
    }

    /// Announces `sockets` bound sockets on `queue`; from now on its DHCP frames are steered.
    pub fn set_queue_sockets(&mut self, queue: u32, sockets: u32) -> Result<(), EbpfError> {
        set_queue_sockets(&mut self.ebpf, queue, sockets)
    }

    /// Current counters.
    pub fn counters(&self) -> Result<XdpCounters, EbpfError> {
        read_counters(&self.ebpf)
    }

    /// Stops steering (every queue back to the kernel) and detaches the program.
    pub fn detach(&mut self) -> Result<(), EbpfError> {
        for q in 0..MAX_QUEUES {
            set_queue_sockets(&mut self.ebpf, q, 0)?;
        }
        if let Some(link) = self.link.take() {
            program(&mut self.ebpf)?.detach(link).map_err(prog_err("detaching XDP program"))?;
        }
        Ok(())
    }
}

impl Drop for Steering {
    fn drop(&mut self) {
        if self.link.is_some()
            && let Err(e) = self.detach()
        {
            tracing::error!("detaching XDP program: {e}");
        }
    }
}

/// Sets `QUEUE_SOCKETS[queue]` in a loaded object.
pub fn set_queue_sockets(ebpf: &mut Ebpf, queue: u32, sockets: u32) -> Result<(), EbpfError> {
    let mut map: Array<&mut MapData, u32> = ebpf
        .map_mut("QUEUE_SOCKETS")
        .ok_or(EbpfError::Missing("map QUEUE_SOCKETS"))?
        .try_into()
        .map_err(map_err("map QUEUE_SOCKETS"))?;
    map.set(queue, sockets.min(MAX_SOCKETS_PER_QUEUE), 0).map_err(map_err(format!("QUEUE_SOCKETS[{queue}]")))?;
    Ok(())
}

/// Writes the `BUCKETS` map of a loaded object (see [`Buckets::set`]).
pub fn set_buckets(ebpf: &mut Ebpf, bits: &[u32; dhcp_xdp_common::buckets::WORDS as usize]) -> Result<(), EbpfError> {
    let mut map: Array<&mut MapData, u32> =
        ebpf.map_mut("BUCKETS").ok_or(EbpfError::Missing("map BUCKETS"))?.try_into().map_err(map_err("map BUCKETS"))?;
    write_buckets(&mut map, bits)
}

/// Sums the per-CPU verdict counters of a loaded object.
pub fn read_counters(ebpf: &Ebpf) -> Result<XdpCounters, EbpfError> {
    let map: PerCpuArray<&MapData, u64> =
        ebpf.map("COUNTERS").ok_or(EbpfError::Missing("map COUNTERS"))?.try_into().map_err(map_err("map COUNTERS"))?;
    let mut out = XdpCounters::default();
    for (slot, total) in out.0.iter_mut().enumerate() {
        *total = map.get(&(slot as u32), 0).map_err(map_err("reading COUNTERS"))?.iter().sum();
    }
    Ok(out)
}

/// Sets the share of DISCOVERs a loaded object drops (`CONFIG[SHED]`, in
/// [`config::SHED_ALL`]ths: 0 none, `SHED_ALL` all).
pub fn set_shed(ebpf: &mut Ebpf, share: u32) -> Result<(), EbpfError> {
    let mut map: Array<&mut MapData, u32> =
        ebpf.map_mut("CONFIG").ok_or(EbpfError::Missing("map CONFIG"))?.try_into().map_err(map_err("map CONFIG"))?;
    map.set(config::SHED, share.min(config::SHED_ALL), 0).map_err(map_err("CONFIG[SHED]"))
}

/// Writes `s` into the `CONFIG` map of a loaded object.
pub fn configure(ebpf: &mut Ebpf, s: &SteerSettings) -> Result<(), EbpfError> {
    let mut map: Array<&mut MapData, u32> =
        ebpf.map_mut("CONFIG").ok_or(EbpfError::Missing("map CONFIG"))?.try_into().map_err(map_err("map CONFIG"))?;
    let mac = s.mac;
    let addrs: Vec<u32> = s.addrs.iter().take(config::MAX_ADDRS as usize).map(|a| u32::from(*a)).collect();
    let mut values = vec![
        (
            config::FLAGS,
            if s.filter_destination { config::FILTER_DEST } else { 0 }
                | if s.cluster { config::CLUSTER } else { 0 }
                | if s.dhcp6 { config::DHCP6 } else { 0 },
        ),
        (config::HASH_KEY, s.hash_key),
        (config::RATE, s.rate_per_mac),
        (config::BURST, s.burst_per_mac),
        (config::MAC_HI, u32::from_be_bytes([mac[0], mac[1], mac[2], mac[3]])),
        (config::MAC_LO, u32::from(u16::from_be_bytes([mac[4], mac[5]]))),
        (config::N_ADDRS, addrs.len() as u32),
    ];
    values.extend(addrs.iter().enumerate().map(|(i, a)| (config::ADDRS + i as u32, *a)));
    let addrs6: Vec<_> = s.addrs6.iter().take(config::MAX_ADDRS6 as usize).collect();
    values.push((config::N_ADDRS6, addrs6.len() as u32));
    for (i, a) in addrs6.iter().enumerate() {
        for (w, word) in a.octets().chunks_exact(4).enumerate() {
            let slot = config::ADDRS6 + 4 * i as u32 + w as u32;
            values.push((slot, u32::from_be_bytes([word[0], word[1], word[2], word[3]])));
        }
    }
    for (slot, v) in values {
        map.set(slot, v, 0).map_err(map_err(format!("CONFIG[{slot}]")))?;
    }
    Ok(())
}
