//! The seam under the wiring: the link operations its decisions are made
//! of, as a trait. [`Kernel`] is the real one (netplumb's netlink session
//! plus an interface-index probe); the unit tests of `wiring` use a fake that
//! keeps links in a table and records every change, so that garbage
//! collection, the quota, the address choice and the ownership matches are
//! tested without root.

use std::cell::OnceCell;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, OwnedFd};

use ipnetwork::IpNetwork;
use netplumb::{
    Attached, Attachment, Bridge, BridgePort, FdbEntry, Link, NetNs, Netlink, Protocol, Result,
};

use crate::error::Failure;

/// Link operations in one network namespace.
#[allow(async_fn_in_trait)] // used generically, never as a trait object
pub trait Links {
    /// The link named `name`, if any.
    async fn link_by_name(&self, name: &str) -> Result<Option<Link>>;
    /// The link with index `index`, if any.
    async fn link_by_index(&self, index: u32) -> Result<Option<Link>>;
    /// The veth `name` on bridge `bridge`, if that is what the name is.
    async fn host_end(&self, name: &str, bridge: u32) -> Result<Option<Link>>;
    /// Deletes link `index`.
    async fn delete_link(&self, index: u32) -> Result<()>;
    /// The bridge `name`, made (with `mtu`) if missing.
    async fn ensure_bridge(&self, name: &str, mtu: Option<u32>) -> Result<Bridge>;
    /// Sets link `index` up.
    async fn set_up(&self, index: u32) -> Result<()>;
    /// Sets link `index`'s alias.
    async fn set_alias(&self, index: u32, alias: &str) -> Result<()>;
    /// Sets the bridge port flags of link `index` to `port`'s.
    async fn set_bridge_port(&self, index: u32, port: &BridgePort) -> Result<()>;
    /// Pins `mac` to bridge port `index` (a static, sticky entry).
    async fn pin_mac(&self, index: u32, mac: [u8; 6]) -> Result<()>;
    /// The addresses on link `index`.
    async fn addresses_of(&self, index: u32) -> Result<Vec<IpNetwork>>;
    /// Adds `address` to link `index` unless there; whether it was added.
    async fn ensure_address(&self, index: u32, address: IpNetwork) -> Result<bool>;
    /// A route of another link (not `except_index`) that overlaps `network`, if any.
    async fn route_overlapping(
        &self,
        network: IpNetwork,
        except_index: Option<u32>,
    ) -> Result<Option<IpNetwork>>;
    /// The default routes' gateways (IPv6 with `v6`), with their links.
    async fn default_gateways(&self, v6: bool) -> Result<Vec<(IpAddr, Option<u32>)>>;
    /// The id this namespace gives `ns` (what a peer there reports as its
    /// `link_netnsid`).
    async fn nsid_of(&self, ns: &NetNs) -> Result<Option<i32>>;
    /// Whether `address` is one of this namespace's own (its route is local).
    async fn is_local(&self, address: IpAddr) -> Result<bool>;
    /// The forwarding entries of bridge `bridge` for `mac`.
    async fn fdb_entries(&self, bridge: u32, mac: [u8; 6]) -> Result<Vec<FdbEntry>>;
    /// Whether a socket of this namespace listens on (TCP) or is bound to
    /// (UDP) local `port`, on any address. (sock_diag answers for the
    /// namespace the thread is in: used on the host's side only.)
    fn listening(&self, protocol: Protocol, port: u16) -> std::result::Result<bool, Failure>;
    /// The whole attachment, `self` on the bridge's side; `before_up` runs
    /// on the host end after its bridge port is set and before it is
    /// brought up (see [`Netlink::attach_with`]).
    async fn attach<E: From<netplumb::Error>>(
        &self,
        inside: &Self,
        a: &Attachment<'_>,
        before_up: impl FnOnce(&Link) -> std::result::Result<(), E>,
    ) -> std::result::Result<Attached, E>;
    /// The index of the interface called `name`, by the cheapest look-up.
    fn index_of(&self, name: &str) -> std::result::Result<Option<u32>, Failure>;
    /// The (primary) IPv4 address of the interface called `name`, by the
    /// cheapest look-up (no dump of the namespace's addresses).
    fn ipv4_of(&self, name: &str) -> std::result::Result<Option<Ipv4Addr>, Failure>;
    /// How many ports the bridge called `name` has (`None` if it is no
    /// bridge), by the cheapest look-up (no dump of the namespace's links).
    fn port_count(&self, name: &str) -> std::result::Result<Option<u32>, Failure>;
}

