//! Loads the XDP steering program, attaches it to the interface and manages its maps.
//!
//! The program is attached through a BPF link owned by this process, so the kernel detaches it
//! whenever the process ends — clean exit, panic or SIGKILL — and no program is left behind.

use std::os::fd::RawFd;

use anyhow::{Context as _, anyhow};
use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, MapData, PerCpuArray, XskMap},
    programs::{Xdp, XdpMode, xdp::XdpLinkId},
};
use dhcp_xdp_common::{MAX_QUEUES, MAX_SOCKETS_PER_QUEUE, counter};

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

    /// `name=value` pairs, space separated.
    pub fn render(&self) -> String {
        counter::NAMES.iter().zip(self.0).map(|(n, v)| format!("xdp_{n}={v}")).collect::<Vec<_>>().join(" ")
    }
}

/// Loads the program with its log level set (0 = silent; 1 error … 5 trace) in `role`
/// (`dhcp_xdp_common::role`).
pub fn load(log_level: u8, role: u8) -> anyhow::Result<Ebpf> {
    let mut loader = EbpfLoader::new();
    loader.override_global("AYA_LOG_LEVEL", &log_level, false);
    loader.override_global("ROLE", &role, true);
    let mut ebpf = loader.load(PROGRAM_OBJECT).context("loading the XDP object")?;
    let prog: &mut Xdp = program(&mut ebpf)?;
    prog.load().context("verifying the XDP program")?;
    Ok(ebpf)
}

fn program(ebpf: &mut Ebpf) -> anyhow::Result<&mut Xdp> {
    ebpf.program_mut(PROGRAM_NAME)
        .ok_or_else(|| anyhow!("program {PROGRAM_NAME} missing from object"))?
        .try_into()
        .context("program is not XDP")
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
    pub fn attach(ifindex: u32, mode: XdpModeArg, log_level: u8) -> anyhow::Result<Self> {
        Self::attach_role(ifindex, mode, log_level, dhcp_xdp_common::role::SERVER)
    }

    /// As [`Steering::attach`], in `role` (`dhcp_xdp_common::role`).
    pub fn attach_role(ifindex: u32, mode: XdpModeArg, log_level: u8, role: u8) -> anyhow::Result<Self> {
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
        let link = link.with_context(|| format!("attaching XDP program in {mode:?} mode"))?;
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
    pub fn insert_socket(&mut self, queue: u32, worker: u32, fd: RawFd) -> anyhow::Result<()> {
        if queue >= MAX_QUEUES || worker >= MAX_SOCKETS_PER_QUEUE {
            anyhow::bail!("queue {queue} / worker {worker} beyond the XSKMAP's size");
        }
        let mut map: XskMap<&mut MapData> =
            self.ebpf.map_mut("XSKS").ok_or_else(|| anyhow!("XSKS map missing"))?.try_into()?;
        map.set(queue * MAX_SOCKETS_PER_QUEUE + worker, fd, 0)
            .with_context(|| format!("XSKMAP insert for queue {queue} worker {worker}"))?;
        Ok(())
    }

    /// Announces `sockets` bound sockets on `queue`; from now on its DHCP frames are steered.
    pub fn set_queue_sockets(&mut self, queue: u32, sockets: u32) -> anyhow::Result<()> {
        set_queue_sockets(&mut self.ebpf, queue, sockets)
    }

    /// Current counters.
    pub fn counters(&self) -> anyhow::Result<XdpCounters> {
        read_counters(&self.ebpf)
    }

    /// Stops steering (every queue back to the kernel) and detaches the program.
    pub fn detach(&mut self) -> anyhow::Result<()> {
        for q in 0..MAX_QUEUES {
            set_queue_sockets(&mut self.ebpf, q, 0)?;
        }
        if let Some(link) = self.link.take() {
            program(&mut self.ebpf)?.detach(link).context("detaching XDP program")?;
        }
        Ok(())
    }
}

impl Drop for Steering {
    fn drop(&mut self) {
        if self.link.is_some()
            && let Err(e) = self.detach()
        {
            tracing::error!("detaching XDP program: {e:#}");
        }
    }
}

/// Sets `QUEUE_SOCKETS[queue]` in a loaded object.
pub fn set_queue_sockets(ebpf: &mut Ebpf, queue: u32, sockets: u32) -> anyhow::Result<()> {
    let mut map: Array<&mut MapData, u32> =
        ebpf.map_mut("QUEUE_SOCKETS").ok_or_else(|| anyhow!("QUEUE_SOCKETS map missing"))?.try_into()?;
    map.set(queue, sockets.min(MAX_SOCKETS_PER_QUEUE), 0)?;
    Ok(())
}

/// Sums the per-CPU verdict counters of a loaded object.
pub fn read_counters(ebpf: &Ebpf) -> anyhow::Result<XdpCounters> {
    let map: PerCpuArray<&MapData, u64> =
        ebpf.map("COUNTERS").ok_or_else(|| anyhow!("COUNTERS map missing"))?.try_into()?;
    let mut out = XdpCounters::default();
    for (slot, total) in out.0.iter_mut().enumerate() {
        *total = map.get(&(slot as u32), 0)?.iter().sum();
    }
    Ok(out)
}
