//! `cargo xtask`: the project's two set-up commands and their helpers.
//!
//! - `cargo xtask run --iface IF [--config FILE] [-- daemon args]`: installs what the build needs,
//!   builds the daemon (profile `dist`: release with LTO) and runs it in the foreground.
//! - `cargo xtask test [-- cargo-test args]`: installs what the build needs, checks the system
//!   tools the tests drive, builds the daemon and runs the whole test suite.
//!
//! Toolchain bootstrap (idempotent, seconds when everything is there): the eBPF crate's pinned
//! nightly (`dhcp-xdp-ebpf/rust-toolchain.toml`) with `rust-src` (for `-Z build-std=core`) and
//! `bpf-linker`, built from crates.io against that toolchain's own libLLVM — no system LLVM or
//! apt package is needed to build.
#![deny(unsafe_code)]

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build and run the daemon on an interface.
    Run {
        /// Interface to serve.
        #[arg(long)]
        iface: String,
        /// Configuration file (TOML); without one the interface's own subnet is served.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Build in debug mode instead of release.
        #[arg(long)]
        debug: bool,
        /// Further arguments for `dhcp-xdp run`.
        #[arg(last = true)]
        rest: Vec<OsString>,
    },
    /// Run the whole test suite.
    Test {
        /// Further arguments for `cargo test` (e.g. a test name filter).
        #[arg(last = true)]
        rest: Vec<OsString>,
    },
    /// Install the eBPF toolchain pieces only.
    Bootstrap,
    /// Bounded fuzz runs (cargo-fuzz, nightly): frame → engine, journal bytes → replay, other
    /// servers' files → the migration parsers.
    Fuzz {
        /// Seconds to run each target.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// `engine`, `engine6`, `journal`, `migrate` or `all`.
        #[arg(long, default_value = "all")]
        target: String,
    },
    /// Benchmarks: the engine alone (criterion), the lease store (memory per lease, journal
    /// throughput, recovery time) and the side-by-side comparison with the AF_XDP generator
    /// (dhcp-xdp, echo ceiling, Kea, ISC dhcpd, dnsmasq; needs root).
    Bench {
        /// Lease counts for the lease-store table.
        #[arg(long, value_delimiter = ',', default_value = "1000000")]
        leases: Vec<u64>,
        /// Run only these parts.
        #[arg(long, value_enum, value_delimiter = ',', default_value = "engine,leases,compare,dhcp6")]
        only: Vec<BenchPart>,
        /// Further arguments for `bench compare` (e.g. `--scenario renew --durability async`).
        #[arg(last = true)]
        rest: Vec<OsString>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum BenchPart {
    Engine,
    Leases,
    Compare,
    /// DHCPv6 beside DHCPv4 under perfdhcp, with kea-dhcp6 (`bench compare6`).
    Dhcp6,
}

/// Debian packages of the servers and tools `bench compare` runs next to dhcp-xdp.
const COMPARE_PACKAGES: [(&str, &str); 6] = [
    ("kea-dhcp4", "kea-dhcp4-server"),
    ("kea-dhcp6", "kea-dhcp6-server"),
    ("perfdhcp", "kea-admin"),
    ("dhcpd", "isc-dhcp-server"),
    ("dnsmasq", "dnsmasq"),
    // dhcp-xdp's cluster mode and Kea's PostgreSQL lease backend, on a throwaway database.
    ("pg_createcluster", "postgresql"),
];

fn main() -> std::process::ExitCode {
    match run(Cli::parse().cmd) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line: what failed and why.
            eprintln!("xtask: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cmd: Cmd) -> anyhow::Result<()> {
    match cmd {
        Cmd::Run { iface, config, debug, rest } => {
            bootstrap()?;
            // The daemon turns VLAN tag stripping off with ethtool (it refuses VLAN subnets when
            // it cannot).
            for t in apt_install_missing(&[("ethtool", "ethtool")], "what the daemon uses") {
                step(&format!("warning: {t} is missing"));
            }
            let bin = build_daemon(!debug)?;
            let mut cmd = Command::new(&bin);
            cmd.args(["run", "--iface", &iface]);
            if let Some(c) = config {
                cmd.arg("--config").arg(c);
            }
            cmd.args(rest);
            step(&format!("starting {} (ctrl-C stops it and detaches the XDP program)", bin.display()));
            exec(cmd)
        }
        Cmd::Test { rest } => {
            bootstrap()?;
            check_test_tools()?;
            let bin = build_daemon(true)?;
            step("running the test suite");
            let mut cmd = cargo();
            cmd.args(["test", "--release", "--no-fail-fast"]);
            cmd.env("DHCP_XDP_BIN", &bin);
            cmd.args(rest);
            let status = cmd.status().context("running cargo test")?;
            if !status.success() {
                bail!("tests failed ({status})");
            }
            Ok(())
        }
        Cmd::Bootstrap => bootstrap(),
        Cmd::Fuzz { seconds, target } => {
            bootstrap()?;
            if output(Command::new("cargo").args(["fuzz", "--version"])).is_err() {
                step("installing cargo-fuzz (once)");
                run_visible(cargo().args(["install", "cargo-fuzz"]))?;
            }
            let targets: &[(&str, &str)] = &[
                ("engine", "frame → engine"),
                ("engine6", "DHCPv6 message → engine6"),
                ("journal", "journal bytes → replay"),
                ("migrate", "other servers' files → the migration parsers"),
            ];
            for (name, what) in targets.iter().filter(|(n, _)| target == "all" || target == *n) {
                step(&format!("fuzzing {what} for {seconds} s (corpus: dhcp-xdp-core/fuzz/corpus/{name})"));
                std::fs::create_dir_all(workspace_root().join("dhcp-xdp-core/fuzz/corpus").join(name))?;
                let mut c = Command::new("cargo");
                c.current_dir(workspace_root().join("dhcp-xdp-core")).args([
                    "+nightly",
                    "fuzz",
                    "run",
                    name,
                    "--",
                    &format!("-max_total_time={seconds}"),
                    "-max_len=1600",
                ]);
                run_visible(&mut c)?;
            }
            Ok(())
        }
        Cmd::Bench { leases, only, rest } => {
            bootstrap()?;
            if only.contains(&BenchPart::Engine) {
                step("engine benchmark (criterion): DISCOVER→OFFER and REQUEST→ACK on warm shards");
                let started = std::time::SystemTime::now();
                run_visible(cargo().args(["bench", "-p", "dhcp-xdp-core", "--bench", "engine", "--profile", DIST]))?;
                engine_summary(started)?;
            }
            if only.contains(&BenchPart::Leases) {
                step("lease store: memory per lease, journal throughput, recovery time");
                let mut c = cargo();
                c.args(["bench", "-p", "dhcp-xdp", "--bench", "lease_store", "--profile", DIST, "--"]);
                c.args(leases.iter().map(u64::to_string));
                run_visible(&mut c)?;
            }
            if only.contains(&BenchPart::Compare) {
                if !is_root() {
                    bail!("the comparison creates namespaces and attaches XDP programs: run as root");
                }
                install_compare_servers()?;
                let bin = build_daemon(true)?;
                step("building the load generator (bench)");
                run_visible(cargo().args(["build", "--profile", DIST, "-p", "bench"]))?;
                let gen_bin = bin.with_file_name("bench");
                step(
                    "comparison: echo ceiling, dhcp-xdp (journal, PostgreSQL), Kea (MT, 1 thread, PostgreSQL), ISC dhcpd, \
                     dnsmasq under the AF_XDP generator; the cluster takeover time",
                );
                let mut c = Command::new(gen_bin);
                c.current_dir(workspace_root()).env("DHCP_XDP_BIN", &bin).arg("compare").args(&rest);
                run_visible(&mut c)?;
            }
            if only.contains(&BenchPart::Dhcp6) {
                if !is_root() {
                    bail!("the DHCPv6 comparison creates namespaces and attaches XDP programs: run as root");
                }
                install_compare_servers()?;
                let bin = build_daemon(true)?;
                run_visible(cargo().args(["build", "--profile", DIST, "-p", "bench"]))?;
                step("DHCPv6 beside DHCPv4 under perfdhcp: dhcp-xdp (v4 DORA, v6 address + prefix) and kea-dhcp6");
                let mut c = Command::new(bin.with_file_name("bench"));
                c.current_dir(workspace_root()).env("DHCP_XDP_BIN", &bin).arg("compare6");
                if !only.contains(&BenchPart::Compare) {
                    c.args(&rest);
                }
                run_visible(&mut c)?;
            }
            Ok(())
        }
    }
}

/// Installs (apt-get, as root) the comparison's servers that are missing; a server that cannot
/// be installed is skipped by the comparison with a note in the report.
fn install_compare_servers() -> anyhow::Result<()> {
    let missing = apt_install_missing(&COMPARE_PACKAGES, "the comparison servers");
    if !missing.is_empty() {
        step(&format!("{} still missing: the comparison skips them", missing.join(", ")));
    }
    Ok(())
}

/// Installs (apt-get, as root) the Debian packages of the `(tool, package)` pairs whose tool is
/// missing, saying what for; returns the tools still missing, named with their package.
fn apt_install_missing(tools: &[(&str, &str)], what: &str) -> Vec<String> {
    let missing = || -> Vec<(&str, &str)> { tools.iter().copied().filter(|(t, _)| which(t).is_none()).collect() };
    let want = missing();
    if !want.is_empty() && is_root() && which("apt-get").is_some() {
        let pkgs: Vec<&str> = want.iter().map(|(_, p)| *p).collect();
        step(&format!("installing {what}: apt-get install {}", pkgs.join(" ")));
        let apt = |args: &[&str]| {
            Command::new("apt-get")
                .args(args)
                .env("DEBIAN_FRONTEND", "noninteractive")
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
        };
        if !apt(&["update"]) || !apt(&[&["install", "-y", "--no-install-recommends"][..], &pkgs].concat()) {
            step("warning: apt-get failed");
        }
    }
    missing().iter().map(|(t, p)| format!("{t} (Debian package {p})")).collect()
}

/// The engine's target on a warm shard (ns per message).
const ENGINE_TARGET_NS: f64 = 300.0;

/// Prints the engine benchmarks this run measured (criterion's saved estimates, written after
/// `since`): mean and 95 % interval, and the target verdict for the warm-shard cases.
fn engine_summary(since: std::time::SystemTime) -> anyhow::Result<()> {
    let dir = target_dir().join("criterion");
    let mut rows = vec![];
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let file = entry.path().join("new").join("estimates.json");
        let fresh = std::fs::metadata(&file).and_then(|m| m.modified()).is_ok_and(|t| t >= since);
        if !name.starts_with("engine ") || !fresh {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file)?)
            .with_context(|| format!("parsing {}", file.display()))?;
        let f = |p: &str| v.pointer(p).and_then(serde_json::Value::as_f64).unwrap_or(f64::NAN);
        let (mean, lo, hi) = (
            f("/mean/point_estimate"),
            f("/mean/confidence_interval/lower_bound"),
            f("/mean/confidence_interval/upper_bound"),
        );
        let verdict = match (name.contains(" 1000 leases"), mean <= ENGINE_TARGET_NS) {
            (true, true) => "target met",
            (true, false) => "TARGET MISSED",
            (false, _) => "(large table: not a target case)",
        };
        rows.push(format!("  {name:<56} {mean:6.0} ns  [{lo:.0}, {hi:.0}]  {verdict}"));
    }
    rows.sort();
    eprintln!("engine, per message (criterion mean [95 % interval]), target ≤ {ENGINE_TARGET_NS} ns on a warm shard:");
    for r in rows {
        eprintln!("{r}");
    }
    Ok(())
}

