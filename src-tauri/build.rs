//! Reads `tauri.conf.json` (here a symlink to the repository's top-level one, so `cargo build`,
//! `generate_context!` and the Tauri CLI all find it in this crate's directory and resolve its
//! relative paths from here) and the capabilities in `capabilities/`.

fn main() {
    tauri_build::build();
}