/// The first device-private ioctl (include/uapi/linux/sockios.h), the
/// bridge's command under it that lists the ports
/// (include/uapi/linux/if_bridge.h), and the size of the table it fills:
/// `BR_MAX_PORTS` port numbers.
const SIOCDEVPRIVATE: libc::c_ulong = 0x89f0;
const BRCTL_GET_PORT_LIST: libc::c_ulong = 7;
const BR_MAX_PORTS: usize = 1024;

/// The kernel, through a netlink session and (made on first use) one
/// socket for `SIOCGIFINDEX`/`SIOCGIFADDR` look-ups in the namespace the
/// thread is in.
pub struct Kernel {
    netlink: Netlink,
    probe: OnceCell<OwnedFd>,
}

impl Kernel {
    /// The kernel's links, through `netlink`.
    pub fn new(netlink: Netlink) -> Kernel {
        Kernel {
            netlink,
            probe: OnceCell::new(),
        }
    }

    fn probe(&self) -> std::result::Result<&OwnedFd, Failure> {
        if let Some(fd) = self.probe.get() {
            return Ok(fd);
        }
        let fd = nix::sys::socket::socket(
            nix::sys::socket::AddressFamily::Inet,
            nix::sys::socket::SockType::Datagram,
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(|e| Failure::internal(format!("open socket for interface look-ups: {e}")))?;
        Ok(self.probe.get_or_init(|| fd))
    }
}

impl Links for Kernel {
    async fn link_by_name(&self, name: &str) -> Result<Option<Link>> {
        self.netlink.link_by_name(name).await
    }
    async fn link_by_index(&self, index: u32) -> Result<Option<Link>> {
        self.netlink.link_by_index(index).await
    }
    async fn host_end(&self, name: &str, bridge: u32) -> Result<Option<Link>> {
        self.netlink.host_end(name, bridge).await
    }
    async fn delete_link(&self, index: u32) -> Result<()> {
        self.netlink.delete_link(index).await
    }
    async fn ensure_bridge(&self, name: &str, mtu: Option<u32>) -> Result<Bridge> {
        self.netlink.ensure_bridge(name, mtu).await
    }
    async fn set_up(&self, index: u32) -> Result<()> {
        self.netlink.set_up(index).await
    }
    async fn set_alias(&self, index: u32, alias: &str) -> Result<()> {
        self.netlink.set_alias(index, alias).await
    }
    async fn set_bridge_port(&self, index: u32, port: &BridgePort) -> Result<()> {
        self.netlink.set_bridge_port(index, port).await
    }
    async fn pin_mac(&self, index: u32, mac: [u8; 6]) -> Result<()> {
        self.netlink.pin_mac(index, mac).await
    }
    async fn addresses_of(&self, index: u32) -> Result<Vec<IpNetwork>> {
        self.netlink.addresses_of(index).await
    }
    async fn ensure_address(&self, index: u32, address: IpNetwork) -> Result<bool> {
        self.netlink.ensure_address(index, address).await
    }
    async fn route_overlapping(
        &self,
        network: IpNetwork,
        except_index: Option<u32>,
    ) -> Result<Option<IpNetwork>> {
        self.netlink.route_overlapping(network, except_index).await
    }
    async fn default_gateways(&self, v6: bool) -> Result<Vec<(IpAddr, Option<u32>)>> {
        self.netlink.default_gateways(v6).await
    }
    async fn nsid_of(&self, ns: &NetNs) -> Result<Option<i32>> {
        self.netlink.nsid_of(ns).await
    }
    async fn attach<E: From<netplumb::Error>>(
        &self,
        inside: &Kernel,
        a: &Attachment<'_>,
        before_up: impl FnOnce(&Link) -> std::result::Result<(), E>,
    ) -> std::result::Result<Attached, E> {
        // The host end has no IPv6 of its own (this thread is in the
        // host's namespace, where it was just made; see disable_ipv6).
        let before_up = |host_end: &Link| {
            netplumb::sysctl::disable_ipv6(&host_end.name)?;
            before_up(host_end)
        };
        self.netlink
            .attach_with(&inside.netlink, a, before_up)
            .await
    }
    async fn is_local(&self, address: IpAddr) -> Result<bool> {
        self.netlink.is_local(address).await
    }
    async fn fdb_entries(&self, bridge: u32, mac: [u8; 6]) -> Result<Vec<FdbEntry>> {
        self.netlink.fdb_entries(bridge, mac).await
    }
    fn listening(&self, protocol: Protocol, port: u16) -> std::result::Result<bool, Failure> {
        Ok(netplumb::sockets::listening(protocol, port)?)
    }

