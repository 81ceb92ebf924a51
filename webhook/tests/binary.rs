//! The `multinet-webhook` binary: flags from the command line and the environment, serving,
//! and a clean exit on SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers outside #[test] fns fail loudly by design.

mod common;

use std::io::Read;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use multinet_api_fixture::ApiFixture;
use serde_json::json;
use tempfile::TempDir;

use common::{TestCert, cert_files, https, pod_review};

/// Kills the child if the test fails before it exits.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_until_sigterm() {
    let fixture = ApiFixture::start().await.unwrap();
    let dir = TempDir::new().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    fixture.write_kubeconfig(&kubeconfig).unwrap();
    let files = cert_files(dir.path());
    let cert = TestCert::generate("binary");
    cert.write(&files);
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();

    let child = Command::new(env!("CARGO_BIN_EXE_multinet-webhook"))
        .arg(format!("--listen={addr}"))
        .arg("--tls-cert-file")
        .arg(&files.cert)
        .arg("--tls-key-file")
        .arg(&files.key)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .env("MULTINET_WEBHOOK_NAMESPACE_ISOLATION", "true")
        .env("MULTINET_WEBHOOK_GLOBAL_NAMESPACES", "shared")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut running = Running(child);

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match https(addr, &[&cert.ca_pem], "GET", "/readyz", Vec::new()).await {
            Ok(reply) if reply.status == 200 => break,
            _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
            other => panic!("never ready: {:?}", other.map(|r| r.status)),
        }
    }

    // Isolation came from the environment.
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "team",
                     "annotations": {"k8s.v1.cni.cncf.io/networks": "shared/a,default/b"}},
        "spec": {"containers": [{"name": "c"}]}
    });
    let reply = https(
        addr,
        &[&cert.ca_pem],
        "POST",
        "/isolate",
        pod_review("b1", "team", pod),
    )
    .await
    .unwrap();
    let response = &reply.json()["response"];
    assert_eq!(response["allowed"], false);
    let message = response["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("networks[1] selects network default/b"),
        "{message}"
    );

    let pid = running.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = running.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "still running after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status}");
    let (mut stdout, mut stderr) = (String::new(), String::new());
    running
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    running
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    // Logs go to stderr; stdout stays empty.
    assert!(stdout.is_empty(), "{stdout}");
    let logs = stderr;
    assert!(logs.contains("multinet-webhook listening"), "{logs}");
    assert!(logs.contains("denied"), "{logs}");
}
