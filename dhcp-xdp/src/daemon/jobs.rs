//! The control loop's jobs, each a named unit that [`Daemon::tick`](super::Daemon::tick) runs
//! when it is due:
//!
//! - [`Requests`]: SIGHUP, and what the control channel asks of the loop (`config-reload`,
//!   `shutdown`, `counters-get`);
//! - [`Sweep`]: once a second, the XDP counters for the metrics and a step of the expiry sweep;
//! - [`StoreTick`]: once a second, the lease store's periodic work (the journal's snapshot when
//!   `snapshot-every` records were written);
//! - [`Shed`]: every tick, sheds new clients' DISCOVERs in the XDP program while the lease
//!   store is behind, and stops when it has caught up;
//! - [`Watchdog`]: systemd's watchdog, fed at half its interval while every worker lives;
//! - [`StatsLine`]: the statistics lines in the log, every `--stats-interval`.

use std::{
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use sd_notify::NotifyState;

use dhcp_xdp_common::config;

use super::{Daemon, HandlerKind, load_config, steer_settings};
use crate::{
    control::Action,
    serve::{self, Shared},
};

/// A period and when it last ran.
#[derive(Debug)]
pub struct Every {
    period: Duration,
    last: Instant,
}

impl Every {
    /// Due first one `period` from now.
    pub fn new(period: Duration) -> Self {
        Self { period, last: Instant::now() }
    }

    /// Whether the period has passed since the last time this said so (and restarts it).
    pub fn due(&mut self) -> bool {
        if self.last.elapsed() >= self.period {
            self.last = Instant::now();
            true
        } else {
            false
        }
    }
}

/// The jobs' schedules.
#[derive(Debug)]
pub struct Jobs {
    sweep: Every,
    store: Every,
    /// None: only at exit.
    stats: Option<Every>,
    /// None: no systemd watchdog asked for.
    watchdog: Option<Every>,
}

impl Jobs {
    /// Schedules for a daemon whose statistics lines come every `stats_interval` (zero: only
    /// at exit).
    pub fn new(stats_interval: Duration) -> Self {
        // sd_watchdog_enabled(3): WATCHDOG_USEC, for this process when WATCHDOG_PID names it or
        // is absent; fed at half the interval.
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|u| u.parse::<u64>().ok())
            .filter(|_| std::env::var("WATCHDOG_PID").map_or(true, |p| p == std::process::id().to_string()))
            .map(|u| Every::new(Duration::from_micros(u / 2)));
        Self {
            sweep: Every::new(Duration::from_secs(1)),
            store: Every::new(Duration::from_secs(1)),
            stats: (!stats_interval.is_zero()).then(|| Every::new(stats_interval)),
            watchdog,
        }
    }
}

/// SIGHUP, and the control channel's requests for the control loop.
pub struct Requests;

impl Requests {
    /// Carries out what was asked since the last tick.
    pub fn run(d: &mut Daemon) {
        let sh = d.shared.clone();
        let mut reloads = vec![];
        if d.hup.swap(false, Ordering::Relaxed) {
            reloads.push(None);
        }
        while let Ok((action, reply)) = d.actions.try_recv() {
            match action {
                Action::Reload => reloads.push(Some(reply)),
                Action::Shutdown => {
                    let _ = reply.send(serde_json::json!({ "result": 0, "text": "Shutting down." }));
                    d.term.store(true, Ordering::Relaxed);
                }
                Action::Counters => {
                    let _ =
                        reply.send(serde_json::json!({ "result": 0, "text": "", "arguments": d.report().to_json() }));
                }
            }
        }
        for reply in reloads {
            if d.opts.handler == HandlerKind::Reflect {
                if let Some(r) = reply {
                    let _ = r.send(
                        serde_json::json!({ "result": 1, "text": "the reflector has no configuration to reload" }),
                    );
                }
                continue;
            }
            let mut reloading = vec![NotifyState::Reloading];
            reloading.extend(NotifyState::monotonic_usec_now().ok());
            let _ = sd_notify::notify(false, &reloading);
            let outcome = Self::reload(d, &sh);
            sh.reloads.record(&outcome);
            let _ = sd_notify::notify(false, &[NotifyState::Ready]);
            let limits = sh.runtime().cfg.limits;
            let serves_v6 = !sh.runtime().cfg.subnets6.is_empty() && !sh.server6.duid.is_empty();
            let settings = steer_settings(&d.iface, &limits, d.steering_key, sh.store.shares_pools(), serves_v6);
            if let Err(e) = d.steering.configure(&settings) {
                tracing::warn!("reload: the XDP program kept its old limits: {e}");
            }
            if let Some(r) = reply {
                let _ = r.send(match outcome {
                    Ok(_) => serde_json::json!({ "result": 0, "text": "Configuration successful." }),
                    Err(e) => serde_json::json!({ "result": 1, "text": format!("Config reload failed: {e}") }),
                });
            }
        }
    }