    /// `SIOCGIFINDEX` on one socket for every look-up of a call
    /// (`if_nametoindex` opens a socket per name).
    fn index_of(&self, name: &str) -> std::result::Result<Option<u32>, Failure> {
        let Some(reply) = self.ifreq(name, libc::SIOCGIFINDEX)? else {
            return Ok(None);
        };
        // SAFETY: on success the kernel filled the ifindex member.
        Ok(Some(unsafe { reply.ifr_ifru.ifru_ifindex } as u32))
    }

    /// `SIOCGIFADDR`: O(1), where a netlink dump of addresses walks every
    /// interface of the namespace (one per container on the bridge).
    fn ipv4_of(&self, name: &str) -> std::result::Result<Option<Ipv4Addr>, Failure> {
        let Some(reply) = self.ifreq(name, libc::SIOCGIFADDR)? else {
            return Ok(None);
        };
        // SAFETY: on success the kernel filled ifru_addr with a sockaddr_in.
        let address = unsafe {
            let sin: libc::sockaddr_in = std::ptr::read_unaligned(
                (&reply.ifr_ifru.ifru_addr as *const libc::sockaddr).cast(),
            );
            sin.sin_addr.s_addr
        };
        Ok(Some(Ipv4Addr::from(u32::from_be(address))))
    }

    /// `BRCTL_GET_PORT_LIST`, the bridge's own ioctl (in every kernel):
    /// the kernel writes each port's ifindex at its port number in our
    /// table, one pass over the bridge's port list under RTNL, with no
    /// netlink message per port and no look-up of the namespace's other
    /// links (a `RTM_GETLINK` dump filtered by master walks them all and
    /// answers with a message of about 2 KiB per port).
    fn port_count(&self, name: &str) -> std::result::Result<Option<u32>, Failure> {
        let mut table = [0 as libc::c_int; BR_MAX_PORTS];
        let mut args: [libc::c_ulong; 4] = [
            BRCTL_GET_PORT_LIST,
            table.as_mut_ptr() as libc::c_ulong,
            BR_MAX_PORTS as libc::c_ulong,
            0,
        ];
        let data = args.as_mut_ptr().cast::<libc::c_char>();
        // SAFETY: ifru_data points at `args`, which names `table` and its
        // length; both outlive the call, and the kernel writes at most
        // BR_MAX_PORTS ints into the table.
        let reply = unsafe { self.ifreq_with(name, SIOCDEVPRIVATE, data) }?;
        Ok(reply.map(|_| table.iter().filter(|&&index| index != 0).count() as u32))
    }
}

impl Kernel {
    /// One interface ioctl by name: `None` when the kernel says no (no such
    /// interface, or for SIOCGIFADDR no IPv4 address).
    fn ifreq(
        &self,
        name: &str,
        request: libc::c_ulong,
    ) -> std::result::Result<Option<libc::ifreq>, Failure> {
        // SAFETY: a null ifru_data: these requests read ifr_name only.
        unsafe { self.ifreq_with(name, request, std::ptr::null_mut()) }
    }

