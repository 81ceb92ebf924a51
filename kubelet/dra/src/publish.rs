//! Keeps this node's ResourceSlices equal to its VFs: sysfs is read every [`SCAN_INTERVAL`], the
//! slices are rewritten (with a higher pool generation) when the VFs change, and checked against
//! the API every [`CHECK_INTERVAL`] (the kubelet deletes a node's slices when it restarts).

use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::resource::v1::{ResourceSlice, ResourceSliceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};
use multinet_sriov::Sysfs;

use crate::slice::{Publisher, VfEntry};

pub const SCAN_INTERVAL: Duration = Duration::from_secs(5);
const CHECK_INTERVAL: Duration = Duration::from_secs(60);
const RETRY_INTERVAL: Duration = Duration::from_secs(5);

/// Every VF of every SR-IOV PF in `sysfs`.
pub fn scan(sysfs: &Sysfs) -> Vec<VfEntry> {
    let mut out: Vec<VfEntry> = sysfs
        .pfs()
        .iter()
        .flat_map(|pf| pf.vfs.iter().map(|(_, addr)| *addr).collect::<Vec<_>>())
        .filter_map(|addr| sysfs.vf(&addr).ok())
        .map(|vf| VfEntry { vf })
        .collect();
    out.sort_by_key(|e| e.vf.addr);
    out
}

/// Publishes the slices of `publisher` until the task is dropped.
pub async fn run(client: kube::Client, publisher: Publisher, sysfs: Sysfs) {
    let api: Api<ResourceSlice> = Api::all(client.clone());
    let owner = node_owner(&client, &publisher.node).await;
    let mut generation = 0;
    let mut published: Option<Vec<VfEntry>> = None;
    let mut last_check = tokio::time::Instant::now();
    loop {
        let scan_sysfs = sysfs.clone();
        let entries = tokio::task::spawn_blocking(move || scan(&scan_sysfs))
            .await
            .unwrap_or_default();
        let due = last_check.elapsed() >= CHECK_INTERVAL;
        let changed = published.as_ref() != Some(&entries);
        if changed || due {
            last_check = tokio::time::Instant::now();
            match sync(&api, &publisher, &owner, &entries, generation).await {
                Ok(g) => {
                    if changed || g != generation {
                        tracing::info!(driver = %publisher.driver, devices = entries.len(),
                            generation = g, "ResourceSlices published");
                    }
                    generation = g;
                    published = Some(entries);
                }
                Err(e) => {
                    tracing::warn!(driver = %publisher.driver, error = %e,
                        "publishing ResourceSlices failed; retrying");
                    published = None;
                    tokio::time::sleep(RETRY_INTERVAL).await;
                    continue;
                }
            }
        }
        tokio::time::sleep(SCAN_INTERVAL).await;
    }
}

/// The Node as the slices' owner (they go when the node goes); None when it cannot be read.
async fn node_owner(client: &kube::Client, node: &str) -> Option<OwnerReference> {
    let api: Api<Node> = Api::all(client.clone());
    match api.get_opt(node).await {
        Ok(Some(n)) => Some(OwnerReference {
            api_version: "v1".into(),
            kind: "Node".into(),
            name: node.into(),
            uid: n.metadata.uid?,
            controller: Some(true),
            block_owner_deletion: None,
        }),
        Ok(None) => None,
        Err(e) => {
            tracing::info!(%node, error = %e, "ResourceSlices without a Node owner");
            None
        }
    }
}

/// Makes the API's slices of this pool say `entries`. Returns the pool generation now
/// published: `generation` when they already did, else one above every generation seen.
async fn sync(
    api: &Api<ResourceSlice>,
    publisher: &Publisher,
    owner: &Option<OwnerReference>,
    entries: &[VfEntry],
    generation: i64,
) -> Result<i64, kube::Error> {
    let selector = format!(
        "spec.nodeName={},spec.driver={}",
        publisher.node, publisher.driver
    );
    let mut existing = api
        .list(&ListParams::default().fields(&selector))
        .await?
        .items;
    existing.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let current = publisher.slice_specs(generation, entries);
    let same = existing.len() == current.len()
        && existing
            .iter()
            .zip(&current)
            .all(|(have, want)| have.spec.pool == want.pool && have.spec.devices == want.devices);
    if same && generation > 0 {
        return Ok(generation);
    }
    let seen = existing
        .iter()
        .map(|s| s.spec.pool.generation)
        .max()
        .unwrap_or(0);
    let generation = seen.max(generation) + 1;
    let specs = publisher.slice_specs(generation, entries);
    let mut existing = existing.into_iter();
    for spec in specs {
        match existing.next() {
            Some(mut slice) => {
                slice.spec = spec;
                slice.metadata.owner_references = owner.clone().map(|o| vec![o]);
                let name = slice.metadata.name.clone().unwrap_or_default();
                api.replace(&name, &PostParams::default(), &slice).await?;
            }
            None => {
                let slice = new_slice(publisher, owner, spec);
                api.create(&PostParams::default(), &slice).await?;
            }
        }
    }
    for stale in existing {
        if let Some(name) = stale.metadata.name {
            api.delete(&name, &DeleteParams::default()).await?;
        }
    }
    Ok(generation)
}

fn new_slice(
    publisher: &Publisher,
    owner: &Option<OwnerReference>,
    spec: ResourceSliceSpec,
) -> ResourceSlice {
    ResourceSlice {
        metadata: ObjectMeta {
            generate_name: Some(publisher.generate_name()),
            owner_references: owner.clone().map(|o| vec![o]),
            ..Default::default()
        },
        spec,
    }
}
