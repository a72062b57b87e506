//! The window's TypeScript types (`ui/src/bindings/`) are generated from the protocol. This test
//! fails when they are stale; `UPDATE_BINDINGS=1 cargo test -p sandbox-desk --test bindings`
//! rewrites them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sandbox_desk::protocol::{ActionError, Intent, Reply, Request};
use ts_rs::{Config, TS};

fn read_dir(dir: &Path) -> BTreeMap<String, String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return BTreeMap::new() };
    entries
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "ts"))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read_to_string(e.path()).unwrap()))
        .collect()
}

#[test]
fn ui_bindings_match_the_protocol() {
    // Read at run time: a shared target dir may hold a binary built in another checkout.
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let committed = manifest.join("../../ui/src/bindings");
    let fresh = tempfile::tempdir().unwrap();
    // Our integers (ports, byte counts, timestamps) fit a JS number exactly.
    let cfg = Config::new().with_large_int("number").with_out_dir(fresh.path());
    Request::export_all(&cfg).unwrap();
    Reply::export_all(&cfg).unwrap();
    ActionError::export_all(&cfg).unwrap();
    Intent::export_all(&cfg).unwrap();
    let generated = read_dir(fresh.path());
    assert!(generated.contains_key("Request.ts") && generated.contains_key("Snapshot.ts"));

    if std::env::var_os("UPDATE_BINDINGS").is_some() {
        let _ = std::fs::remove_dir_all(&committed);
        std::fs::create_dir_all(&committed).unwrap();
        for (name, text) in &generated {
            std::fs::write(committed.join(name), text).unwrap();
        }
    }
    assert_eq!(
        read_dir(&committed),
        generated,
        "ui/src/bindings is stale: run `UPDATE_BINDINGS=1 cargo test -p sandbox-desk --test bindings`"
    );
}
