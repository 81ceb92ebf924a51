//! Device IDs from Dynamic Resource Allocation, through the multinet binary and the Kubernetes
//! API fixture: the pod's ResourceClaim was allocated a device that this node's ResourceSlice
//! publishes with `k8s.cni.cncf.io/resourceName` and `k8s.cni.cncf.io/deviceID`; the network
//! whose NAD names that resource gets that ID as `deviceID`, as in Multus. No kubelet is
//! needed: DRA alone satisfies the network, so neither pod-resources nor the checkpoint is read.
//!
//! The attacks: a pod that names another pod's claim (reserved for that pod only, or shared by
//! the scheduler with this pod too), a deviceID in the annotation that another node's slice
//! publishes, a claim not yet allocated, a pod object of another incarnation posing as static.
//! Each fails ADD with code 7 naming the claim or the network, and leaves nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod allocator;
mod common;

use std::fs;

use common::{Answer, Node};
use multinet_api_fixture::ApiFixture;
use multinet_testbed::{TestNetns, require_root};
use serde_json::{Value, json};

const DRIVER: &str = "sriov.multinet.io";
const RESOURCE: &str = "multinet.io/fast";

struct Cluster {
    api: ApiFixture,
    node: Node,
    conf: Value,
}

fn slice(name: &str, node: &str, driver: &str, devices: &[(&str, &str)]) -> Value {
    let devices: Vec<Value> = devices
        .iter()
        .map(|(device, id)| {
            json!({"name": device, "attributes": {
                "k8s.cni.cncf.io/deviceID": {"string": id},
                "k8s.cni.cncf.io/resourceName": {"string": RESOURCE},
                "sriov.multinet.io/pfName": {"string": "up0"}}})
        })
        .collect();
    json!({"apiVersion": "resource.k8s.io/v1", "kind": "ResourceSlice",
           "metadata": {"name": name},
           "spec": {"driver": driver, "nodeName": node,
                    "pool": {"name": node, "generation": 1, "resourceSliceCount": 1},
                    "devices": devices}})
}

/// A claim made from the template of the pod with UID `reserved_for_uid` (its controller) and
/// reserved for it, allocated `device` if given.
fn claim(name: &str, reserved_for_uid: &str, device: Option<&str>) -> Value {
    let mut c = json!({"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
        "metadata": {"name": name, "namespace": "team", "ownerReferences": [
            {"apiVersion": "v1", "kind": "Pod", "name": "web", "uid": reserved_for_uid,
             "controller": true}]},
        "spec": {"devices": {"requests": [{"name": "vf", "exactly": {"deviceClassName": "vf"}}]}},
        "status": {"reservedFor": [{"resource": "pods", "name": "web", "uid": reserved_for_uid}]}});
    if let Some(device) = device {
        c["status"]["allocation"] = json!({"devices": {"results": [
            {"request": "vf", "driver": DRIVER, "pool": "node-a", "device": device}]}});
    }
    c
}

/// Pod team/web on node-a, using claim `claim` (made from a template) and selecting `networks`.
fn pod(claim: &str, networks: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "team", "uid": "uid-web",
                     "annotations": {"k8s.v1.cni.cncf.io/networks": networks}},
        "spec": {"nodeName": "node-a", "containers": [{"name": "app", "image": "app"}],
                 "resourceClaims": [{"name": "nics", "resourceClaimTemplateName": "vf"}]},
        "status": {"resourceClaimStatuses": [{"name": "nics", "resourceClaimName": claim}]}})
}

