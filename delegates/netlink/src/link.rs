//! Looking links up and changing their basic settings.

use futures::TryStreamExt;
use netlink_packet_route::link::{
    InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage, Prop, State,
};
use rtnetlink::LinkUnspec;

use crate::error::{Error, ErrorMap, LinkRef, Result};
use crate::handle::NetlinkHandle;
use crate::mac::MacAddr;
use crate::netns::Netns;

/// A network interface as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Interface index (unique within its namespace).
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// Hardware address (6 bytes for Ethernet; empty when the link has none).
    pub address: Vec<u8>,
    /// MTU in bytes.
    pub mtu: u32,
    /// `IFLA_INFO_KIND` ("macvlan", "veth", ...); None for plain hardware interfaces.
    pub kind: Option<String>,
    /// `IFF_*` flags.
    pub flags: LinkFlags,
    /// Operational state.
    pub oper_state: State,
    /// Index of the controller (bridge, bond) it is enslaved to.
    pub master: Option<u32>,
    /// `IFLA_LINK`: the parent (macvlan/ipvlan/VLAN) or the veth peer; with
    /// [`Link::link_netnsid`] set, an index in another namespace.
    pub link: Option<u32>,
    /// `IFLA_LINK_NETNSID`: the namespace id of the parent or peer, when it lives elsewhere.
    pub link_netnsid: Option<i32>,
    /// `IFLA_IFALIAS`.
    pub alias: Option<String>,
    /// Number of VFs, for a PF that reports it.
    pub num_vf: Option<u32>,
    /// Alternative names (`IFLA_PROP_LIST`); a VF moved into a pod keeps its host name here.
    pub altnames: Vec<String>,
}

impl Link {
    /// The Ethernet MAC, when the hardware address has 6 bytes.
    pub fn mac(&self) -> Option<MacAddr> {
        MacAddr::from_slice(&self.address)
    }

    /// Administratively up (IFF_UP).
    pub fn is_up(&self) -> bool {
        self.flags.contains(LinkFlags::Up)
    }

    /// Reads a link from an RTM_NEWLINK message.
    pub fn from_message(msg: &LinkMessage) -> Self {
        let mut link = Link {
            index: msg.header.index,
            name: String::new(),
            address: Vec::new(),
            mtu: 0,
            kind: None,
            flags: msg.header.flags,
            oper_state: State::Unknown,
            master: None,
            link: None,
            link_netnsid: None,
            alias: None,
            num_vf: None,
            altnames: Vec::new(),
        };
        for attr in &msg.attributes {
            match attr {
                LinkAttribute::IfName(n) => link.name = n.clone(),
                LinkAttribute::Address(a) => link.address = a.clone(),
                LinkAttribute::Mtu(m) => link.mtu = *m,
                LinkAttribute::OperState(s) => link.oper_state = *s,
                LinkAttribute::Controller(c) => link.master = Some(*c),
                LinkAttribute::Link(l) => link.link = Some(*l),
                LinkAttribute::LinkNetNsId(id) => link.link_netnsid = Some(*id),
                LinkAttribute::IfAlias(a) => link.alias = Some(a.clone()),
                LinkAttribute::NumVf(n) => link.num_vf = Some(*n),
                LinkAttribute::PropList(props) => {
                    link.altnames = props
                        .iter()
                        .filter_map(|p| match p {
                            Prop::AltIfName(n) => Some(n.clone()),
                            _ => None,
                        })
                        .collect();
                }
                LinkAttribute::LinkInfo(infos) => {
                    link.kind = infos.iter().find_map(|i| match i {
                        LinkInfo::Kind(k) => Some(kind_name(k)),
                        _ => None,
                    });
                }
                _ => {}
            }
        }
        link
    }
}

fn kind_name(kind: &InfoKind) -> String {
    kind.to_string()
}

impl NetlinkHandle {
    /// The link named `name`; [`Error::NotFound`] when there is none.
    pub async fn link_by_name(&self, name: &str) -> Result<Link> {
        let request = self.raw().link().get().match_name(name).execute();
        first_link(request, LinkRef::Name(name.to_owned())).await
    }

    /// The link with index `index`; [`Error::NotFound`] when there is none.
    pub async fn link_by_index(&self, index: u32) -> Result<Link> {
        let request = self.raw().link().get().match_index(index).execute();
        first_link(request, LinkRef::Index(index)).await
    }