fn step(msg: &str) {
    eprintln!("xtask: {msg}");
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(workspace_root());
    c
}

fn output(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn run_visible(cmd: &mut Command) -> anyhow::Result<()> {
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed ({status})");
    }
    Ok(())
}

fn exec(mut cmd: Command) -> anyhow::Result<()> {
    // Replace this process with the daemon, so ctrl-C and SIGTERM reach it directly and the shell
    // waits for its clean stop (drain, detach) rather than for us.
    use std::os::unix::process::CommandExt as _;
    let err = cmd.exec();
    Err(err).with_context(|| format!("starting {cmd:?}"))
}

/// The eBPF crate's pinned nightly, as its rust-toolchain.toml names it.
fn ebpf_toolchain() -> anyhow::Result<String> {
    let file = workspace_root().join(dhcp_xdp_common::toolchain::FILE);
    let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    dhcp_xdp_common::toolchain::channel(&text)
        .map(str::to_owned)
        .with_context(|| format!("{} names no channel", file.display()))
}

/// Everything the eBPF build needs, installed when missing.
fn bootstrap() -> anyhow::Result<()> {
    let rustup = |args: &[&str]| {
        let mut c = Command::new("rustup");
        c.args(args);
        c
    };
    let pinned = ebpf_toolchain()?;
    let toolchains = output(&mut rustup(&["toolchain", "list"])).context("rustup is required (https://rustup.rs)")?;
    if !toolchains.lines().any(|l| l.starts_with(&format!("{pinned}-")) || l.split_whitespace().next() == Some(&pinned))
    {
        step(&format!("installing the {pinned} toolchain with rust-src (the eBPF crate's, pinned)"));
        run_visible(&mut rustup(&[
            "toolchain",
            "install",
            &pinned,
            "--profile",
            "minimal",
            "--component",
            "rust-src",
        ]))?;
    }
    let components = output(&mut rustup(&["component", "list", "--toolchain", &pinned, "--installed"]))?;
    if !components.lines().any(|l| l.starts_with("rust-src")) {
        step(&format!("adding rust-src to {pinned} (for -Z build-std=core)"));
        run_visible(&mut rustup(&["component", "add", "rust-src", "--toolchain", &pinned]))?;
    }
    ensure_bpf_linker(&pinned)
}

