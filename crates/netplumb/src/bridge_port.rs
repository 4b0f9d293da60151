//! Bridge ports: what the bridge does with the frames of one port
//! (isolation, learning, unknown-unicast flooding) and the forwarding
//! database entries that tie a MAC address to a port.
//!
//! This is the layer of a port's guard that lives in the bridge itself, not
//! in the nftables ruleset, so that no `nft flush ruleset` reaches it. A
//! pinned port ([`Learning::Pinned`]):
//!
//! * teaches the bridge nothing (`IFLA_BRPORT_LEARNING` off). The bridge
//!   learns a source MAC in two places, `br_handle_frame_finish` for frames
//!   it forwards and `__br_handle_local_finish` for frames to the reserved
//!   link-local groups 01:80:c2:00:00:0X (which never pass bridge
//!   prerouting), and both check `BR_LEARNING` on the port first;
//! * gets no unknown unicast (`IFLA_BRPORT_UNICAST_FLOOD` off): a frame for
//!   a MAC the bridge does not know is not flooded to it. Broadcast and
//!   multicast still are (ARP, DHCP and neighbour discovery need them);
//! * has a static entry for its container's MAC (`NUD_NOARP`, `NTF_STICKY`):
//!   frames for that MAC go to that port only. Sticky, because
//!   `br_fdb_update` moves a static entry that is not sticky to whatever
//!   port (with learning on) next sends from that MAC;
//! * forwards every reserved link-local group but pause
//!   (`IFLA_BRPORT_GROUP_FWD_MASK` [`LINK_LOCAL_FORWARDED`]): in
//!   `br_handle_frame` a frame to 01:80:c2:00:00:0X whose bit is in the mask
//!   takes the forwarding path, through bridge prerouting, where the guard's
//!   bridge-family chain sees it; without it LLDP (0x0E) goes to the host
//!   end's own stack past every bridge hook, and the others pass only
//!   bridge input (see `nft/guard/BRIDGE-PATHS.md`).

use futures::StreamExt;
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload, NLM_F_REQUEST};
use rtnetlink::packet_route::link::{InfoBridgePort, InfoPortData, InfoPortKind};
use rtnetlink::packet_route::neighbour::{
    NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::LinkUnspec;

use crate::error::{Error, Result, Step};
use crate::netlink::Netlink;

/// What the bridge learns from a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Learning {
    /// The kernel's default: the bridge learns every source MAC the port
    /// sends, and floods unknown unicast to it.
    On,
    /// The port's MAC is pinned: the bridge learns nothing from the port,
    /// floods no unknown unicast to it, and a static, sticky forwarding
    /// entry sends frames for this MAC (the container's) to it.
    Pinned([u8; 6]),
}

/// The port group forwarding mask of a pinned port: every reserved
/// link-local group 01:80:c2:00:00:00 to 0f but 01 (pause, which the bridge
/// drops whatever the mask says, and which `br_setport` refuses in the mask
/// with `EINVAL`).
pub const LINK_LOCAL_FORWARDED: u16 = 0xfffd;

/// The flags of a bridge port that this crate sets and reads back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BridgePort {
    /// `IFLA_BRPORT_ISOLATED`: isolated ports do not forward to each other,
    /// only to ports that are not isolated and to the bridge itself.
    pub isolated: bool,
    /// `IFLA_BRPORT_LEARNING`: the bridge learns source MACs from the port.
    pub learning: bool,
    /// `IFLA_BRPORT_UNICAST_FLOOD`: unknown unicast is flooded to the port.
    pub unicast_flood: bool,
    /// `IFLA_BRPORT_GROUP_FWD_MASK`: the reserved link-local groups
    /// (bit `X` for 01:80:c2:00:00:0X) the bridge forwards from the port,
    /// through its prerouting hook, instead of handing them to the port's
    /// own stack (0, the kernel's default; [`LINK_LOCAL_FORWARDED`] when
    /// pinned).
    pub group_fwd_mask: u16,
}

impl BridgePort {
    /// The port's flags as the kernel reports them in a link's
    /// `IFLA_INFO_SLAVE_DATA`; it reports every flag, and absent ones read
    /// as its defaults.
    pub(crate) fn from_flags(flags: Vec<InfoBridgePort>) -> BridgePort {
        let mut port = BridgePort::new(false, Learning::On);
        for flag in flags {
            match flag {
                InfoBridgePort::Isolated(on) => port.isolated = on,
                InfoBridgePort::Learning(on) => port.learning = on,
                InfoBridgePort::UnicastFlood(on) => port.unicast_flood = on,
                InfoBridgePort::GroupFwdMask(mask) => port.group_fwd_mask = mask,
                _ => {}
            }
        }
        port
    }

