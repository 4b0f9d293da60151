//! Routes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use ipnetwork::IpNetwork;
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteType,
};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::RouteMessageBuilder;

use crate::error::{Error, Result, Step};
use crate::netlink::Netlink;

impl Netlink {
    /// Adds a default route through `gateway`, out of link `index`.
    pub async fn add_default_route(&self, gateway: IpAddr, index: u32) -> Result<()> {
        let message = match gateway {
            IpAddr::V4(gw) => RouteMessageBuilder::<Ipv4Addr>::new()
                .gateway(gw)
                .output_interface(index)
                .build(),
            IpAddr::V6(gw) => RouteMessageBuilder::<Ipv6Addr>::new()
                .gateway(gw)
                .output_interface(index)
                .build(),
        };
        self.handle()
            .route()
            .add(message)
            .execute()
            .await
            .map_err(|e| Error::netlink(Step::AddRoute, format!("default via {gateway}"), e))
    }

    /// The gateways of the main table's default routes, with their output
    /// links, for one address family (`v6` selects IPv6).
    pub async fn default_gateways(&self, v6: bool) -> Result<Vec<(IpAddr, Option<u32>)>> {
        let query = if v6 {
            RouteMessageBuilder::<Ipv6Addr>::new().build()
        } else {
            RouteMessageBuilder::<Ipv4Addr>::new().build()
        };
        let routes = self.handle().route().get(query).execute();
        futures::pin_mut!(routes);
        let mut out = Vec::new();
        while let Some(route) = routes
            .try_next()
            .await
            .map_err(|e| Error::netlink(Step::ListRoutes, "default", e))?
        {
            if route.header.destination_prefix_length != 0 || !in_main_table(&route) {
                continue;
            }
            let (mut gateway, mut oif) = (None, None);
            for attr in &route.attributes {
                match attr {
                    RouteAttribute::Gateway(RouteAddress::Inet(a)) => {
                        gateway = Some(IpAddr::V4(*a))
                    }
                    RouteAttribute::Gateway(RouteAddress::Inet6(a)) => {
                        gateway = Some(IpAddr::V6(*a))
                    }
                    RouteAttribute::Oif(i) => oif = Some(*i),
                    _ => {}
                }
            }
            if let Some(gateway) = gateway {
                out.push((gateway, oif));
            }
        }
        Ok(out)
    }

    /// Whether `address` is one of this namespace's own: the kernel's route
    /// to it (one `RTM_GETROUTE` look-up, as `ip route get` makes) is of
    /// type local. An address the namespace has no route to is not local.
    pub async fn is_local(&self, address: IpAddr) -> Result<bool> {
        let mut message = RouteMessage::default();
        let (family, len, destination) = match address {
            IpAddr::V4(a) => (AddressFamily::Inet, 32, RouteAddress::Inet(a)),
            IpAddr::V6(a) => (AddressFamily::Inet6, 128, RouteAddress::Inet6(a)),
        };
        message.header.address_family = family;
        message.header.destination_prefix_length = len;
        message
            .attributes
            .push(RouteAttribute::Destination(destination));
        let routes = self.handle().route().get(message).execute();
        match crate::netlink::first(routes).await {
            Ok(route) => Ok(route.is_some_and(|r| r.header.kind == RouteType::Local)),
            Err(e) => {
                let err = Error::netlink(Step::LookUpRoute, address.to_string(), e);
                match err.errno() {
                    Some(libc::ENETUNREACH | libc::EHOSTUNREACH | libc::EINVAL) => Ok(false),
                    _ => Err(err),
                }
            }
        }
    }

    /// The first route of the main table, other than a default route and
    /// other than routes out of `except_index`, whose destination overlaps
    /// `network`. Used to refuse a subnet the host already reaches elsewhere.
    pub async fn route_overlapping(
        &self,
        network: IpNetwork,
        except_index: Option<u32>,
    ) -> Result<Option<IpNetwork>> {
        let query = match network {
            IpNetwork::V4(_) => RouteMessageBuilder::<Ipv4Addr>::new().build(),
            IpNetwork::V6(_) => RouteMessageBuilder::<Ipv6Addr>::new().build(),
        };
        let routes = self.handle().route().get(query).execute();
        futures::pin_mut!(routes);
        while let Some(route) = routes
            .try_next()
            .await
            .map_err(|e| Error::netlink(Step::ListRoutes, network.to_string(), e))?
        {
            if let Some(dest) = overlapping_destination(&route, network, except_index) {
                return Ok(Some(dest));
            }
        }
        Ok(None)
    }
}

fn overlapping_destination(
    route: &RouteMessage,
    network: IpNetwork,
    except_index: Option<u32>,
) -> Option<IpNetwork> {
    let len = route.header.destination_prefix_length;
    if len == 0 || !in_main_table(route) {
        return None;
    }
    let mut dest = None;
    for attr in &route.attributes {
        match attr {
            RouteAttribute::Destination(RouteAddress::Inet(a)) => dest = Some(IpAddr::V4(*a)),
            RouteAttribute::Destination(RouteAddress::Inet6(a)) => dest = Some(IpAddr::V6(*a)),
            RouteAttribute::Oif(oif) if Some(*oif) == except_index => return None,
            _ => {}
        }
    }
    let dest = IpNetwork::new(dest?, len).ok()?;
    let overlaps = dest.contains(network.network()) || network.contains(dest.network());
    overlaps.then_some(dest)
}

fn in_main_table(route: &RouteMessage) -> bool {
    let table = route.attributes.iter().find_map(|a| match a {
        RouteAttribute::Table(t) => Some(*t),
        _ => None,
    });
    table.unwrap_or(u32::from(route.header.table)) == u32::from(RouteHeader::RT_TABLE_MAIN)
}