/// Facts about the nightly toolchain's bundled LLVM.
struct NightlyLlvm {
    major: String,
    soname_file: PathBuf,
}

fn nightly_llvm(toolchain: &str) -> anyhow::Result<NightlyLlvm> {
    let vv = output(Command::new("rustc").arg(format!("+{toolchain}")).arg("-vV"))?;
    let field = |name: &str| {
        vv.lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
            .with_context(|| format!("`rustc +{toolchain} -vV` has no `{name}` line"))
    };
    let release = field("release:")?;
    let llvm = field("LLVM version:")?;
    let mut parts = llvm.split('.');
    let major = parts.next().unwrap_or_default().to_owned();
    let minor = parts.next().unwrap_or("0").to_owned();
    let sysroot = output(Command::new("rustc").arg(format!("+{toolchain}")).args(["--print", "sysroot"]))?;
    let lib = Path::new(sysroot.trim()).join("lib");
    let soname_file = lib.join(format!("libLLVM.so.{major}.{minor}-rust-{release}"));
    if !soname_file.exists() {
        bail!(
            "expected {} (from `rustc +{toolchain} -vV`: release {release}, LLVM {llvm}); is the {toolchain} toolchain complete?",
            soname_file.display()
        );
    }
    Ok(NightlyLlvm { major, soname_file })
}