/// A cluster where VF vf-3 of node-a is 0000:af:06.3. Node-b's slice publishes a device of the
/// same name and resource, and another driver publishes one on node-a: neither may be taken.
fn cluster(networks: &str) -> Cluster {
    let node = Node::new("1.0.0");
    let (api, conf) = node.start_api();
    // A macvlan stands in for the SR-IOV delegate: what matters is the deviceID it is given.
    let mut nad = node.macvlan_nad("vf", "up0", "10.30.0.0/24");
    nad["name"] = json!("vf");
    api.insert(json!({
        "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": "vf", "namespace": "team",
                     "annotations": {"k8s.v1.cni.cncf.io/resourceName": RESOURCE}},
        "spec": {"config": nad.to_string()}}))
        .unwrap();
    for s in [
        slice(
            "node-a-vfs",
            "node-a",
            DRIVER,
            &[("vf-3", "0000:af:06.3"), ("vf-4", "0000:af:06.4")],
        ),
        slice("node-b-vfs", "node-b", DRIVER, &[("vf-3", "0000:b0:06.3")]),
        slice(
            "node-a-other",
            "node-a",
            "other.example.com",
            &[("vf-3", "0000:c0:06.3")],
        ),
    ] {
        api.insert(s).unwrap();
    }
    api.insert(claim("web-nics", "uid-web", Some("vf-3")))
        .unwrap();
    api.insert(pod("web-nics", networks)).unwrap();
    Cluster { api, node, conf }
}

fn cni(c: &Cluster, command: &str, pod_ns: &TestNetns) -> Answer {
    let call = c
        .node
        .call(command, "c1", "web", pod_ns.path_str())
        .stdin_json(&c.conf)
        // No kubelet at all: a read of either would fail the call.
        .env(
            "MULTINET_PODRESOURCES_SOCKET",
            c.node.path("no-kubelet.sock"),
        )
        .env("MULTINET_KUBELET_CHECKPOINT", c.node.path("no-checkpoint"));
    Answer::lenient(&call.run())
}

#[test]
fn the_network_gets_the_device_the_pods_claim_was_allocated() {
    require_root!();
    let c = cluster("vf");
    let pod_ns = TestNetns::new();
    // Another driver's entry in the claim's status must survive the network data write.
    let gpu_status = json!({"driver": "gpu.example.com", "pool": "node-a", "device": "gpu-0",
                            "data": {"memory": "80Gi"}});
    let mut with_gpu = c.api.get("ResourceClaim", "team", "web-nics").unwrap();
    with_gpu["status"]["devices"] = json!([gpu_status]);
    c.api.insert(with_gpu).unwrap();
    cni(&c, "ADD", &pod_ns).ok();
    assert_eq!(c.node.recorded_device_id("c1", "team/vf"), "0000:af:06.3");
    assert!(pod_ns.has_link("net1"));
    // KEP-4817: the claim's status says what the network made of the device.
    let status =
        c.api.get("ResourceClaim", "team", "web-nics").unwrap()["status"]["devices"].clone();
    let mac = pod_ns.link_mac("net1");
    assert_eq!(status[0], gpu_status, "{status:#}");
    assert_eq!(status.as_array().unwrap().len(), 2, "{status:#}");
    let entry = &status[1];
    assert_eq!(
        (&entry["driver"], &entry["pool"], &entry["device"]),
        (&json!(DRIVER), &json!("node-a"), &json!("vf-3"))
    );
    assert_eq!(entry["networkData"]["interfaceName"], "net1");
    assert_eq!(
        entry["networkData"]["hardwareAddress"]
            .as_str()
            .unwrap()
            .to_lowercase(),
        mac.to_lowercase()
    );
    let ips = entry["networkData"]["ips"].as_array().unwrap();
    assert_eq!(ips.len(), 1, "{entry}");
    assert!(
        ips[0].as_str().unwrap().starts_with("10.30.0.")
            && ips[0].as_str().unwrap().ends_with("/24"),
        "{entry}"
    );
    // The claim read once for its devices and once to write its status (a replace of
    // status, never of the claim); one LIST of the driver's slices of this node, filtered by
    // the API server.
    let requests = c.api.requests();
    let claim_path = "/apis/resource.k8s.io/v1/namespaces/team/resourceclaims/web-nics";
    let gets = requests
        .iter()
        .filter(|r| r.method == "GET" && r.path == claim_path)
        .count();
    assert_eq!(gets, 2, "{requests:?}");
    let writes: Vec<_> = requests
        .iter()
        .filter(|r| r.method != "GET" && r.path.starts_with(claim_path))
        .map(|r| (r.method.as_str(), r.path.as_str()))
        .collect();
    assert_eq!(writes, [("PUT", format!("{claim_path}/status").as_str())]);
    let lists: Vec<_> = requests
        .iter()
        .filter(|r| r.path == "/apis/resource.k8s.io/v1/resourceslices")
        .collect();
    assert_eq!(lists.len(), 1, "{requests:?}");
    let query = urlencoding_decode(&lists[0].query);
    assert!(
        query.contains("spec.nodeName=node-a") && query.contains(&format!("spec.driver={DRIVER}")),
        "{query}"
    );
    cni(&c, "DEL", &pod_ns).ok();
    c.node.assert_clean(&pod_ns);
}

