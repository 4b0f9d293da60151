//! Interface addresses.

use futures::TryStreamExt;
use ipnetwork::IpNetwork;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags};

use crate::error::{Error, Result, Step};
use crate::netlink::Netlink;

impl Netlink {
    /// Adds `address` (with its prefix length) to link `index`.
    ///
    /// IPv6 addresses are added with `IFA_F_NODAD`: the caller is expected to
    /// hand out unique addresses itself, and the address must be usable as
    /// soon as the call returns rather than after duplicate detection.
    pub async fn add_address(&self, index: u32, address: IpNetwork) -> Result<()> {
        let mut request = self
            .handle()
            .address()
            .add(index, address.ip(), address.prefix());
        if address.is_ipv6() {
            request
                .message_mut()
                .attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        request
            .execute()
            .await
            .map_err(|e| Error::netlink(Step::AddAddress, format!("{address} on #{index}"), e))
    }

    /// Adds `address` unless link `index` already has it. Returns whether it
    /// was added.
    pub async fn ensure_address(&self, index: u32, address: IpNetwork) -> Result<bool> {
        match self.add_address(index, address).await {
            Ok(()) => Ok(true),
            Err(e) if e.errno() == Some(libc::EEXIST) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The addresses of link `index`, with their prefix lengths.
    pub async fn addresses_of(&self, index: u32) -> Result<Vec<IpNetwork>> {
        let object = || format!("#{index}");
        let stream = self
            .handle()
            .address()
            .get()
            .set_link_index_filter(index)
            .execute();
        futures::pin_mut!(stream);
        let mut out = Vec::new();
        while let Some(msg) = stream
            .try_next()
            .await
            .map_err(|e| Error::netlink(Step::ListAddresses, object(), e))?
        {
            let address = msg.attributes.iter().find_map(|a| match a {
                AddressAttribute::Address(ip) => Some(*ip),
                _ => None,
            });
            if let Some(ip) = address {
                if let Ok(net) = IpNetwork::new(ip, msg.header.prefix_len) {
                    out.push(net);
                }
            }
        }
        Ok(out)
    }
}