fn cargo_home() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(&std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".cargo"))
}

fn ensure_bpf_linker(toolchain: &str) -> anyhow::Result<()> {
    let llvm = nightly_llvm(toolchain)?;
    // The linker's runpath points at the prefix below, whose libLLVM is the pinned toolchain's
    // (pointed there again at every bootstrap); a toolchain whose LLVM moved to another major
    // version makes it fail to load, and it is rebuilt.
    let prefix = cargo_home().join("dhcp-xdp").join(format!("llvm-{}", llvm.major));
    let lib = prefix.join("lib");
    std::fs::create_dir_all(&lib).with_context(|| format!("creating {}", lib.display()))?;
    let file_name = llvm.soname_file.file_name().context("soname file has no name")?;
    for link in [lib.join("libLLVM.so"), lib.join(file_name)] {
        if std::fs::read_link(&link).is_ok_and(|t| t == llvm.soname_file) {
            continue;
        }
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&llvm.soname_file, &link)
            .with_context(|| format!("linking {} → {}", link.display(), llvm.soname_file.display()))?;
    }
    if output(Command::new("bpf-linker").arg("--version")).is_ok() {
        return Ok(());
    }
    step(&format!(
        "building bpf-linker against the {toolchain} toolchain's LLVM {} (LLVM_PREFIX={}, about a minute)",
        llvm.major,
        prefix.display()
    ));
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.args(["install", "--force", "bpf-linker", "--no-default-features", "--features"])
        .arg(format!("llvm-{}", llvm.major))
        .env("LLVM_PREFIX", &prefix);
    run_visible(&mut cmd)?;
    output(Command::new("bpf-linker").arg("--version")).context("bpf-linker installed but does not run")?;
    Ok(())
}

