#![allow(clippy::unwrap_used, clippy::expect_used)]
use k8s_openapi::api::core::v1::Pod;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{
    Client, Config,
    api::{Api, ApiResource, DynamicObject, GroupVersionKind},
};
use multinet_api_fixture::ApiFixture;
use serde_json::json;
use std::time::Instant;

fn main() {
    let api = ApiFixture::start_blocking().unwrap();
    for n in ["a", "b", "c"] {
        api.insert(
            json!({"apiVersion":"k8s.cni.cncf.io/v1","kind":"NetworkAttachmentDefinition",
            "metadata":{"name":n,"namespace":"bench"},"spec":{"config":"{}"}}),
        )
        .unwrap();
    }
    api.insert(
        json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"pod","namespace":"bench"}}),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kc");
    api.write_kubeconfig(&kc).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("k8s.cni.cncf.io", "v1", "NetworkAttachmentDefinition"),
        "network-attachment-definitions",
    );
    let mut rows: Vec<[f64; 6]> = vec![];
    for _ in 0..40 {
        rt.block_on(async {
            let t0 = Instant::now();
            let k = Kubeconfig::read_from(&kc).unwrap();
            let t1 = Instant::now();
            let c = Config::from_custom_kubeconfig(k, &KubeConfigOptions::default())
                .await
                .unwrap();
            let t2 = Instant::now();
            let client = Client::try_from(c).unwrap();
            let t3 = Instant::now();
            let pods: Api<Pod> = Api::namespaced(client.clone(), "bench");
            pods.get("pod").await.unwrap();
            let t4 = Instant::now();
            let nads: Api<DynamicObject> = Api::namespaced_with(client.clone(), "bench", &ar);
            let (a, b, c) = tokio::join!(nads.get("a"), nads.get("b"), nads.get("c"));
            a.unwrap();
            b.unwrap();
            c.unwrap();
            let t5 = Instant::now();
            for n in ["a", "b", "c"] {
                nads.get(n).await.unwrap();
            }
            let t6 = Instant::now();
            let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1000.0;
            rows.push([
                ms(t0, t1),
                ms(t1, t2),
                ms(t2, t3),
                ms(t3, t4),
                ms(t4, t5),
                ms(t5, t6),
            ]);
        });
    }
    for i in 0..6 {
        let mut v: Vec<f64> = rows.iter().map(|r| r[i]).collect();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!(
            "{} {:.3}",
            [
                "read kc",
                "config",
                "client",
                "pod get",
                "3 nads concurrent",
                "3 nads sequential warm"
            ][i],
            v[v.len() / 2]
        );
    }
}