    /// A port with `isolated` and `learning` (learning and unicast flooding
    /// on and no link-local group forwarded for [`Learning::On`], the
    /// kernel's default; learning and flooding off and
    /// [`LINK_LOCAL_FORWARDED`] when pinned).
    pub fn new(isolated: bool, learning: Learning) -> BridgePort {
        let on = learning == Learning::On;
        BridgePort {
            isolated,
            learning: on,
            unicast_flood: on,
            group_fwd_mask: if on { 0 } else { LINK_LOCAL_FORWARDED },
        }
    }

    /// Whether these are the flags the kernel gives a new port.
    pub fn is_default(&self) -> bool {
        *self == BridgePort::new(false, Learning::On)
    }
}

/// One entry of a bridge's forwarding database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdbEntry {
    /// The port frames for the MAC go to.
    pub port: u32,
    /// Static (`NUD_NOARP`, added by hand): it never ages out.
    pub is_static: bool,
    /// Sticky (`NTF_STICKY`): learning on another port never moves it.
    pub sticky: bool,
}

impl Netlink {
    /// Sets isolation, learning, unknown-unicast flooding and the group
    /// forwarding mask of bridge port `index` in one request (`RTM_NEWLINK` with the bridge port's
    /// `IFLA_INFO_SLAVE_DATA`: `RTM_SETLINK` ignores port data). Needs
    /// Linux 4.18 (isolation).
    pub async fn set_bridge_port(&self, index: u32, port: &BridgePort) -> Result<()> {
        let message = LinkUnspec::new_with_index(index)
            .set_port_kind(InfoPortKind::Bridge)
            .set_port_data(InfoPortData::BridgePort(vec![
                InfoBridgePort::Isolated(port.isolated),
                InfoBridgePort::Learning(port.learning),
                InfoBridgePort::UnicastFlood(port.unicast_flood),
                InfoBridgePort::GroupFwdMask(port.group_fwd_mask),
            ]))
            .build();
        self.handle()
            .link()
            .set_port(message)
            .execute()
            .await
            .map_err(|e| Error::netlink(Step::SetBridgePort, format!("#{index}"), e))
    }

    /// The flags of link `index` as a bridge port (`None` when it is no
    /// bridge port, or no link): [`Link::port`](crate::Link::port) of its
    /// look-up.
    pub async fn bridge_port(&self, index: u32) -> Result<Option<BridgePort>> {
        Ok(self.link_by_index(index).await?.and_then(|link| link.port))
    }

    /// Pins `mac` to bridge port `port`: a static (`NUD_NOARP`), sticky
    /// forwarding entry on the port's bridge (`NTF_MASTER`), replacing any
    /// entry for that MAC. A kernel that refuses `NTF_STICKY` (before 5.3)
    /// gets a static entry without it.
    pub async fn pin_mac(&self, port: u32, mac: [u8; 6]) -> Result<()> {
        let add = |flags| {
            self.handle()
                .neighbours()
                .add_bridge(port, &mac)
                .state(NeighbourState::Noarp)
                .flags(flags)
                .replace()
                .execute()
        };
        let fail = |e| Error::netlink(Step::PinMac, format!("{} on #{port}", mac_text(&mac)), e);
        match add(NeighbourFlags::Controller | NeighbourFlags::Sticky).await {
            Err(e) => {
                let err = fail(e);
                if err.errno() != Some(libc::EINVAL) {
                    return Err(err);
                }
                add(NeighbourFlags::Controller).await.map_err(fail)
            }
            Ok(()) => Ok(()),
        }
    }