    /// Every link in the namespace.
    pub async fn links(&self) -> Result<Vec<Link>> {
        let messages: Vec<LinkMessage> = self
            .raw()
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(|e| ErrorMap::new("list links").map(e))?;
        Ok(messages.iter().map(Link::from_message).collect())
    }

    /// Sends one RTM_SETLINK for link `index`, mapping ENODEV to "link not found".
    pub(crate) async fn set_link(&self, index: u32, msg: LinkMessage, op: String) -> Result<()> {
        self.raw()
            .link()
            .set(msg)
            .execute()
            .await
            .map_err(|e| ErrorMap::new(op).missing_link(LinkRef::Index(index)).map(e))
    }

    /// Sets link `index` administratively up.
    pub async fn set_up(&self, index: u32) -> Result<()> {
        let msg = LinkUnspec::new_with_index(index).up().build();
        self.set_link(index, msg, format!("set link {index} up"))
            .await
    }

    /// Sets link `index` administratively down.
    pub async fn set_down(&self, index: u32) -> Result<()> {
        let msg = LinkUnspec::new_with_index(index).down().build();
        self.set_link(index, msg, format!("set link {index} down"))
            .await
    }

    /// Renames link `index`. The kernel refuses (EBUSY) to rename most links while they
    /// are up; a name in use gives [`Error::AlreadyExists`].
    pub async fn rename(&self, index: u32, name: &str) -> Result<()> {
        let msg = LinkUnspec::new_with_index(index).name(name).build();
        self.raw().link().set(msg).execute().await.map_err(|e| {
            ErrorMap::new(format!("rename link {index} to {name}"))
                .missing_link(LinkRef::Index(index))
                .exists(format!("link {name}"))
                .map(e)
        })
    }

    /// Sets the MAC address of link `index`.
    pub async fn set_mac(&self, index: u32, mac: MacAddr) -> Result<()> {
        let msg = LinkUnspec::new_with_index(index)
            .address(mac.0.to_vec())
            .build();
        self.set_link(index, msg, format!("set MAC {mac} on link {index}"))
            .await
    }

    /// Sets the MTU of link `index`.
    pub async fn set_mtu(&self, index: u32, mtu: u32) -> Result<()> {
        let msg = LinkUnspec::new_with_index(index).mtu(mtu).build();
        self.set_link(index, msg, format!("set MTU {mtu} on link {index}"))
            .await
    }

    /// Sets `IFLA_IFALIAS` of link `index` (an empty alias clears it).
    pub async fn set_alias(&self, index: u32, alias: &str) -> Result<()> {
        let msg = LinkUnspec::new_with_index(index).alias(alias).build();
        self.set_link(index, msg, format!("set alias of link {index}"))
            .await
    }

