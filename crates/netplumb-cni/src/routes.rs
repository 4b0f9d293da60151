//! The container's routes from IPAM's result: default routes only, one
//! gateway per family, as netplumb's `attach` makes them.

use std::net::IpAddr;

use rscni_types::error::Error;
use rscni_types::ipnet::IpNet;
use rscni_types::types::{CNIResult, IpConfig, Route};

/// isDefaultGateway: a default route through each subnet's gateway, for
/// each family that has none yet.
pub(crate) fn add_default_routes(result: &mut CNIResult) {
    for ip in &result.ips {
        let Some(gateway) = ip.gateway else { continue };
        let dst = match gateway {
            IpAddr::V4(_) => IpNet::V4(Default::default()),
            IpAddr::V6(_) => IpNet::V6(Default::default()),
        };
        if !result.routes.iter().any(|r| r.dst == dst) {
            result.routes.push(Route {
                dst,
                gw: Some(gateway),
                mtu: None,
                advmss: None,
                priority: None,
                table: None,
                scope: None,
            });
        }
    }
}

/// The container's default gateways, one per family, from IPAM's routes: a
/// route's own `gw`, else the gateway of an address of its family. Other
/// routes than default routes, and route attributes, are refused (code 2).
pub(crate) fn default_gateways(routes: &[Route], ips: &[IpConfig]) -> Result<Vec<IpAddr>, Error> {
    let mut gateways: Vec<IpAddr> = Vec::new();
    for route in routes {
        let unsupported = |what: &str| {
            Err(Error::UnsupportedNetworkConfiguration(format!(
                "route to {}: {what}",
                route.dst
            )))
        };
        if route.dst.prefix_len() != 0 {
            return unsupported("only default routes are supported");
        }
        let extras = [
            route.mtu,
            route.advmss,
            route.priority,
            route.table,
            route.scope,
        ];
        if extras.iter().any(Option::is_some) {
            return unsupported("mtu, advmss, priority, table and scope are not supported");
        }
        let v6 = route.dst.addr().is_ipv6();
        let Some(gateway) = route.gw.or_else(|| {
            ips.iter()
                .filter_map(|ip| ip.gateway)
                .find(|g| g.is_ipv6() == v6)
        }) else {
            return unsupported("no gateway for it");
        };
        match gateways.iter().find(|g| g.is_ipv6() == v6) {
            None => gateways.push(gateway),
            Some(first) if *first == gateway => {}
            Some(first) => {
                return unsupported(&format!(
                    "a second default route (the first is via {first})"
                ))
            }
        }
    }
    Ok(gateways)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(address: &str, gateway: Option<&str>) -> IpConfig {
        IpConfig {
            interface: None,
            address: address.parse().unwrap(),
            gateway: gateway.map(|g| g.parse().unwrap()),
        }
    }

    fn route(dst: &str, gw: Option<&str>) -> Route {
        serde_json::from_value(serde_json::json!({"dst": dst, "gw": gw})).unwrap()
    }

    #[test]
    fn default_gateways_from_routes_and_addresses() {
        let ips = [
            ip("10.1.0.5/24", Some("10.1.0.1")),
            ip("fd00::5/64", Some("fd00::1")),
        ];
        let gws = default_gateways(&[route("0.0.0.0/0", None)], &ips).unwrap();
        assert_eq!(gws, vec!["10.1.0.1".parse::<IpAddr>().unwrap()]);
        let both = [route("0.0.0.0/0", Some("10.1.0.254")), route("::/0", None)];
        let gws = default_gateways(&both, &ips).unwrap();
        assert_eq!(
            gws,
            vec![
                "10.1.0.254".parse::<IpAddr>().unwrap(),
                "fd00::1".parse().unwrap()
            ]
        );
    }

    #[test]
    fn default_gateways_refuse_what_attach_cannot_do() {
        let ips = [ip("10.1.0.5/24", Some("10.1.0.1"))];
        for routes in [
            vec![route("10.9.0.0/16", Some("10.1.0.1"))],
            vec![
                route("0.0.0.0/0", Some("10.1.0.1")),
                route("0.0.0.0/0", Some("10.1.0.2")),
            ],
            vec![route("::/0", None)],
        ] {
            let err = default_gateways(&routes, &ips).unwrap_err();
            assert_eq!(u32::from(&err), 2, "{routes:?}: {err}");
        }
    }

    #[test]
    fn is_default_gateway_adds_one_route_per_family() {
        let mut result = CNIResult {
            ips: vec![ip("10.1.0.5/24", Some("10.1.0.1"))],
            routes: vec![],
            ..Default::default()
        };
        add_default_routes(&mut result);
        add_default_routes(&mut result);
        assert_eq!(result.routes, vec![route("0.0.0.0/0", Some("10.1.0.1"))]);
    }
}
