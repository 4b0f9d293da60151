//! The configured bridge: made sure of (created, up, its addresses) and
//! claimed by this state; a bridge created here that cannot be made ready
//! is deleted again before the failure is returned.

use ipnetwork::{IpNetwork, Ipv4Network};
use netplumb::marks::Manager;
use netplumb::{Bridge, Link};

use crate::error::Failure;
use crate::filters::Filters;
use crate::leases::TOKEN_PREFIX;
use crate::links::Links;
use crate::policy::BRIDGE_PORTS;

use super::Session;

impl<L: Links, F: Filters> Session<'_, L, F> {
    /// The configured bridge, up, claimed by this state and with its
    /// addresses (`created` if this call made it). A bridge it created and
    /// could not make ready is deleted again.
    pub(super) async fn ensure_bridge(&self) -> Result<Bridge, Failure> {
        let (bridge, has_gateway) = self.find_or_create_bridge().await?;
        match self.ready(&bridge, has_gateway).await {
            Err(e) if bridge.created => {
                let _ = self.sockets.host.delete_link(bridge.link.index).await;
                Err(e)
            }
            result => result.map(|()| bridge),
        }
    }

    /// The configured bridge, found or created, and whether it has its
    /// gateway address. Before a bridge is created, and whenever it lacks
    /// its address (a call killed half way may have left it so), its
    /// subnet must not overlap a route of the host.
    async fn find_or_create_bridge(&self) -> Result<(Bridge, bool), Failure> {
        let network = &self.request.network;
        let gateway = network.gateway;
        let subnet = Ipv4Network::new(gateway.network(), gateway.prefix()).expect("valid prefix");
        let existing = self
            .sockets
            .host
            .link_by_name(&network.bridge)
            .await?
            .map(Bridge::existing)
            .transpose()?;
        // One ioctl, not a dump of every address in the namespace.
        let has_gateway = match &existing {
            Some(bridge) => self.sockets.host.ipv4_of(&bridge.link.name)? == Some(gateway.ip()),
            None => false,
        };
        if !has_gateway {
            let own = existing.as_ref().map(|b| b.link.index);
            if let Some(route) = self
                .sockets
                .host
                .route_overlapping(IpNetwork::V4(subnet), own)
                .await?
            {
                return Err(Failure::refused(format!(
                    "{subnet} overlaps the host's route to {route}; choose another subnet"
                )));
            }
        }
        let bridge = match existing {
            Some(bridge) => bridge,
            None => {
                self.sockets
                    .host
                    .ensure_bridge(&network.bridge, network.mtu)
                    .await?
            }
        };
        Ok((bridge, has_gateway))
    }

    /// `bridge` claimed by this state, up, with its addresses.
    async fn ready(&self, bridge: &Bridge, has_gateway: bool) -> Result<(), Failure> {
        let network = &self.request.network;
        let gateway = network.gateway;
        self.claim(&bridge.link).await?;
        if !bridge.link.up {
            // The configured bridge is ours to bring up: down, it would
            // leave every container without its gateway.
            self.sockets.host.set_up(bridge.link.index).await?;
        }
        for address in network.bridge_addresses() {
            if !(has_gateway && address == IpNetwork::V4(gateway)) {
                self.sockets
                    .host
                    .ensure_address(bridge.link.index, address)
                    .await?;
            }
        }
        Ok(())
    }

    /// Refuses, before anything is made, a call for a bridge that already
    /// holds [`BRIDGE_PORTS`], the most a Linux bridge can, if the call
    /// would make firewall state that outlives its undo (the network's
    /// publication table, masquerade, isolation or hairpin rules). Any
    /// other call leaves the refusal to the kernel: it refuses the pair's
    /// creating request with EXFULL and unregisters both ends, and the
    /// call undoes its lease ([`Session::full`]). The ports are counted
    /// from the host side by one ioctl, which walks the bridge's ports.
    pub(super) fn check_room(&self, bridge: &Link) -> Result<(), Failure> {
        let network = &self.request.network;
        if self.request.publish.is_empty() && !network.nat && !network.isolate {
            return Ok(());
        }
        let ports = self.sockets.host.port_count(&bridge.name)?.unwrap_or(0);
        if ports < BRIDGE_PORTS {
            return Ok(());
        }
        Err(self.full(bridge))
    }

    /// Why a call for `bridge` is refused when the bridge holds
    /// [`BRIDGE_PORTS`] ports: its name, its limit and what to do.
    pub(super) fn full(&self, bridge: &Link) -> Failure {
        Failure::unavailable(format!(
            "bridge {} of network {} is full: it holds {BRIDGE_PORTS} ports, the most a Linux \
             bridge can: no container can join it until one leaves (netsetgo -delete, or a \
             container that exits); an administrator can add a network with a bridge of its own",
            bridge.name, self.request.network.name
        ))
    }

    /// Makes sure the bridge is managed by this state (security.md 15): its
    /// alias names the state that hands out its addresses. A bridge that
    /// names another state (the same network namespace seen with another
    /// /run) is refused, and so is one the CNI plugin manages (its ports
    /// have no lease here, and ours would bypass its engine); an unnamed
    /// one is claimed. Only root can set the alias of a bridge in the
    /// host's namespace, so no caller can forge either mark.
    async fn claim(&self, bridge: &Link) -> Result<(), Failure> {
        let token = self.store.token()?;
        match bridge.alias.as_deref() {
            Some(alias) if alias == token => Ok(()),
            _ if Manager::of(bridge) == Some(Manager::CniPlugin) => Err(Failure::refused(format!(
                "bridge {} is managed by {}; choose a network whose bridge netsetgo manages",
                bridge.name,
                Manager::CniPlugin.describe()
            ))),
            Some(alias) if alias.starts_with(TOKEN_PREFIX) => Err(Failure::refused(format!(
                "bridge {} is managed by netsetgo state in another /run (another mount namespace); \
                 call netsetgo from there, or, if that state is gone, an administrator may release \
                 the bridge with: ip link set {} alias \"\"",
                bridge.name, bridge.name
            ))),
            _ => Ok(self.sockets.host.set_alias(bridge.index, &token).await?),
        }
    }
}