    /// Moves link `index` into the namespace `target`, renaming it to `new_name` when given.
    ///
    /// The kernel moves and renames in one request, but it applies the rename after the move
    /// and only when the old name is free in `target`; a refused rename would leave the link
    /// in `target` under its old name. So a name taken in `target` is refused before moving
    /// ([`Error::AlreadyExists`]), and if the rename still fails after the move (a race), the
    /// link is moved back before the error is returned.
    pub async fn move_to_netns(
        &self,
        index: u32,
        target: &Netns,
        new_name: Option<&str>,
    ) -> Result<()> {
        let op = format!("move link {index} to netns {}", target.path().display());
        let Some(new_name) = new_name else {
            let msg = move_message(index, target, None);
            return self.raw().link().set(msg).execute().await.map_err(|e| {
                ErrorMap::new(op)
                    .missing_link(LinkRef::Index(index))
                    .exists(format!(
                        "a link with the same name in {}",
                        target.path().display()
                    ))
                    .map(e)
            });
        };
        let link = self.link_by_index(index).await?;
        let in_target = NetlinkHandle::for_netns(target)?;
        let taken = format!("link {new_name} in {}", target.path().display());
        match in_target.link_by_name(new_name).await {
            Ok(_) => return Err(Error::AlreadyExists { what: taken }),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
        let msg = move_message(index, target, Some(new_name));
        let Err(e) = self.raw().link().set(msg).execute().await else {
            return Ok(());
        };
        let error = ErrorMap::new(op)
            .missing_link(LinkRef::Index(index))
            .exists(taken)
            .map(e);
        // Still here: nothing moved. Otherwise the link sits in `target` under its old name.
        if self.link_by_index(index).await.is_err()
            && let Ok(stranded) = in_target.link_by_name(&link.name).await
        {
            let back = move_message(stranded.index, self.netns(), None);
            in_target
                .raw()
                .link()
                .set(back)
                .execute()
                .await
                .map_err(|e| {
                    ErrorMap::new(format!(
                        "move link {} back from {} after: {error}",
                        link.name,
                        target.path().display()
                    ))
                    .map(e)
                })?;
        }
        Err(error)
    }

    /// Deletes link `index` (and, for a veth, its peer).
    pub async fn delete_link(&self, index: u32) -> Result<()> {
        self.raw().link().del(index).execute().await.map_err(|e| {
            ErrorMap::new(format!("delete link {index}"))
                .missing_link(LinkRef::Index(index))
                .map(e)
        })
    }

    /// Deletes links `indices` with one RTM_DELLINK: each is put in group `group` first, then
    /// the group is deleted. Each link deletion waits for an RCU grace period (13-22 ms);
    /// deleted as a group they share one. `group` must be one no other link uses.
    pub async fn delete_links_as_group(&self, indices: &[u32], group: u32) -> Result<()> {
        for index in indices {
            let mut msg = LinkMessage::default();
            msg.header.index = *index;
            msg.attributes.push(LinkAttribute::Group(group));
            self.set_link(*index, msg, format!("mark link {index} for deletion"))
                .await?;
        }
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::Group(group));
        self.raw()
            .link()
            .del_with_message(msg)
            .execute()
            .await
            .map_err(|e| ErrorMap::new(format!("delete links {indices:?}")).map(e))
    }

    /// Deletes the link named `name`.
    pub async fn delete_link_by_name(&self, name: &str) -> Result<()> {
        let link = self.link_by_name(name).await?;
        self.delete_link(link.index).await
    }
}

pub(crate) fn move_message(index: u32, target: &Netns, new_name: Option<&str>) -> LinkMessage {
    use std::os::fd::AsRawFd;
    let mut builder = LinkUnspec::new_with_index(index).setns_by_fd(target.as_raw_fd());
    if let Some(name) = new_name {
        builder = builder.name(name);
    }
    builder.build()
}

async fn first_link(
    request: impl futures::Stream<Item = std::result::Result<LinkMessage, rtnetlink::Error>>,
    link: LinkRef,
) -> Result<Link> {
    let op = format!("get {link}");
    let mut messages = std::pin::pin!(request);
    match messages.try_next().await {
        Ok(Some(msg)) => Ok(Link::from_message(&msg)),
        Ok(None) => Err(Error::NotFound(crate::error::Missing::Link(link))),
        Err(e) => Err(ErrorMap::new(op).missing_link(link).map(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_route::link::{InfoData, InfoMacVlan, MacVlanMode};

    #[test]
    fn reads_link_attributes() {
        let mut msg = LinkMessage::default();
        msg.header.index = 9;
        msg.header.flags = LinkFlags::Up | LinkFlags::Broadcast;
        msg.attributes = vec![
            LinkAttribute::IfName("net1".into()),
            LinkAttribute::Address(vec![2, 0, 0, 0, 0, 1]),
            LinkAttribute::Mtu(1400),
            LinkAttribute::Link(3),
            LinkAttribute::Controller(5),
            LinkAttribute::IfAlias("pod-a".into()),
            LinkAttribute::LinkInfo(vec![
                LinkInfo::Kind(InfoKind::MacVlan),
                LinkInfo::Data(InfoData::MacVlan(vec![InfoMacVlan::Mode(
                    MacVlanMode::Bridge,
                )])),
            ]),
        ];
        let link = Link::from_message(&msg);
        assert_eq!(link.index, 9);
        assert_eq!(link.name, "net1");
        assert_eq!(link.mac().unwrap().to_string(), "02:00:00:00:00:01");
        assert_eq!(link.mtu, 1400);
        assert_eq!(link.kind.as_deref(), Some("macvlan"));
        assert_eq!(link.link, Some(3));
        assert_eq!(link.master, Some(5));
        assert_eq!(link.alias.as_deref(), Some("pod-a"));
        assert!(link.is_up());
    }
}