    /// [`Kernel::ifreq`] with `data` in `ifru_data`.
    ///
    /// # Safety
    /// `data` must be what `request` expects there (or null where it
    /// expects nothing), valid for the whole call.
    unsafe fn ifreq_with(
        &self,
        name: &str,
        request: libc::c_ulong,
        data: *mut libc::c_char,
    ) -> std::result::Result<Option<libc::ifreq>, Failure> {
        // SAFETY: ifreq is plain data; zero is a valid value for it.
        let mut ifreq: libc::ifreq = unsafe { std::mem::zeroed() };
        if name.len() >= ifreq.ifr_name.len() {
            return Ok(None);
        }
        ifreq.ifr_ifru.ifru_data = data;
        for (dst, src) in ifreq.ifr_name.iter_mut().zip(name.bytes()) {
            *dst = src as libc::c_char;
        }
        // SAFETY: these requests read ifr_name (and ifru_data, which the
        // caller vouches for) and write ifr_ifru.
        let rc = unsafe { libc::ioctl(self.probe()?.as_raw_fd(), request, &mut ifreq) };
        // Success is not always 0: BRCTL_GET_PORT_LIST answers the size
        // of the table it filled.
        Ok((rc >= 0).then_some(ifreq))
    }
}

/// A namespace kept in a table, for unit tests: every change is recorded
/// in `log` as one line (`delete #5`, `alias #2 ...`).
#[cfg(test)]
pub mod fake {
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::rc::Rc;

    use super::*;
    use netplumb::BridgePort;

    /// A clone is a copy of the namespace as it is (sharing the log).
    #[derive(Default, Clone)]
    pub struct FakeLinks {
        /// The links, by index.
        pub links: RefCell<BTreeMap<u32, Link>>,
        /// Their addresses, by index.
        pub addresses: RefCell<BTreeMap<u32, Vec<IpNetwork>>>,
        /// May be shared with a `FakeFilters`, to see the order of both.
        pub log: Rc<RefCell<Vec<String>>>,
        /// Makes the next `attach` fail.
        pub fail_attach: std::cell::Cell<bool>,
        /// Makes the next `ensure_address` fail.
        pub fail_address: std::cell::Cell<bool>,
        /// What `nsid_of` answers (the tests' one target).
        pub target_nsid: Option<i32>,
        /// The namespace's own addresses (`is_local`).
        pub local: Vec<IpAddr>,
        /// Ports held by sockets (`listening`).
        pub listening: Vec<(Protocol, u16)>,
        /// Bridge ports whose flags differ from the kernel's default.
        pub ports: RefCell<BTreeMap<u32, BridgePort>>,
        /// Static forwarding entries: (bridge, MAC) -> port.
        pub pinned: RefCell<BTreeMap<(u32, [u8; 6]), u32>>,
        /// Ports of every bridge that are not in `links` (`port_count`,
        /// and the kernel's limit in `attach`).
        pub extra_ports: std::cell::Cell<u32>,
    }

    impl FakeLinks {
        /// Adds `link`, as if the kernel had it.
        pub fn add(&self, link: Link) {
            self.links.borrow_mut().insert(link.index, link);
        }

        fn next_index(&self) -> u32 {
            self.links.borrow().keys().max().map_or(1, |i| i + 1)
        }

        /// `link` as a look-up reports it: with its bridge port's flags
        /// (the kernel's defaults unless `ports` has others).
        fn looked_up(&self, mut link: Link) -> Link {
            let default = BridgePort::new(false, netplumb::Learning::On);
            link.port = Some(*self.ports.borrow().get(&link.index).unwrap_or(&default));
            link
        }

        fn record(&self, line: String) {
            self.log.borrow_mut().push(line);
        }
    }