    /// Reloads the configuration; says what happened.
    fn reload(d: &Daemon, sh: &Shared) -> Result<String, String> {
        let _reconfiguring = sh.reconfigure.lock().unwrap_or_else(|p| p.into_inner());
        match load_config(&d.opts, &d.iface, Some(d.steering_key), d.steering_key) {
            Ok(cfg) if cfg.cluster != sh.runtime().cfg.cluster => {
                let msg =
                    "the [cluster] section cannot change while the daemon runs (restart it); old configuration kept";
                tracing::warn!("reload: rejected: {msg}");
                Err(msg.to_owned())
            }
            Ok(cfg) => match cfg.with_hosts(&sh.runtime().cfg.api_hosts()) {
                Ok(cfg) => {
                    let msg = serve::reload(sh, cfg);
                    tracing::info!("reload: {msg}");
                    Ok(msg)
                }
                Err(e) => {
                    let msg = format!(
                        "a reservation added through the API does not fit the new file ({e}); delete it first, old \
                         configuration kept"
                    );
                    tracing::warn!("reload: rejected: {msg}");
                    Err(msg)
                }
            },
            Err(e) => {
                tracing::warn!("reload: rejected, old configuration kept: {e:#}");
                Err(format!("{e:#}"))
            }
        }
    }
}

/// Once a second: the XDP program's counters for the metrics, a step of the expiry sweep.
pub struct Sweep;

impl Sweep {
    /// Runs when due.
    pub fn run(d: &mut Daemon) {
        if !d.jobs.sweep.due() {
            return;
        }
        if let Ok(c) = d.steering.counters() {
            *d.xdp_snapshot.lock().unwrap_or_else(|p| p.into_inner()) = c.0;
        }
        serve::sweep(&d.shared, 4096);
    }
}

/// Once a second: the lease store's periodic work, with the configuration and tables in force.
pub struct StoreTick;

impl StoreTick {
    /// Runs when due.
    pub fn run(d: &mut Daemon) {
        if !d.jobs.store.due() {
            return;
        }
        let rt = d.shared.runtime();
        d.shared.store.tick(&rt.cfg, &rt.db);
    }
}

/// Overload: while the lease store is more than [`Shed::START`] behind (see
/// [`LeaseStore::lag`](crate::store::LeaseStore::lag)), or a worker's RX ring is more than
/// [`Shed::RING_START`] full (more arrives than the workers can handle), the XDP program drops
/// a growing share of DISCOVERs — new clients wait and retransmit, costing nothing — so what
/// the store can commit and the workers can handle goes to the clients with an offer or a
/// lease; once both are below [`Shed::STOP`] and [`Shed::RING_STOP`] it admits a growing share
/// again, until all. The share admitted settles near what the store can take (additive
/// increase, multiplicative decrease, as TCP's congestion window): an on/off switch let every
/// new client in between episodes, and each burst of their REQUESTs outgrew the store again
/// (PostgreSQL at 3× its capacity: 0.45 of the capacity served).
pub struct Shed;

impl Shed {
    /// The store lag at which the share admitted falls: far beyond what a healthy store takes
    /// to commit (a sync of the journal, a round trip to the database) and its hiccups (a
    /// checkpoint), so that only a backlog sheds; early enough that what was admitted still
    /// completes well within a client's first retransmission interval (4 s) and a load
    /// tester's 1 s.
    pub const START: Duration = Duration::from_millis(250);
    /// The store lag under which it grows.
    pub const STOP: Duration = Duration::from_millis(100);
    /// How full a worker's RX ring is when the share falls: about to overflow, when the kernel
    /// would drop REQUESTs and renewals as much as DISCOVERs. (Half full is a worker that was
    /// off its CPU for a moment: shedding then cost a quarter of the goodput at 1.5× capacity
    /// on PostgreSQL.)
    pub const RING_START: f64 = 0.9;
    /// How full the fullest RX ring is under which it grows.
    pub const RING_STOP: f64 = 0.25;
    /// Under this share (in [`config::SHED_ALL`]ths), none is admitted: shares halve at each
    /// tick (10 ms) over a threshold, so a store that stalls sheds every new client within
    /// 70 ms.
    pub const FLOOR: u32 = config::SHED_ALL / 64;
    /// The share added at each tick under both: from none to all in half a second.
    pub const INCREASE: u32 = config::SHED_ALL / 50 + 1;