    /// The entries of bridge `bridge`'s forwarding database for `mac` on
    /// VLANs 0 and 1, each port and kind once. Each VLAN is one
    /// single-entry get (`RTM_GETNEIGH` without `NLM_F_DUMP`, family
    /// `AF_BRIDGE`: `rtnl_fdb_get`, `br_fdb_get`, Linux 5.0), so the cost
    /// does not grow with the bridge's ports, where a dump of the
    /// namespace's bridge entries lists every port's.
    ///
    /// The bridge holds at most one entry per MAC and VLAN. VLAN 0 is the
    /// one it learns into and forwards by with VLAN filtering off. VLAN 1
    /// is the bridge's default VLAN: on a kernel built with VLAN filtering
    /// every port has it even with filtering off, an entry added without
    /// a VLAN, as [`pin_mac`](Self::pin_mac) adds it, is added for VLAN 0
    /// and again for each of the port's VLANs (`br_fdb_add`), and with
    /// filtering on the bridge learns into and forwards by the port's
    /// VLAN (1 unless root set another). A VLAN without an entry
    /// (`ENOENT`; always so for VLAN 1 on a kernel without VLAN
    /// filtering) adds nothing. Other VLANs exist only where root made
    /// them, and are not asked.
    pub async fn fdb_entries(&self, bridge: u32, mac: [u8; 6]) -> Result<Vec<FdbEntry>> {
        let mut entries = Vec::new();
        for vlan in [None, Some(1)] {
            if let Some(entry) = self.fdb_entry(bridge, mac, vlan).await? {
                if !entries.contains(&entry) {
                    entries.push(entry);
                }
            }
        }
        Ok(entries)
    }

    /// Bridge `bridge`'s forwarding entry for `mac` on `vlan` (`None`:
    /// VLAN 0, which the kernel takes when `NDA_VLAN` is absent; it
    /// refuses `NDA_VLAN` 0), `None` when there is none (`ENOENT`). The
    /// request is what `rtnl_fdb_get` accepts (`valid_fdb_get_strict`,
    /// strict on every kernel): the header's state, type and flags zero,
    /// the bridge in `NDA_MASTER` (its index in the header would name a
    /// port), `NDA_LLADDR`, and `NDA_VLAN` only for a VLAN.
    async fn fdb_entry(
        &self,
        bridge: u32,
        mac: [u8; 6],
        vlan: Option<u16>,
    ) -> Result<Option<FdbEntry>> {
        let mut message = NeighbourMessage::default();
        message.header.family = AddressFamily::Bridge;
        message.attributes = vec![
            NeighbourAttribute::Controller(bridge),
            NeighbourAttribute::LinkLayerAddress(mac.to_vec()),
        ];
        message
            .attributes
            .extend(vlan.map(NeighbourAttribute::Vlan));
        let mut request = NetlinkMessage::from(RouteNetlinkMessage::GetNeighbour(message));
        request.header.flags = NLM_F_REQUEST;
        let object = || {
            let vlan = vlan.unwrap_or(0);
            format!("{} on bridge #{bridge} vlan {vlan}", mac_text(&mac))
        };
        let fail = |e| Error::netlink(Step::GetFdb, object(), e);
        let mut replies = self.handle().clone().request(request).map_err(fail)?;
        let reply = replies
            .next()
            .await
            .ok_or_else(|| fail(rtnetlink::Error::RequestFailed))?;
        let msg = match reply.payload {
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewNeighbour(msg)) => msg,
            NetlinkPayload::Error(e) => {
                let err = fail(rtnetlink::Error::NetlinkError(e));
                return match err.errno() {
                    Some(libc::ENOENT) => Ok(None),
                    _ => Err(err),
                };
            }
            payload => {
                let reply = NetlinkMessage::new(reply.header, payload);
                return Err(fail(rtnetlink::Error::UnexpectedMessage(reply)));
            }
        };
        // The entry found by MAC and VLAN on `bridge`, whichever port it
        // names (`ndm_ifindex`: the port, or the bridge for its own).
        Ok(Some(FdbEntry {
            port: msg.header.ifindex,
            is_static: msg.header.state == NeighbourState::Noarp,
            sticky: msg.header.flags.contains(NeighbourFlags::Sticky),
        }))
    }
}

/// `02:6e:...` for messages.
pub(crate) fn mac_text(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_ports_neither_learn_nor_get_unknown_unicast() {
        let mac = [2, 0x6e, 10, 0, 0, 2];
        assert_eq!(
            BridgePort::new(true, Learning::Pinned(mac)),
            BridgePort {
                isolated: true,
                learning: false,
                unicast_flood: false,
                group_fwd_mask: 0xfffd,
            }
        );
        assert!(BridgePort::new(false, Learning::On).is_default());
        assert!(!BridgePort::new(true, Learning::On).is_default());
        assert!(!BridgePort::new(false, Learning::Pinned(mac)).is_default());
        assert_eq!(mac_text(&mac), "02:6e:0a:00:00:02");
    }
}
