//! Lays out a cluster PKI directory: `cargo run -p tug-pki --example init_pki -- DIR [SERVER_URL]`.

use std::net::IpAddr;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir: PathBuf = args
        .next()
        .ok_or("usage: init_pki DIR [SERVER_URL]")?
        .into();
    let server = args
        .next()
        .unwrap_or_else(|| "https://127.0.0.1:6443".to_string());
    let replicas: Vec<(String, Vec<IpAddr>)> = vec![("node-1".into(), vec!["127.0.0.1".parse()?])];
    let pki = tug_pki::init_cluster_pki(&dir, "tug", &server, (&[], &[]), &replicas)?;
    println!("wrote {}", pki.paths.dir.display());
    Ok(())
}