/// The system tools the tests drive, with the Debian package of each (`.ci/run` installs the
/// same list).
const TEST_PACKAGES: [(&str, &str); 19] = [
    ("ip", "iproute2"),
    ("ping", "iputils-ping"),
    ("tcpdump", "tcpdump"),
    ("dhclient", "isc-dhcp-client"),
    ("udhcpc", "udhcpc"),
    ("dhcpcd", "dhcpcd5"),
    ("dhcrelay", "isc-dhcp-relay"),
    ("perfdhcp", "kea-admin"),
    ("kea-dhcp4", "kea-dhcp4-server"),
    ("dhcpd", "isc-dhcp-server"),
    // DHCPv6: WIDE's client (prefix delegation), Kea's v6 server for comparison.
    ("dhcp6c", "wide-dhcpv6-client"),
    ("kea-dhcp6", "kea-dhcp6-server"),
    ("ethtool", "ethtool"),
    ("kea-ctrl-agent", "kea-ctrl-agent"),
    ("kea-shell", "python3-kea-connector"),
    ("/usr/lib/python3/dist-packages/prometheus_client/parser.py", "python3-prometheus-client"),
    // The cluster tests' throwaway database server (its initdb and pg_ctl live under a
    // versioned directory; postgresql-common's tool marks the package).
    ("pg_createcluster", "postgresql"),
    // A cluster node whose clock runs minutes ahead (libfaketime preloaded into the daemon).
    ("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1", "faketime"),
    ("openssl", "openssl"),
];

/// Installs (apt-get, as root) the Debian packages of the tools the tests drive that are
/// missing, saying which; fails naming any that is still missing.
fn check_test_tools() -> anyhow::Result<()> {
    let still = apt_install_missing(&TEST_PACKAGES, "the Debian packages the tests drive");
    if !still.is_empty() {
        bail!("the tests need {}; install them as root (`.ci/run` does)", still.join(", "));
    }
    if !is_root() {
        step("warning: tests that attach XDP programs and create namespaces need root");
    }
    Ok(())
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

fn is_root() -> bool {
    output(Command::new("id").arg("-u")).map(|s| s.trim() == "0").unwrap_or(false)
}

/// The optimised profile: what `run` ships, what the tests run and the benches measure.
const DIST: &str = "dist";

fn build_daemon(optimised: bool) -> anyhow::Result<PathBuf> {
    let profile = if optimised { DIST } else { "dev" };
    step(&format!(
        "building dhcp-xdp (profile {profile}; the XDP program is built by its build script with the pinned nightly + bpf-linker)"
    ));
    run_visible(cargo().args(["build", "--package", "dhcp-xdp", "--bin", "dhcp-xdp", "--profile", profile]))?;
    Ok(target_dir().join(if optimised { DIST } else { "debug" }).join("dhcp-xdp"))
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| workspace_root().join("target"))
}
