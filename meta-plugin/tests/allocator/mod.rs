//! A small DRA allocator for tests, playing the scheduler: it allocates a ResourceClaim's
//! requests from the ResourceSlices of one node by the published rules (KEP-4381 structured
//! parameters, resource.k8s.io/v1), so a test can drive a driver with a claim the way a cluster
//! would. It covers what the tests use:
//! - `exactly` requests with a DeviceClass (its CEL selectors) and the request's own CEL
//!   selectors, `allocationMode: ExactCount` (`count`, default 1);
//! - `constraints[].matchAttribute` over the listed requests (all when none is listed): every
//!   device chosen for them has that attribute, with one value;
//! - one device is given once; only the newest generation of each pool counts.
//!
//! CEL is evaluated by the `cel` crate over the device as CEL sees it: `device.driver`,
//! `device.attributes["<domain>"].<id>`, `device.capacity`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

/// One device of a slice, as the allocator sees it.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub driver: String,
    pub pool: String,
    pub name: String,
    /// Fully qualified attribute name → its value (`{"string": ...}` etc. unwrapped).
    pub attributes: BTreeMap<String, Value>,
}

impl Candidate {
    /// `device` as CEL sees it: attributes grouped by domain; a bare name is the driver's.
    fn cel_device(&self) -> Value {
        let mut by_domain: Map<String, Value> = Map::new();
        for (name, value) in &self.attributes {
            let (domain, id) = match name.split_once('/') {
                Some((d, i)) => (d.to_owned(), i.to_owned()),
                None => (self.driver.clone(), name.clone()),
            };
            by_domain
                .entry(domain)
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .unwrap()
                .insert(id, value.clone());
        }
        json!({"driver": self.driver, "attributes": by_domain, "capacity": {}})
    }

    fn matches(&self, expressions: &[String]) -> bool {
        expressions.iter().all(|e| {
            let program = cel::Program::compile(e).unwrap_or_else(|err| panic!("CEL {e}: {err}"));
            let mut context = cel::Context::default();
            context.add_variable("device", self.cel_device()).unwrap();
            matches!(program.execute(&context), Ok(cel::Value::Bool(true)))
        })
    }
}

/// The devices of `node`'s slices, newest generation of each pool only.
pub fn candidates(slices: &[Value], node: &str) -> Vec<Candidate> {
    let ours: Vec<&Value> = slices
        .iter()
        .filter(|s| s["spec"]["nodeName"] == node)
        .collect();
    let newest = |driver: &Value, pool: &Value| {
        ours.iter()
            .filter(|s| &s["spec"]["driver"] == driver && &s["spec"]["pool"]["name"] == pool)
            .filter_map(|s| s["spec"]["pool"]["generation"].as_i64())
            .max()
    };
    let mut out = Vec::new();
    for s in &ours {
        let spec = &s["spec"];
        if spec["pool"]["generation"].as_i64() != newest(&spec["driver"], &spec["pool"]["name"]) {
            continue;
        }
        for d in spec["devices"].as_array().into_iter().flatten() {
            let attributes = d["attributes"]
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| {
                    let v = v.as_object()?.values().next()?.clone();
                    Some((k.clone(), v))
                })
                .collect();
            out.push(Candidate {
                driver: spec["driver"].as_str().unwrap().to_owned(),
                pool: spec["pool"]["name"].as_str().unwrap().to_owned(),
                name: d["name"].as_str().unwrap().to_owned(),
                attributes,
            });
        }
    }
    out
}

struct Request {
    name: String,
    selectors: Vec<String>,
    count: usize,
}

fn cel_expressions(selectors: &Value) -> Vec<String> {
    selectors
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["cel"]["expression"].as_str().map(str::to_owned))
        .collect()
}

/// `status.allocation` for `claim` on `node`, or why it cannot be allocated. `classes` are the
/// DeviceClass objects by name.
pub fn allocate(
    claim: &Value,
    classes: &[Value],
    slices: &[Value],
    node: &str,
) -> Result<Value, String> {
    let devices = &claim["spec"]["devices"];
    let mut requests = Vec::new();
    for r in devices["requests"].as_array().into_iter().flatten() {
        let exactly = &r["exactly"];
        let class_name = exactly["deviceClassName"]
            .as_str()
            .ok_or("only `exactly`")?;
        let class = classes
            .iter()
            .find(|c| c["metadata"]["name"] == class_name)
            .ok_or_else(|| format!("no DeviceClass {class_name}"))?;
        let mut selectors = cel_expressions(&class["spec"]["selectors"]);
        selectors.extend(cel_expressions(&exactly["selectors"]));
        requests.push(Request {
            name: r["name"].as_str().unwrap().to_owned(),
            selectors,
            count: exactly["count"].as_u64().unwrap_or(1) as usize,
        });
    }
    let constraints: Vec<(Vec<String>, String)> = devices["constraints"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| {
            let attribute = c["matchAttribute"].as_str()?.to_owned();
            let listed: Vec<String> = c["requests"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r.as_str().map(str::to_owned))
                .collect();
            Some((listed, attribute))
        })
        .collect();
    let all = candidates(slices, node);
    // One slot per device wanted, in request order; a depth-first search fills them.
    let slots: Vec<&Request> = requests
        .iter()
        .flat_map(|r| std::iter::repeat_n(r, r.count))
        .collect();
    let mut chosen: Vec<usize> = Vec::new();
    if !fill(&slots, &all, &constraints, &mut chosen) {
        return Err("no set of devices satisfies the claim".to_owned());
    }
    let results: Vec<Value> = slots
        .iter()
        .zip(&chosen)
        .map(|(r, &i)| {
            json!({"request": r.name, "driver": all[i].driver, "pool": all[i].pool,
                   "device": all[i].name})
        })
        .collect();
    Ok(json!({"devices": {"results": results},
              "nodeSelector": {"nodeSelectorTerms": [{"matchFields": [
                  {"key": "metadata.name", "operator": "In", "values": [node]}]}]}}))
}

fn fill(
    slots: &[&Request],
    all: &[Candidate],
    constraints: &[(Vec<String>, String)],
    chosen: &mut Vec<usize>,
) -> bool {
    let Some(slot) = slots.get(chosen.len()) else {
        return true;
    };
    for (i, device) in all.iter().enumerate() {
        if chosen.contains(&i) || !device.matches(&slot.selectors) {
            continue;
        }
        chosen.push(i);
        if consistent(slots, all, constraints, chosen) && fill(slots, all, constraints, chosen) {
            return true;
        }
        chosen.pop();
    }
    false
}

/// Whether the devices chosen so far keep every matchAttribute constraint.
fn consistent(
    slots: &[&Request],
    all: &[Candidate],
    constraints: &[(Vec<String>, String)],
    chosen: &[usize],
) -> bool {
    constraints.iter().all(|(listed, attribute)| {
        let mut values = chosen
            .iter()
            .zip(slots)
            .filter(|(_, r)| listed.is_empty() || listed.contains(&r.name))
            .map(|(&i, _)| all[i].attributes.get(attribute));
        match values.next() {
            None => true,
            Some(None) => false,
            Some(Some(first)) => values.all(|v| v == Some(first)),
        }
    })
}
