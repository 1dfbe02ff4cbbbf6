//! Client classes on the DHCPv4 path: the classes of a request (its reservation's, then each
//! `[[client-class]]` test in order), the options they add (between the subnet's and the
//! global ones, as Kea orders them: host > pool > subnet > classes, the first class first >
//! global), and the boot fields a reply carries (host > class > subnet).
//!
//! With no class configured none of this runs. Options composed for a scope and a set of
//! classes are built once per worker and kept (a few combinations in practice); the reply's
//! option-block cache then treats them like any scope's.

use hashbrown::HashMap;

use super::{Engine, OptSrc, Req};
use crate::{
    classify::{Classes, Evaluator, Field4, Packet},
    config::{Config, OptionTable, RenderedOptions},
    dhcp4::{self, Message},
};

/// Compositions kept per worker before the cache starts over (each is a few hundred bytes).
const MAX_COMPOSED: usize = 4096;

/// A worker's classification state.
#[derive(Debug, Default)]
pub(super) struct ClassState {
    /// The classes of the request being decided.
    pub(super) now: Classes,
    /// Its reservation (subnet, index), found while classifying.
    pub(super) resv: Option<(usize, usize)>,
    eval: Evaluator,
    /// Options composed for (a scope's rendered id, the classes that add options).
    composed: HashMap<(u64, u64), RenderedOptions>,
}

/// A request as an expression reads it: which options it has (found in one walk), its
/// options, and the relay agent information the engine kept (only a trusted relay's, or a
/// trusted access switch's).
struct View<'a, 'm> {
    msg: &'a Message<'m>,
    relay: &'a [u8],
    /// A bit per option code present (82 when relay information was kept).
    present: [u64; 4],
}

impl<'a, 'm> View<'a, 'm> {
    fn new(msg: &'a Message<'m>, relay: &'a [u8]) -> Self {
        let mut present = [0u64; 4];
        for (c, _, _) in msg.option_offsets() {
            present[usize::from(c) / 64] |= 1 << (c % 64);
        }
        // Option 82 counts only as the engine kept it.
        present[1] &= !(1 << (82 % 64));
        if !relay.is_empty() {
            present[1] |= 1 << (82 % 64);
        }
        Self { msg, relay, present }
    }
}

impl Packet for View<'_, '_> {
    fn option(&self, code: u8) -> Option<&[u8]> {
        if self.present[usize::from(code) / 64] & (1 << (code % 64)) == 0 {
            return None;
        }
        self.msg.single(code)
    }

    fn mac(&self) -> &[u8] {
        let c = self.msg.chaddr();
        &c[..usize::from(self.msg.hlen()).min(c.len())]
    }

    fn relay_option(&self, code: u8) -> Option<&[u8]> {
        dhcp4::sub_options(self.relay).find(|(c, _)| *c == code).map(|(_, v)| v)
    }

    fn field(&self, f: Field4, out: &mut [u8; 16]) -> usize {
        let word = |out: &mut [u8; 16], v: u32| {
            out[..4].copy_from_slice(&v.to_be_bytes());
            4
        };
        let addr = |out: &mut [u8; 16], a: std::net::Ipv4Addr| {
            out[..4].copy_from_slice(&a.octets());
            4
        };
        match f {
            Field4::Mac => {
                let c = self.msg.chaddr();
                let n = usize::from(self.msg.hlen()).min(c.len()).min(16);
                out[..n].copy_from_slice(&c[..n]);
                n
            }
            Field4::Hlen => word(out, u32::from(self.msg.hlen())),
            Field4::Htype => word(out, u32::from(self.msg.htype())),
            Field4::Ciaddr => addr(out, self.msg.ciaddr()),
            Field4::Giaddr => addr(out, self.msg.giaddr()),
            Field4::Yiaddr => addr(out, self.msg.yiaddr()),
            Field4::Siaddr => {
                let b = self.msg.bytes();
                out[..4].copy_from_slice(b.get(dhcp4::field::SIADDR).unwrap_or(&[0; 4]));
                4
            }
            Field4::Msgtype => word(out, self.msg.message_type().map_or(0, |t| t as u32)),
            Field4::Transid => word(out, self.msg.xid()),
        }
    }
}

