//! Reads `tauri.conf.json` and `Cargo.toml` beside it at the top of the repository (this build
//! script's package is the root manifest's, so tauri-build, `generate_context!` and the Tauri CLI
//! find the configuration where they look first, and its paths are relative to the top), and the
//! capabilities in `src-tauri/capabilities/`.

fn main() {
    const CAPABILITIES: &str = "src-tauri/capabilities";
    // A custom capabilities path is not watched by tauri-build itself.
    println!("cargo:rerun-if-changed={CAPABILITIES}");
    let attributes = tauri_build::Attributes::new().capabilities_path_pattern("src-tauri/capabilities/**/*");
    if let Err(error) = tauri_build::try_build(attributes) {
        eprintln!("tauri-build failed: {error:#}");
        std::process::exit(1);
    }
}
