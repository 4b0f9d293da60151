//! Links: bridges, veth pairs, and the operations on them.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use futures::StreamExt;
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload, NLM_F_REQUEST};
use rtnetlink::packet_route::nsid::{NsidAttribute, NsidMessage};
use rtnetlink::packet_route::RouteNetlinkMessage;

use futures::TryStreamExt;

use rtnetlink::packet_route::link::{
    AfSpecInet6, AfSpecUnspec, In6AddrGenMode, InfoData, InfoKind, InfoPortData, InfoVeth,
    LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use rtnetlink::{LinkBridge, LinkMessageBuilder, LinkUnspec, LinkVeth};

use crate::bridge_port::BridgePort;
use crate::error::{Error, Result, Step};
use crate::netlink::{first, Netlink};
use crate::netns::NetNs;

/// The loopback device has this index in every network namespace.
const LOOPBACK_IFINDEX: u32 = 1;

/// What the kernel reports about one link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The interface index, in the namespace of the session that reported it.
    pub index: u32,
    /// The interface name.
    pub name: String,
    /// `IFLA_INFO_KIND` ("bridge", "veth", ...); `None` for physical devices.
    pub kind: Option<String>,
    /// Index of the bridge (or other controller) this link is attached to.
    pub master: Option<u32>,
    /// `IFLA_LINK`: for a veth, the index of its peer (in the peer's
    /// namespace).
    pub link: Option<u32>,
    /// `IFLA_LINK_NETNSID`: for a veth whose peer is in another namespace,
    /// that namespace's id as seen from this one; negative once the peer's
    /// namespace is dead (the kernel then tears the pair down shortly).
    pub link_netnsid: Option<i32>,
    /// `IFLA_IFALIAS`, the free-text description (`ip link set NAME alias`).
    pub alias: Option<String>,
    /// The MTU.
    pub mtu: Option<u32>,
    /// The hardware address, for links that have a 6-byte one.
    pub mac: Option<[u8; 6]>,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// Its flags as a bridge port, when it is one (the kernel reports them
    /// in every look-up of a port: no request of their own).
    pub port: Option<BridgePort>,
}