    /// The next share of new clients to admit (in [`config::SHED_ALL`]ths), admitting `admit`
    /// now, with the store `lag` behind and the fullest RX ring `ring` full (0 to 1).
    pub fn next(admit: u32, lag: Duration, ring: f64) -> u32 {
        if lag > Self::START || ring > Self::RING_START {
            let less = admit / 2;
            if less < Self::FLOOR { 0 } else { less }
        } else if lag < Self::STOP && ring < Self::RING_STOP {
            (admit + Self::INCREASE).min(config::SHED_ALL)
        } else {
            admit
        }
    }

    /// Sets the share of new clients admitted as the store's lag and the workers' rings say.
    pub fn run(d: &mut Daemon) {
        let lag = d.shared.store.lag();
        let ring = d.datapath.stats().iter().map(|(_, s)| s.rx_fill()).fold(0.0, f64::max);
        let share = d.shared.admitted.load(Ordering::Relaxed);
        let next_share = Self::next(share, lag, ring);
        if next_share == share {
            return;
        }
        if let Err(e) = d.steering.set_shed(config::SHED_ALL - next_share) {
            tracing::warn!("overload: could not set the share of DISCOVERs shed: {e}");
            return;
        }
        d.shared.admitted.store(next_share, Ordering::Relaxed);
        let on = next_share < config::SHED_ALL;
        if on == d.shared.shedding.swap(on, Ordering::Relaxed) {
            return;
        }
        if on {
            d.shared.shed_episodes.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                "overload: the {} is {lag:.1?} behind, the fullest RX ring {:.0} % full; a share of new clients' \
                 DISCOVERs is dropped until both catch up",
                d.shared.store.name(),
                ring * 100.0
            );
        } else {
            tracing::info!("overload over: the {} caught up; every DISCOVER is answered again", d.shared.store.name());
        }
    }
}

/// systemd's watchdog.
pub struct Watchdog;

impl Watchdog {
    /// Feeds it when due (the tick that calls this found every worker alive).
    pub fn run(d: &mut Daemon) {
        if d.jobs.watchdog.as_mut().is_some_and(Every::due) {
            let _ = sd_notify::notify(false, &[NotifyState::Watchdog]);
        }
    }
}

/// The statistics lines in the log.
pub struct StatsLine;

impl StatsLine {
    /// Logs them when due.
    pub fn run(d: &mut Daemon) {
        if d.jobs.stats.as_mut().is_some_and(Every::due) {
            for line in d.report().lines("stats") {
                tracing::info!("{line}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The share admitted halves on a store far behind or a worker's ring about to overflow,
    /// down to none; it holds between the thresholds and grows back only once both are well
    /// below (no flapping).
    #[test]
    fn the_share_admitted_falls_on_a_lagging_store_or_a_full_ring_and_grows_on_both_below() {
        let ms = Duration::from_millis;
        let all = config::SHED_ALL;
        assert_eq!(Shed::next(all, ms(200), 0.8), all, "below both starts");
        assert_eq!(Shed::next(all, ms(300), 0.0), all / 2, "the store far behind");
        assert_eq!(Shed::next(all / 2, ms(0), 0.95), all / 4, "a ring about to overflow");
        assert_eq!(Shed::next(all / 3, ms(150), 0.0), all / 3, "between the store's thresholds it holds");
        assert_eq!(Shed::next(all / 3, ms(0), 0.5), all / 3, "between the ring's thresholds it holds");
        assert_eq!(Shed::next(all / 3, ms(50), 0.2), all / 3 + Shed::INCREASE, "below both it grows");
        assert_eq!(Shed::next(all - 1, ms(50), 0.2), all, "up to all");
        // A store that stalls: nobody is admitted within seven ticks, and it takes half a second
        // of health to admit everyone again.
        let mut admit = all;
        for _ in 0..7 {
            admit = Shed::next(admit, ms(1000), 0.0);
        }
        assert_eq!(admit, 0);
        let ticks = std::iter::successors(Some(0), |a| Some(Shed::next(*a, ms(0), 0.0))).position(|a| a == all);
        assert_eq!(ticks, Some(50));
    }
}
