//! `tug-image`: build the demo images, import tarballs into a store, list a store, pull.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tug_image::demo::{build_demo, DemoOptions};
use tug_image::{ImageStore, PullOptions};

#[derive(Parser)]
#[command(name = "tug-image", about = "tug's image store tools")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Compile manifests/images/* and write OCI-layout tarballs DIR/<name>.tar.
    BuildDemo {
        #[arg(long)]
        out: PathBuf,
        /// Directory with <program>/main.rs (default: this repository's manifests/images).
        #[arg(long)]
        sources: Option<PathBuf>,
        #[arg(long, default_value = "/usr/bin/busybox")]
        busybox: PathBuf,
        /// Rebuild even when the tarballs are up to date.
        #[arg(long)]
        force: bool,
    },
    /// Import OCI-layout or `docker save` tarballs (gzip or not) into a store.
    Import {
        #[arg(long)]
        root: PathBuf,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// List the images of a store.
    List {
        #[arg(long)]
        root: PathBuf,
    },
    /// Pull an image from a registry into a store.
    Pull {
        #[arg(long)]
        root: PathBuf,
        reference: String,
        /// host:port of a registry spoken to over plain http (repeatable).
        #[arg(long)]
        insecure: Vec<String>,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Cmd::BuildDemo {
            out,
            sources,
            busybox,
            force,
        } => {
            let mut opts = DemoOptions::new(&out);
            if let Some(s) = sources {
                opts.sources = s;
            }
            opts.busybox = busybox;
            opts.force = force;
            for tar in build_demo(&opts).context("building the demo images")? {
                println!("{}", tar.display());
            }
        }
        Cmd::Import { root, files } => {
            let store = open(&root)?;
            for f in files {
                let images = store
                    .import(&f)
                    .with_context(|| format!("importing {}", f.display()))?;
                for i in images {
                    println!("{} {}", i.id, i.references.join(","));
                }
            }
        }
        Cmd::List { root } => {
            let store = open(&root)?;
            println!("{:<71} {:>10}  REFERENCES", "ID", "SIZE");
            for i in store.list() {
                println!("{:<71} {:>10}  {}", i.id, i.size, i.references.join(","));
            }
        }
        Cmd::Pull {
            root,
            reference,
            insecure,
        } => {
            let store = open(&root)?;
            let opts = PullOptions {
                insecure_registries: insecure,
                ..Default::default()
            };
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let image = rt.block_on(store.pull(&reference, None, &opts))?;
            println!("{} {}", image.id, image.references.join(","));
        }
    }
    Ok(())
}

fn open(root: &std::path::Path) -> anyhow::Result<ImageStore> {
    ImageStore::open(root).with_context(|| format!("opening the image store {}", root.display()))
}