impl Link {
    fn from_message(msg: LinkMessage) -> Link {
        let mut link = Link {
            index: msg.header.index,
            name: String::new(),
            kind: None,
            master: None,
            link: None,
            link_netnsid: None,
            alias: None,
            mtu: None,
            mac: None,
            up: msg.header.flags.contains(LinkFlags::Up),
            port: None,
        };
        for attr in msg.attributes {
            match attr {
                LinkAttribute::IfName(name) => link.name = name,
                LinkAttribute::Controller(index) => link.master = Some(index),
                LinkAttribute::Link(index) => link.link = Some(index),
                LinkAttribute::LinkNetNsId(id) => link.link_netnsid = Some(id),
                LinkAttribute::IfAlias(alias) => link.alias = Some(alias),
                LinkAttribute::Mtu(mtu) => link.mtu = Some(mtu),
                LinkAttribute::Address(a) => link.mac = <[u8; 6]>::try_from(a.as_slice()).ok(),
                LinkAttribute::LinkInfo(infos) => {
                    for info in infos {
                        match info {
                            LinkInfo::Kind(kind) => link.kind = Some(kind.to_string()),
                            LinkInfo::PortData(InfoPortData::BridgePort(flags)) => {
                                link.port = Some(BridgePort::from_flags(flags))
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        link
    }

    /// Whether this is a veth whose peer's namespace has already died: the
    /// kernel deletes such a pair asynchronously, a few milliseconds after
    /// the namespace's last process is gone.
    pub fn peer_namespace_dead(&self) -> bool {
        self.link_netnsid.is_some_and(|id| id < 0)
    }

    /// The kind as a phrase for messages ("a veth", "a physical device").
    pub fn describe_kind(&self) -> String {
        match &self.kind {
            Some(kind) => format!("a {kind} device"),
            None => "a device without a link kind (physical or loopback)".to_string(),
        }
    }
}

/// A bridge found or made by [`Netlink::ensure_bridge`].
#[derive(Debug, Clone)]
pub struct Bridge {
    /// The bridge as the kernel reports it.
    pub link: Link,
    /// True when this call created it (and so should remove it on rollback).
    pub created: bool,
}

/// A veth pair to create in one `RTM_NEWLINK` request.
#[derive(Debug, Clone, Copy)]
pub struct VethPair<'a> {
    /// Name of the end that stays in the session's namespace.
    pub name: &'a str,
    /// Name of the other end.
    pub peer_name: &'a str,
    /// Namespace the peer is created in directly (no later move).
    pub peer_netns: Option<BorrowedFd<'a>>,
    /// Bridge to attach the local end to, at creation.
    pub master: Option<u32>,
    /// MTU of both ends; the kernel default when `None`.
    pub mtu: Option<u32>,
    /// The peer's MAC address, set in the same request (so the peer never
    /// has another); a random one when `None`.
    pub peer_mac: Option<[u8; 6]>,
    /// Create the local end administratively up. The peer is always born
    /// down: the kernel cannot open one half of a pair before the pair is
    /// complete (veth_open fails with ENOTCONN), so bring it up afterwards
    /// from a session in its namespace.
    pub up: bool,
}

/// Checks a name against `^[A-Za-z0-9_.-]{1,15}$` (and rejects `.` and
/// `..`): a name the kernel accepts that is also safe as a file name.
pub fn check_name(name: &str) -> Result<()> {
    let ok = (1..=15).contains(&name.len())
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidName(name.to_string()))
    }
}

impl Netlink {
    /// Looks one link up by name without dumping the link table.
    pub async fn link_by_name(&self, name: &str) -> Result<Option<Link>> {
        check_name(name)?;
        let request = self.handle().link().get().match_name(name.to_string());
        self.link_query(request, name).await
    }

    /// Looks one link up by index.
    pub async fn link_by_index(&self, index: u32) -> Result<Option<Link>> {
        let request = self.handle().link().get().match_index(index);
        self.link_query(request, &format!("#{index}")).await
    }

    async fn link_query(
        &self,
        request: rtnetlink::LinkGetRequest,
        object: &str,
    ) -> Result<Option<Link>> {
        match first(request.execute()).await {
            Ok(msg) => Ok(msg.map(Link::from_message)),
            Err(e) => {
                let err = Error::netlink(Step::LookUpLink, object, e);
                if err.errno() == Some(libc::ENODEV) {
                    Ok(None)
                } else {
                    Err(err)
                }
            }
        }
    }

    /// Returns the bridge `name`, creating it (up, with `mtu`) if no device
    /// of that name exists. A device of that name that is not a bridge is
    /// never modified: [`Error::NotABridge`].
    pub async fn ensure_bridge(&self, name: &str, mtu: Option<u32>) -> Result<Bridge> {
        check_name(name)?;
        if let Some(link) = self.link_by_name(name).await? {
            return as_bridge(link, false);
        }
        // A fixed address: otherwise the bridge takes the lowest MAC of its
        // ports and changes it whenever that port leaves, and every
        // container's cached gateway MAC goes stale.
        let mut builder = LinkBridge::new(name).address(random_local_mac()?.to_vec());
        if let Some(mtu) = mtu {
            builder = builder.mtu(mtu);
        }
        let created = match self.handle().link().add(builder.build()).execute().await {
            Ok(()) => true,
            Err(e) => {
                let err = Error::netlink(Step::CreateBridge, name, e);
                // Someone else created it between our look-up and create.
                if err.errno() != Some(libc::EEXIST) {
                    return Err(err);
                }
                false
            }
        };
        match self.link_by_name(name).await? {
            Some(link) => as_bridge(link, created),
            None => Err(Error::os(
                Step::LookUpLink,
                name,
                std::io::Error::from_raw_os_error(libc::ENODEV),
            )),
        }
    }

    /// Creates a veth pair in a single exclusive `RTM_NEWLINK`: the peer is
    /// born in `peer_netns`, the local end is born attached to `master`. No
    /// half of the pair ever exists without the other, and nothing is moved
    /// between namespaces afterwards (moving costs ~20 ms, creating ~0.3 ms).
    pub async fn create_veth_pair(&self, pair: &VethPair<'_>) -> Result<()> {
        check_name(pair.name)?;
        check_name(pair.peer_name)?;
        let mut peer = LinkUnspec::new_with_name(pair.peer_name);
        let mut local = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
            .name(pair.name.to_string());
        if pair.up {
            local = local.up();
        }
        if let Some(mtu) = pair.mtu {
            peer = peer.mtu(mtu);
            local = local.mtu(mtu);
        }
        if let Some(mac) = pair.peer_mac {
            peer = peer.address(mac.to_vec());
        }
        if let Some(fd) = pair.peer_netns {
            peer = peer.setns_by_fd(fd.as_raw_fd());
        }
        if let Some(master) = pair.master {
            local = local.controller(master);
        }
        let message = local
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer.build())))
            .build();
        self.handle()
            .link()
            .add(message)
            .execute()
            .await
            .map_err(|e| Error::netlink(Step::CreateVeth, pair.name, e))
    }