impl Engine {
    /// The classes of `msg` on `subnet` (whose candidates' reservations make a client known
    /// and may put it in classes), kept for the decision and the reply.
    pub(super) fn classify(&mut self, cfg: &Config, msg: &Message<'_>, req: &Req, subnet: usize) {
        let mut cand = [0u32; 16];
        let n = Self::candidates(cfg, subnet, &mut cand);
        let resv = cand[..n].iter().find_map(|&id| {
            let si = cfg.subnet_index(id)?;
            self.reservation(&cfg.subnets[si], req).map(|r| (si, r))
        });
        let mut classes = Classes {
            bits: resv.map_or(0, |(s, r)| cfg.subnets[s].reservations[r].client_classes),
            known: resv.is_some(),
        };
        let view = View::new(msg, &self.relay[..self.relay_len]);
        for (i, c) in cfg.classes.iter().enumerate() {
            if let Some(test) = &c.test
                && classes.bits & (1 << i) == 0
                && test.settled(&view.present).unwrap_or_else(|| self.cls.eval.eval(test, &view, classes))
            {
                classes.bits |= 1 << i;
            }
        }
        self.cls.now = classes;
        self.cls.resv = resv;
    }

    /// Whether the request's classes let it on `subnet` (a subnet guarded by classes).
    pub(super) fn subnet_allows(&self, cfg: &Config, subnet_id: u32) -> bool {
        cfg.subnet_index(subnet_id)
            .map(|i| cfg.subnets[i].client_classes)
            .is_none_or(|g| g == 0 || g & self.cls.now.bits != 0)
    }
}

impl ClassState {
    /// The options of scope `src` for this request: the scope's own when no class of it adds
    /// options, else the scope's composed with its classes' (built once per combination).
    pub(super) fn scope_options<'c>(&'c mut self, cfg: &'c Config, src: OptSrc) -> &'c RenderedOptions {
        let (rendered, own): (&RenderedOptions, &OptionTable) = match src {
            OptSrc::Subnet(s) => (&cfg.subnets[s].options, &cfg.subnets[s].own_options),
            OptSrc::Pool(s, p) => (&cfg.subnets[s].pools[p].options, &cfg.subnets[s].pools[p].own_options),
            OptSrc::Reservation(s, r) => {
                (&cfg.subnets[s].reservations[r].options, &cfg.subnets[s].reservations[r].own_options)
            }
        };
        let bits = self.now.bits & cfg.class_options;
        if bits == 0 {
            return rendered;
        }
        if self.composed.len() >= MAX_COMPOSED {
            self.composed.clear();
        }
        self.composed.entry((rendered.id(), bits)).or_insert_with(|| {
            // The global options, under the classes' (the first class last, so it wins), under
            // the scope's own.
            let mut t = cfg.global_options.clone();
            for (i, c) in cfg.classes.iter().enumerate().rev() {
                if bits & (1 << i) != 0 {
                    t = t.overlay(&c.options);
                }
            }
            RenderedOptions::new(&t.overlay(own))
        })
    }

    /// The boot fields of a reply from scope `src` on subnet `subnet`: the reservation's, else
    /// the first of the request's classes that sets the field, else the subnet's.
    pub(super) fn boot_fields<'c>(
        &self,
        cfg: &'c Config,
        subnet: usize,
        src: Option<OptSrc>,
    ) -> (Option<std::net::Ipv4Addr>, Option<&'c [u8]>, Option<&'c [u8]>) {
        let host = match src {
            Some(OptSrc::Reservation(s, r)) => Some(&cfg.subnets[s].reservations[r].boot),
            _ => None,
        };
        // Only the classes that set a boot field, in order.
        let mut bits = self.now.bits & cfg.class_boot;
        let classes = std::iter::from_fn(move || {
            let i = bits.trailing_zeros() as usize;
            (bits != 0).then(|| {
                bits &= bits - 1;
                &cfg.classes[i].boot
            })
        });
        let chain = host.into_iter().chain(classes).chain(std::iter::once(&cfg.subnets[subnet].boot));
        let (mut next, mut sname, mut file) = (None, None, None);
        for b in chain {
            next = next.or(b.next_server);
            sname = sname.or(b.server_hostname.as_deref());
            file = file.or(b.boot_file_name.as_deref());
        }
        (next, sname, file)
    }
}