/// The annotation may choose among the claim's devices only.
#[test]
fn an_annotation_device_id_must_be_one_the_claim_holds() {
    require_root!();
    // 0000:b0:06.3 is node-b's vf-3; 0000:af:06.4 is on this node but in no claim of the pod.
    for foreign in ["0000:b0:06.3", "0000:af:06.4", "0000:c0:06.3"] {
        let c = cluster(&format!(r#"[{{"name": "vf", "deviceID": "{foreign}"}}]"#));
        let pod_ns = TestNetns::new();
        let (code, msg) = cni(&c, "ADD", &pod_ns).err();
        assert_eq!(code, 7, "{msg}");
        assert!(msg.contains("team/vf"), "{msg}");
        assert!(msg.contains(foreign), "{msg}");
        assert!(msg.contains("is not one of the pod's devices"), "{msg}");
        c.node.assert_clean(&pod_ns);
        cni(&c, "DEL", &pod_ns).ok();
    }
    // The device its claim holds may be named.
    let c = cluster(r#"[{"name": "vf", "deviceID": "0000:af:06.3"}]"#);
    let pod_ns = TestNetns::new();
    cni(&c, "ADD", &pod_ns).ok();
    assert_eq!(c.node.recorded_device_id("c1", "team/vf"), "0000:af:06.3");
    cni(&c, "DEL", &pod_ns).ok();
    c.node.assert_clean(&pod_ns);
}

/// A pod author can write any claim of the namespace into the pod. A claim reserved for another
/// pod gives nothing; one the scheduler shares between that pod and this one gives nothing
/// either: a VF is one pod's.
#[test]
fn a_pod_naming_another_pods_claim_gets_nothing_from_it() {
    require_root!();
    for (shared, want) in [
        (
            false,
            "ResourceClaim team/db-nics is not reserved for this pod",
        ),
        (true, "ResourceClaim team/db-nics is shared with other pods"),
    ] {
        let c = cluster("vf");
        let mut theirs = claim("db-nics", "uid-db", Some("vf-4"));
        if shared {
            theirs["status"]["reservedFor"]
                .as_array_mut()
                .unwrap()
                .push(json!({"resource": "pods", "name": "web", "uid": "uid-web"}));
        }
        c.api.insert(theirs).unwrap();
        let mut web = pod("web-nics", "vf");
        web["spec"]["resourceClaims"] = json!([{"name": "nics", "resourceClaimName": "db-nics"}]);
        web["status"] = json!({});
        c.api.insert(web).unwrap();
        let pod_ns = TestNetns::new();
        let (code, msg) = cni(&c, "ADD", &pod_ns).err();
        assert_eq!(code, 7, "{msg}");
        assert!(msg.contains(want), "{msg}");
        assert!(!msg.contains("0000:af:06.4"), "{msg}");
        c.node.assert_clean(&pod_ns);
        cni(&c, "DEL", &pod_ns).ok();
    }
}

/// The API's pod is another incarnation (UID differs from the runtime's K8S_POD_UID) posing as a
/// static pod: the UID check lets static pods through, but their claims are not read.
#[test]
fn claims_of_a_pod_object_with_another_uid_are_not_read() {
    require_root!();
    let c = cluster("vf");
    let mut other = pod("web-nics", "vf");
    other["metadata"]["uid"] = json!("uid-new");
    other["metadata"]["annotations"]["kubernetes.io/config.source"] = json!("file");
    c.api.insert(other).unwrap();
    let pod_ns = TestNetns::new();
    let (code, msg) = cni(&c, "ADD", &pod_ns).err();
    // No claim read, no kubelet: the device lookup fails naming the kubelet's checkpoint.
    assert_eq!(code, 5, "{msg}");
    assert!(msg.contains("kubelet checkpoint"), "{msg}");
    c.node.assert_clean(&pod_ns);
    cni(&c, "DEL", &pod_ns).ok();
}

/// A claim that cannot be read (a cluster without resource.k8s.io/v1, RBAC without it) fails
/// only pods whose networks still lack devices: a device plugin's VF is enough.
#[test]
fn a_broken_claim_does_not_fail_a_pod_the_device_plugin_serves() {
    require_root!();
    let c = cluster("vf");
    c.api.insert(pod("gone", "vf")).unwrap();
    fs::write(
        c.node.path("checkpoint"),
        json!({"Data": {"PodDeviceEntries": [{"PodUID": "uid-web", "ContainerName": "app",
            "ResourceName": RESOURCE, "DeviceIDs": ["0000:af:06.7"]}], "RegisteredDevices": {}},
            "Checksum": 1})
        .to_string(),
    )
    .unwrap();
    let pod_ns = TestNetns::new();
    let call = |command| {
        c.node
            .call(command, "c1", "web", pod_ns.path_str())
            .stdin_json(&c.conf)
            .env(
                "MULTINET_PODRESOURCES_SOCKET",
                c.node.path("no-kubelet.sock"),
            )
            .env("MULTINET_KUBELET_CHECKPOINT", c.node.path("checkpoint"))
            .run()
    };
    Answer::lenient(&call("ADD")).ok();
    assert_eq!(c.node.recorded_device_id("c1", "team/vf"), "0000:af:06.7");
    Answer::lenient(&call("DEL")).ok();
    c.node.assert_clean(&pod_ns);
}

#[test]
fn an_unallocated_or_missing_claim_fails_add_naming_it() {
    require_root!();
    for (claim_name, want) in [
        ("later", "ResourceClaim team/later has no device allocation"),
        ("gone", "ResourceClaim team/gone not found"),
    ] {
        let c = cluster("vf");
        if claim_name == "later" {
            c.api.insert(claim("later", "uid-web", None)).unwrap();
        }
        c.api.insert(pod(claim_name, "vf")).unwrap();
        let pod_ns = TestNetns::new();
        let (code, msg) = cni(&c, "ADD", &pod_ns).err();
        assert_eq!(code, 7, "{msg}");
        assert!(msg.contains(want), "{msg}");
        c.node.assert_clean(&pod_ns);
        cni(&c, "DEL", &pod_ns).ok();
    }
}

/// The same claim and slices from a local folder (nodes without an API server, the demo).
#[test]
fn claims_and_slices_are_read_from_a_local_folder_too() {
    require_root!();
    let node = Node::new("1.0.0");
    node.add_resource_nad("vf", RESOURCE);
    fs::write(
        node.path("cluster/pods/web.json"),
        pod("web-nics", "vf").to_string(),
    )
    .unwrap();
    for dir in ["resourceclaims", "resourceslices"] {
        fs::create_dir_all(node.path(&format!("cluster/{dir}"))).unwrap();
    }
    fs::write(
        node.path("cluster/resourceclaims/web-nics.json"),
        claim("web-nics", "uid-web", Some("vf-4")).to_string(),
    )
    .unwrap();
    // A slice of node-b that claims node-a's pool at a newer generation: read without a field
    // selector, it must still not count, as it is not this node's.
    let mut stray = slice("node-b-vfs", "node-b", DRIVER, &[("vf-4", "0000:b0:06.4")]);
    stray["spec"]["pool"] = json!({"name": "node-a", "generation": 2, "resourceSliceCount": 1});
    let slices = json!({"apiVersion": "v1", "kind": "List", "items": [
        slice("node-a-vfs", "node-a", DRIVER, &[("vf-3", "0000:af:06.3"), ("vf-4", "0000:af:06.4")]),
        stray,
    ]});
    fs::write(
        node.path("cluster/resourceslices/slices.json"),
        slices.to_string(),
    )
    .unwrap();
    let pod_ns = TestNetns::new();
    let call = node
        .call("ADD", "c1", "web", pod_ns.path_str())
        .env("MULTINET_PODRESOURCES_SOCKET", node.path("no-kubelet.sock"))
        .env("MULTINET_KUBELET_CHECKPOINT", node.path("no-checkpoint"));
    Answer::lenient(&call.run()).ok();
    assert_eq!(node.recorded_device_id("c1", "team/vf"), "0000:af:06.4");
    let call = node
        .call("DEL", "c1", "web", pod_ns.path_str())
        .env("MULTINET_PODRESOURCES_SOCKET", node.path("no-kubelet.sock"))
        .env("MULTINET_KUBELET_CHECKPOINT", node.path("no-checkpoint"));
    Answer::lenient(&call.run()).ok();
    node.assert_clean(&pod_ns);
}

/// `%2C` and `%3D` as the client sends them.
fn urlencoding_decode(query: &str) -> String {
    query
        .replace("%2C", ",")
        .replace("%3D", "=")
        .replace("%2F", "/")
}

/// An SR-IOV network that picks its VF from a pool is told where the pod's other devices sit:
/// here a GPU its claim was allocated, on NUMA node 1 under PCIe root pci0000:40.
#[test]
fn a_pool_network_gets_the_topology_of_the_pods_other_devices() {
    use std::os::unix::fs::PermissionsExt;
    require_root!();
    let c = cluster("vfpool");
    // A spy stands in for the SR-IOV plugin: it keeps the config it was given.
    let spy = c.node.path("spy.json");
    let script = format!(
        "#!/bin/sh\nconf=$(cat)\ncase \"$CNI_COMMAND\" in\nADD) printf '%s' \"$conf\" > {spy}\n  \
         printf '{{\"cniVersion\":\"1.0.0\",\"interfaces\":[{{\"name\":\"%s\",\"sandbox\":\"%s\"}}]}}' \
         \"$CNI_IFNAME\" \"$CNI_NETNS\";;\nVERSION) printf '{{\"cniVersion\":\"1.0.0\",\
         \"supportedVersions\":[\"1.0.0\"]}}';;\nesac\n",
        spy = spy.display()
    );
    let plugin = c.node.bin().join("sriov");
    fs::write(&plugin, script).unwrap();
    fs::set_permissions(&plugin, fs::Permissions::from_mode(0o755)).unwrap();
    c.api
        .insert(json!({
            "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": "vfpool", "namespace": "team"},
            "spec": {"config": json!({"cniVersion": "1.0.0", "name": "vfpool", "type": "sriov",
                                      "pool": {"name": "fast", "pfNames": ["up0"]}}).to_string()}}))
        .unwrap();
    c.api
        .insert(
            json!({"apiVersion": "resource.k8s.io/v1", "kind": "ResourceSlice",
            "metadata": {"name": "node-a-gpus"},
            "spec": {"driver": "gpu.example.com", "nodeName": "node-a",
                     "pool": {"name": "node-a", "generation": 1, "resourceSliceCount": 1},
                     "devices": [{"name": "gpu-0", "attributes": {
                         "resource.kubernetes.io/pcieRoot": {"string": "pci0000:40"},
                         "gpu.example.com/numaNode": {"int": 1}}}]}}),
        )
        .unwrap();
    let mut gpu = claim("web-gpu", "uid-web", None);
    gpu["status"]["allocation"] = json!({"devices": {"results": [
        {"request": "gpu", "driver": "gpu.example.com", "pool": "node-a", "device": "gpu-0"}]}});
    c.api.insert(gpu).unwrap();
    c.api.insert(pod("web-gpu", "vfpool")).unwrap();
    let pod_ns = TestNetns::new();
    cni(&c, "ADD", &pod_ns).ok();
    let given: Value = serde_json::from_str(&fs::read_to_string(&spy).unwrap()).unwrap();
    assert_eq!(
        given["topologyHint"],
        json!({"numaNodes": [1], "pcieRoots": ["pci0000:40"]}),
        "{given:#}"
    );
    cni(&c, "DEL", &pod_ns).ok();
}

/// deploy/dra/ parses as the API's own types and hangs together: the pod's template exists, its
/// VF request's class selects multinet's driver, and the NAD names the resource the driver
/// publishes for CNI.
#[test]
fn the_dra_examples_hang_together() {
    use k8s_openapi::api::core::v1::Pod;
    use k8s_openapi::api::resource::v1::{DeviceClass, ResourceClaimTemplate};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/dra");
    let read = |name: &str| -> Value {
        serde_yaml::from_str(&fs::read_to_string(dir.join(name)).unwrap()).unwrap()
    };
    let class: DeviceClass = serde_json::from_value(read("deviceclass.yaml")).unwrap();
    let template: ResourceClaimTemplate =
        serde_json::from_value(read("resourceclaimtemplate.yaml")).unwrap();
    let pod: Pod = serde_json::from_value(read("pod.yaml")).unwrap();
    let nad = read("network.yaml");
    let class_name = class.metadata.name.clone().unwrap();
    let selector = &class.spec.as_ref().unwrap().selectors.as_ref().unwrap()[0];
    assert!(
        selector.cel.as_ref().unwrap().expression.contains(DRIVER),
        "{selector:?}"
    );
    let spec = pod.spec.unwrap();
    let claims = spec.resource_claims.unwrap();
    assert_eq!(
        claims[0].resource_claim_template_name.as_deref(),
        template.metadata.name.as_deref()
    );
    assert_eq!(
        spec.containers[0]
            .resources
            .as_ref()
            .unwrap()
            .claims
            .as_ref()
            .unwrap()[0]
            .name,
        claims[0].name
    );
    let requests = template
        .spec
        .unwrap()
        .spec
        .unwrap()
        .devices
        .unwrap()
        .requests
        .unwrap();
    let vf = requests.iter().find(|r| r.name == "vf").unwrap();
    assert_eq!(vf.exactly.as_ref().unwrap().device_class_name, class_name);
    assert_eq!(
        nad["metadata"]["annotations"]["k8s.v1.cni.cncf.io/resourceName"],
        DRIVER
    );
    let networks = pod.metadata.annotations.unwrap()["k8s.v1.cni.cncf.io/networks"].clone();
    assert_eq!(networks, nad["metadata"]["name"].as_str().unwrap());
}

/// The example template, allocated by the test allocator (the scheduler's rules): its CEL
/// selector picks PF ens1f0's VFs, and `matchAttribute` puts the VF under the GPU's PCIe root,
/// though a VF of a lower address sits elsewhere.
#[test]
fn the_example_template_puts_the_vf_under_the_gpus_root() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/dra");
    let read = |name: &str| -> Value {
        serde_yaml::from_str(&fs::read_to_string(dir.join(name)).unwrap()).unwrap()
    };
    let template = read("resourceclaimtemplate.yaml");
    let claim = json!({"spec": template["spec"]["spec"]});
    let vf_class = read("deviceclass.yaml");
    let gpu_class = json!({"metadata": {"name": "gpu.example.com"},
        "spec": {"selectors": [{"cel": {"expression": "device.driver == \"gpu.example.com\""}}]}});
    let vf = |name: &str, pf: &str, root: &str| {
        json!({"name": name, "attributes": {
            "sriov.multinet.io/pfName": {"string": pf},
            "resource.kubernetes.io/pcieRoot": {"string": root}}})
    };
    let slices = [
        json!({"spec": {"driver": DRIVER, "nodeName": "node-a",
            "pool": {"name": "node-a", "generation": 1, "resourceSliceCount": 1},
            "devices": [vf("vf-0", "ens1f0", "pci0000:00"), vf("vf-1", "ens2f0", "pci0000:80"),
                        vf("vf-2", "ens1f0", "pci0000:80")]}}),
        json!({"spec": {"driver": "gpu.example.com", "nodeName": "node-a",
            "pool": {"name": "node-a", "generation": 1, "resourceSliceCount": 1},
            "devices": [{"name": "gpu-0", "attributes": {
                "resource.kubernetes.io/pcieRoot": {"string": "pci0000:80"}}}]}}),
    ];
    let allocation =
        allocator::allocate(&claim, &[vf_class, gpu_class], &slices, "node-a").unwrap();
    let results = allocation["devices"]["results"].as_array().unwrap();
    let picked: Vec<(&str, &str)> = results
        .iter()
        .map(|r| {
            (
                r["request"].as_str().unwrap(),
                r["device"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(picked, [("vf", "vf-2"), ("gpu", "gpu-0")]);
    // With the GPU under another root than every ens1f0 VF, nothing satisfies the claim.
    let mut apart = slices.clone();
    apart[1]["spec"]["devices"][0]["attributes"]["resource.kubernetes.io/pcieRoot"] =
        json!({"string": "pci0000:40"});
    let classes = [
        read("deviceclass.yaml"),
        json!({"metadata": {"name": "gpu.example.com"},
        "spec": {"selectors": [{"cel": {"expression": "device.driver == \"gpu.example.com\""}}]}}),
    ];
    assert!(allocator::allocate(&claim, &classes, &apart, "node-a").is_err());
}

/// Hot-plug of a network whose device comes from the pod's claim: the running pod gets the
/// claim's device (not a pool's, not another's) and the claim's status gets its network data.
#[test]
fn a_claims_network_hot_plugged_into_a_running_pod_gets_the_claims_device() {
    require_root!();
    let mut c = cluster("data");
    common::insert_team_nads(&c.node, &c.api);
    c.conf["daemonSocket"] = json!(c.node.path("run/multinet.sock"));
    let conf_file = c.node.path("multinet.conf");
    fs::write(&conf_file, c.conf.to_string()).unwrap();
    let log = c.node.path("daemon.log");
    let daemon = common::cached_daemon(
        &c.node,
        "node-a",
        &log,
        &[format!("--hot-plug={}", conf_file.display())],
        &[
            (
                "MULTINET_PODRESOURCES_SOCKET",
                c.node.path("no-kubelet.sock"),
            ),
            ("MULTINET_KUBELET_CHECKPOINT", c.node.path("no-checkpoint")),
        ],
    );
    let wait_for = |what: &str, cond: &dyn Fn() -> bool| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !cond() {
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}; daemon log:\n{}",
                fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    wait_for("the daemon's watches", &|| c.api.open_watches() >= 2);
    let pod_ns = TestNetns::new();
    cni(&c, "ADD", &pod_ns).ok();
    assert!(pod_ns.has_link("net1") && !pod_ns.has_link("net2"));

    c.api
        .merge_patch(
            "Pod",
            "team",
            "web",
            &json!({"metadata": {"annotations": {"k8s.v1.cni.cncf.io/networks": "data,vf"}}}),
        )
        .unwrap();
    wait_for("net2 from the claim", &|| pod_ns.has_link("net2"));
    let record: Value =
        serde_json::from_str(&fs::read_to_string(c.node.path("cni/attachments/c1.json")).unwrap())
            .unwrap();
    let vf = record["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["network"] == "team/vf")
        .unwrap();
    assert_eq!(vf["conf"]["deviceID"], "0000:af:06.3");
    wait_for("the claim's network data", &|| {
        let status = &c.api.get("ResourceClaim", "team", "web-nics").unwrap()["status"]["devices"];
        status.as_array().is_some_and(|d| {
            d.iter()
                .any(|e| e["device"] == "vf-3" && e["networkData"]["interfaceName"] == "net2")
        })
    });
    cni(&c, "DEL", &pod_ns).ok();
    c.node.assert_clean(&pod_ns);
    daemon.stop();
}