    /// Attaches link `index` to bridge `master`.
    pub async fn set_master(&self, index: u32, master: u32) -> Result<()> {
        let message = LinkUnspec::new_with_index(index).controller(master).build();
        self.set_link(message, Step::SetMaster, index).await
    }

    /// Brings link `index` administratively up.
    pub async fn set_up(&self, index: u32) -> Result<()> {
        let message = LinkUnspec::new_with_index(index).up().build();
        self.set_link(message, Step::SetUp, index).await
    }

    /// Brings link `index` up with IPv6 address generation off
    /// (`addrgenmode none`), set before the link comes up so that no
    /// link-local address is ever made. A bridge port, or an interface on an IPv4-only network,
    /// then sends no DAD, router solicitations or MLD reports, which a
    /// bridge would flood to every port: with many ports that background
    /// work is what makes each new port cost more than the last.
    pub async fn set_up_quiet(&self, index: u32) -> Result<()> {
        self.set_up_generating(index, In6AddrGenMode::None).await
    }

    /// Brings link `index` up with its IPv6 link-local address derived from
    /// its MAC address (`addrgenmode eui64`), whatever the namespace's
    /// default mode: a guard that knows the MAC knows the address.
    pub async fn set_up_eui64(&self, index: u32) -> Result<()> {
        self.set_up_generating(index, In6AddrGenMode::Eui64).await
    }

