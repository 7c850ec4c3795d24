//! The `roost` binary, for tests of the process itself (signals, exit status). Cargo only
//! sets `CARGO_BIN_EXE_roost` for the crate that owns the binary, so it is found by path:
//! the workspace target directory (or `CARGO_TARGET_DIR`), debug before release.

use std::path::PathBuf;

/// Path of the built `roost` binary; panics with how to build it if there is none.
pub fn roost_bin() -> PathBuf {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    let name = format!("roost{}", std::env::consts::EXE_SUFFIX);
    let candidates = [
        target.join("debug").join(&name),
        target.join("release").join(&name),
    ];
    match candidates.iter().find(|path| path.is_file()) {
        Some(path) => path.clone(),
        None => panic!(
            "the roost binary is not built (looked for {candidates:?}); \
             run `cargo build -p roost` first"
        ),
    }
}