    /// A link as netplumb reports one, with nothing set.
    pub fn link(index: u32, name: &str, kind: Option<&str>) -> Link {
        Link {
            index,
            name: name.into(),
            kind: kind.map(Into::into),
            master: None,
            link: None,
            link_netnsid: None,
            alias: None,
            mtu: Some(1500),
            mac: Some([2, 0, 0, 0, 0, index as u8]),
            up: true,
            port: None,
        }
    }

    impl Links for FakeLinks {
        async fn link_by_name(&self, name: &str) -> Result<Option<Link>> {
            Ok(self
                .links
                .borrow()
                .values()
                .find(|l| l.name == name)
                .cloned()
                .map(|l| self.looked_up(l)))
        }
        async fn link_by_index(&self, index: u32) -> Result<Option<Link>> {
            let link = self.links.borrow().get(&index).cloned();
            Ok(link.map(|l| self.looked_up(l)))
        }
        async fn host_end(&self, name: &str, bridge: u32) -> Result<Option<Link>> {
            Ok(self
                .link_by_name(name)
                .await?
                .filter(|l| l.kind.as_deref() == Some("veth") && l.master == Some(bridge)))
        }
        async fn delete_link(&self, index: u32) -> Result<()> {
            self.record(format!("delete #{index}"));
            self.links.borrow_mut().remove(&index);
            Ok(())
        }
        async fn ensure_bridge(&self, name: &str, _mtu: Option<u32>) -> Result<Bridge> {
            if let Some(link) = self.link_by_name(name).await? {
                return Ok(Bridge {
                    link,
                    created: false,
                });
            }
            let link = link(self.next_index(), name, Some("bridge"));
            self.record(format!("create bridge {name}"));
            self.add(link.clone());
            Ok(Bridge {
                link,
                created: true,
            })
        }
        async fn set_up(&self, index: u32) -> Result<()> {
            self.record(format!("up #{index}"));
            Ok(())
        }
        async fn set_bridge_port(&self, index: u32, port: &BridgePort) -> Result<()> {
            self.record(format!("bridge port #{index} {port:?}"));
            self.ports.borrow_mut().insert(index, *port);
            Ok(())
        }
        async fn pin_mac(&self, index: u32, mac: [u8; 6]) -> Result<()> {
            self.record(format!("pin #{index}"));
            let bridge = self.links.borrow().get(&index).and_then(|l| l.master);
            if let Some(bridge) = bridge {
                self.pinned.borrow_mut().insert((bridge, mac), index);
            }
            Ok(())
        }
        async fn set_alias(&self, index: u32, alias: &str) -> Result<()> {
            self.record(format!("alias #{index} {alias}"));
            if let Some(l) = self.links.borrow_mut().get_mut(&index) {
                l.alias = Some(alias.into());
            }
            Ok(())
        }
        async fn addresses_of(&self, index: u32) -> Result<Vec<IpNetwork>> {
            Ok(self
                .addresses
                .borrow()
                .get(&index)
                .cloned()
                .unwrap_or_default())
        }
        async fn ensure_address(&self, index: u32, address: IpNetwork) -> Result<bool> {
            if self.fail_address.replace(false) {
                return Err(netplumb::Error::InvalidName("injected".into()));
            }
            self.record(format!("address #{index} {address}"));
            self.addresses
                .borrow_mut()
                .entry(index)
                .or_default()
                .push(address);
            Ok(true)
        }
        async fn route_overlapping(
            &self,
            _network: IpNetwork,
            _except_index: Option<u32>,
        ) -> Result<Option<IpNetwork>> {
            Ok(None)
        }
        async fn default_gateways(&self, _v6: bool) -> Result<Vec<(IpAddr, Option<u32>)>> {
            Ok(Vec::new())
        }
        async fn nsid_of(&self, _ns: &NetNs) -> Result<Option<i32>> {
            Ok(self.target_nsid)
        }
        /// Makes the pair: the host end on the bridge here, the peer in
        /// `inside`, pointing at each other; the port's flags and pinned MAC
        /// set and `before_up` run before the host end is brought up
        /// (`up #N` in the log).
        async fn attach<E: From<netplumb::Error>>(
            &self,
            inside: &FakeLinks,
            a: &Attachment<'_>,
            before_up: impl FnOnce(&Link) -> std::result::Result<(), E>,
        ) -> std::result::Result<Attached, E> {
            if self.fail_attach.replace(false) {
                return Err(netplumb::Error::InvalidName("injected".into()).into());
            }
            let bridge = self.links.borrow().get(&a.bridge).map(|b| b.name.clone());
            let ports = bridge.and_then(|name| self.port_count(&name).ok().flatten());
            if ports.unwrap_or(0) >= crate::policy::BRIDGE_PORTS {
                // The kernel refuses the creating request (br_add_if:
                // EXFULL) and unregisters both ends: nothing is made.
                let full = std::io::Error::from_raw_os_error(libc::EXFULL);
                return Err(netplumb::Error::Netlink {
                    step: netplumb::Step::CreateVeth,
                    object: a.host_name.into(),
                    source: netplumb::NetlinkError::Errno(full),
                }
                .into());
            }
            let host_index = self.next_index();
            let peer_index = inside.next_index();
            self.record(format!(
                "attach {} peer {} addresses {} gateways {}",
                a.host_name,
                a.peer_name,
                a.addresses.len(),
                a.gateways.len()
            ));
            let mut host = link(host_index, a.host_name, Some("veth"));
            host.master = Some(a.bridge);
            host.link = Some(peer_index);
            host.link_netnsid = self.target_nsid;
            host.up = false;
            self.add(host.clone());
            let port = BridgePort::new(a.isolated, a.learning);
            if !port.is_default() {
                self.ports.borrow_mut().insert(host_index, port);
            }
            if let netplumb::Learning::Pinned(mac) = a.learning {
                self.pinned.borrow_mut().insert((a.bridge, mac), host_index);
            }
            if let Err(e) = before_up(&host) {
                self.delete_link(host_index).await?;
                return Err(e);
            }
            self.set_up(host_index).await?;
            if let Some(l) = self.links.borrow_mut().get_mut(&host_index) {
                l.up = true;
            }
            let mut peer = link(peer_index, a.peer_name, Some("veth"));
            peer.link = Some(host_index);
            if a.peer_mac.is_some() {
                peer.mac = a.peer_mac;
            }
            inside.add(peer.clone());
            Ok(Attached { host_index, peer })
        }
        async fn is_local(&self, address: IpAddr) -> Result<bool> {
            Ok(self.local.contains(&address))
        }
        async fn fdb_entries(&self, bridge: u32, mac: [u8; 6]) -> Result<Vec<FdbEntry>> {
            Ok(self
                .pinned
                .borrow()
                .get(&(bridge, mac))
                .map(|&port| FdbEntry {
                    port,
                    is_static: true,
                    sticky: true,
                })
                .into_iter()
                .collect())
        }
        fn listening(&self, protocol: Protocol, port: u16) -> std::result::Result<bool, Failure> {
            Ok(self.listening.contains(&(protocol, port)))
        }
        fn index_of(&self, name: &str) -> std::result::Result<Option<u32>, Failure> {
            Ok(self
                .links
                .borrow()
                .values()
                .find(|l| l.name == name)
                .map(|l| l.index))
        }
        fn port_count(&self, name: &str) -> std::result::Result<Option<u32>, Failure> {
            let links = self.links.borrow();
            let Some(bridge) = links.values().find(|l| l.name == name) else {
                return Ok(None);
            };
            let ports = links.values().filter(|l| l.master == Some(bridge.index));
            Ok(Some(ports.count() as u32 + self.extra_ports.get()))
        }
        fn ipv4_of(&self, name: &str) -> std::result::Result<Option<Ipv4Addr>, Failure> {
            let Some(index) = self.index_of(name)? else {
                return Ok(None);
            };
            Ok(self
                .addresses
                .borrow()
                .get(&index)
                .into_iter()
                .flatten()
                .find_map(|a| match a {
                    IpNetwork::V4(v4) => Some(v4.ip()),
                    IpNetwork::V6(_) => None,
                }))
        }
    }
}