    /// Two requests: the mode while the link is down, then up. In one
    /// request, some kernels (5.10 and 6.1 here; not 6.18) bring the link up
    /// before they apply `IFLA_AF_SPEC` (`do_setlink`'s order), so the
    /// default mode has made its link-local address by then.
    async fn set_up_generating(&self, index: u32, mode: In6AddrGenMode) -> Result<()> {
        let message = LinkUnspec::new_with_index(index)
            .append_extra_attribute(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(
                vec![AfSpecInet6::AddrGenMode(mode)],
            )]))
            .build();
        match self.set_link(message, Step::SetUp, index).await {
            // A kernel without IPv6 generates no addresses at all.
            Err(e) if e.errno() == Some(libc::EAFNOSUPPORT) => {}
            other => other?,
        }
        self.set_up(index).await
    }

    /// The id this session's namespace gives namespace `ns` (`RTM_GETNSID`),
    /// the id a link whose peer is there reports as its `link_netnsid`;
    /// `None` if none is assigned (no link here has a peer there).
    pub async fn nsid_of(&self, ns: &NetNs) -> Result<Option<i32>> {
        let mut message = NsidMessage::default();
        message
            .attributes
            .push(NsidAttribute::Fd(ns.as_fd().as_raw_fd() as u32));
        let mut request = NetlinkMessage::from(RouteNetlinkMessage::GetNsId(message));
        request.header.flags = NLM_F_REQUEST;
        let fail = |e| Error::netlink(Step::QueryNamespace, "nsid", e);
        let mut replies = self.handle().clone().request(request).map_err(fail)?;
        while let Some(reply) = replies.next().await {
            match reply.payload {
                NetlinkPayload::Error(e) => {
                    return Err(fail(rtnetlink::Error::NetlinkError(e)));
                }
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewNsId(reply)) => {
                    return Ok(reply.attributes.iter().find_map(|a| match a {
                        NsidAttribute::Id(id) if *id >= 0 => Some(*id),
                        _ => None,
                    }));
                }
                _ => {}
            }
        }
        Ok(None)
    }

    /// Sets the alias (`IFLA_IFALIAS`) of link `index`.
    pub async fn set_alias(&self, index: u32, alias: &str) -> Result<()> {
        let message = LinkUnspec::new_with_index(index)
            .append_extra_attribute(LinkAttribute::IfAlias(alias.to_string()))
            .build();
        self.set_link(message, Step::SetAlias, index).await
    }

    /// Renames link `index` (the link must be down).
    pub async fn rename(&self, index: u32, name: &str) -> Result<()> {
        check_name(name)?;
        let message = LinkUnspec::new_with_index(index)
            .name(name.to_string())
            .build();
        self.set_link(message, Step::Rename, index).await
    }

    /// Brings `lo` up.
    pub async fn loopback_up(&self) -> Result<()> {
        self.set_up(LOOPBACK_IFINDEX).await
    }

    /// Deletes link `index`; for a veth this removes both ends.
    pub async fn delete_link(&self, index: u32) -> Result<()> {
        self.handle()
            .link()
            .del(index)
            .execute()
            .await
            .map_err(|e| Error::netlink(Step::DeleteLink, format!("#{index}"), e))
    }

    /// The links attached to bridge `bridge` (one dump that the kernel
    /// filters by `IFLA_MASTER`).
    pub async fn bridge_ports(&self, bridge: u32) -> Result<Vec<Link>> {
        let ports = self
            .dump(Some(bridge), format!("ports of #{bridge}"))
            .await?;
        // Kernels that ignore the filter answer with every link.
        Ok(ports
            .into_iter()
            .filter(|l| l.master == Some(bridge))
            .collect())
    }

    /// Every link of the namespace: one dump, in proportion to their
    /// number, so for collection and not for a per-container call.
    pub async fn links(&self) -> Result<Vec<Link>> {
        self.dump(None, "links".to_string()).await
    }

    /// A link dump, filtered by the kernel by `master` if given.
    async fn dump(&self, master: Option<u32>, object: String) -> Result<Vec<Link>> {
        let mut request = self.handle().link().get();
        if let Some(bridge) = master {
            request
                .message_mut()
                .attributes
                .push(LinkAttribute::Controller(bridge));
        }
        let stream = request.execute();
        futures::pin_mut!(stream);
        let mut links = Vec::new();
        while let Some(msg) = stream
            .try_next()
            .await
            .map_err(|e| Error::netlink(Step::ListLinks, &object, e))?
        {
            links.push(Link::from_message(msg));
        }
        Ok(links)
    }

    async fn set_link(&self, message: LinkMessage, step: Step, index: u32) -> Result<()> {
        self.handle()
            .link()
            .set(message)
            .execute()
            .await
            .map_err(|e| Error::netlink(step, format!("#{index}"), e))
    }
}

/// A random unicast, locally administered MAC address.
fn random_local_mac() -> Result<[u8; 6]> {
    let mut mac = [0u8; 6];
    // SAFETY: getrandom(2) writes at most mac.len() bytes into mac.
    let n = unsafe { libc::getrandom(mac.as_mut_ptr().cast(), mac.len(), 0) };
    if n != mac.len() as isize {
        return Err(Error::os(
            Step::CreateBridge,
            "random MAC address",
            std::io::Error::last_os_error(),
        ));
    }
    mac[0] = (mac[0] & 0xfe) | 0x02;
    Ok(mac)
}

fn as_bridge(link: Link, created: bool) -> Result<Bridge> {
    if link.kind.as_deref() == Some("bridge") {
        Ok(Bridge { link, created })
    } else {
        Err(Error::NotABridge {
            kind: link.describe_kind(),
            name: link.name,
        })
    }
}

impl Bridge {
    /// An existing link as a bridge this call did not create; a link that
    /// is not a bridge is [`Error::NotABridge`] (and must not be touched).
    pub fn existing(link: Link) -> Result<Bridge> {
        as_bridge(link, false)
    }
}

#[cfg(test)]
mod tests {
    use super::check_name;

    #[test]
    fn names() {
        for good in ["veth0", "brg0", "a", "A-b_c.d", "123456789012345"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", ".", "..", "a/b", "1234567890123456", "a b", "ä", "x\0"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
