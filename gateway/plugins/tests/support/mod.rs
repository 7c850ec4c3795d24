//! Guests the tests build: the AssemblyScript `line` codec (compiled with `asc` from the
//! local node_modules that scripts/test installs, cached by source hash) and WAT guests.
#![allow(clippy::expect_used, clippy::panic)] // test support: a failed expectation is the test failing
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// `gateway/plugins/guests`, found from the crate using this module (roost-plugins or the
/// end-to-end tests).
fn guests_dir() -> PathBuf {
    let mut dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    loop {
        let guests = dir.join("gateway/plugins/guests");
        if guests.is_dir() {
            return guests;
        }
        if dir.join("guests/line.ts").exists() {
            return dir.join("guests");
        }
        assert!(dir.pop(), "gateway/plugins/guests not found above {}", env!("CARGO_MANIFEST_DIR"));
    }
}

/// The AssemblyScript `line` guest (`guests/line.ts`), compiled once per source version.
pub fn line_wasm() -> Vec<u8> {
    static BUILT: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| asc("line")).clone()
}

/// `line` with faults on purpose (`guests/hostile.ts`: LOOP, GROW, JUNK lines).
pub fn hostile_wasm() -> Vec<u8> {
    static BUILT: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| asc("hostile")).clone()
}

/// Compiles `guests/{name}.ts` with `asc` (cached under the target dir by source hash).
fn asc(name: &str) -> Vec<u8> {
    let guests = guests_dir();
    let mut source = std::fs::read(guests.join(format!("{name}.ts"))).expect("guest source");
    source.extend(std::fs::read(guests.join("line.ts")).expect("guests/line.ts"));
    let asc = guests.join("node_modules/.bin/asc");
    assert!(
        asc.exists(),
        "AssemblyScript compiler missing at {}: run scripts/test (install_assemblyscript) first",
        asc.display()
    );
    let hash: String =
        ring::digest::digest(&ring::digest::SHA256, &source).as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect();
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{hash}.wasm"));
    if let Ok(bytes) = std::fs::read(&out) {
        return bytes;
    }
    // Compile beside, then rename: tests running at once never read a half-written file.
    let tmp = out.with_file_name(format!("{name}-{hash}-{}.tmp.wasm", std::process::id()));
    let status = Command::new(&asc)
        .current_dir(&guests)
        .arg(format!("{name}.ts"))
        .args(["--runtime", "stub", "-O3", "--use", "abort=line/abort", "-o"])
        .arg(&tmp)
        .status()
        .expect("run asc");
    assert!(status.success(), "asc failed to compile guests/{name}.ts");
    std::fs::rename(&tmp, &out).expect("rename the compiled guest");
    std::fs::read(&out).expect("read the compiled guest")
}

/// A WAT guest with ABI v1 plumbing around the given `roost_decode` body (`$len` is its
/// parameter; the input is at offset 1024) and extra module fields.
pub fn wat_guest(decode_body: &str, extra: &str) -> Vec<u8> {
    wat::parse_str(wat_text(decode_body, extra)).expect("valid WAT")
}

fn wat_text(decode_body: &str, extra: &str) -> String {
    format!(
        r#"(module
          (import "roost" "publish" (func $publish (param i32 i32 i32 i32 i32 i32 i32)))
          (import "roost" "connect" (func $connect (param i32 i32 i32 i32 i32 i32 i32)))
          (import "roost" "write" (func $write (param i32 i32)))
          {extra}
          (memory (export "memory") 1)
          (data (i32.const 0) "dev")
          (func (export "roost_abi_version") (result i32) i32.const 1)
          (func (export "roost_buffer") (param i32) (result i32) i32.const 1024)
          (func (export "roost_decode") (param $len i32) (result i32) {decode_body})
          (func (export "roost_encode") (param i32 i32 i32 i32 i32 i32) (result i32)
            (call $write (i32.const 0) (i32.const 3)) i32.const 0))"#
    )
}

/// A well-behaved WAT codec: the first input connects as `dev`, every input is published
/// whole on topic `dev`.
pub fn echo_guest() -> Vec<u8> {
    wat::parse_str(String::from_utf8(echo_guest_wat()).expect("UTF-8")).expect("valid WAT")
}

/// [`echo_guest`] as WAT text, for tests that vary it.
pub fn echo_guest_wat() -> Vec<u8> {
    wat_text(
        r#"(if (i32.eqz (global.get $connected)) (then
             (call $connect (i32.const 0) (i32.const 3) (i32.const 0) (i32.const -1) (i32.const 0) (i32.const -1) (i32.const 60))
             (global.set $connected (i32.const 1))))
           (call $publish (i32.const 0) (i32.const 0) (i32.const 3) (i32.const 1024) (local.get $len) (i32.const 0) (i32.const 0))
           local.get $len"#,
        "(global $connected (mut i32) (i32.const 0))",
    )
    .into_bytes()
}
