//! `roost passwd FILE USER` as an operator runs it: batch mode, a client id binding, the
//! password on standard input, an update, and the refusals.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write as _;
use std::process::{Command, Stdio};

fn passwd(args: &[&str], stdin: Option<&str>) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_roost"))
        .arg("passwd")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(s) = stdin {
        child.stdin.as_mut().unwrap().write_all(s.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

#[test]
fn passwd_creates_and_updates_users() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users");
    let f = file.to_str().unwrap();
    assert!(passwd(&["-b", f, "alice", "first-pw"], None).status.success());
    assert!(passwd(&["-b", "--client-id", "bob-dev", f, "bob", "bob-pw"], None).status.success());
    assert!(passwd(&[f, "carol"], Some("carol-pw\n")).status.success());
    assert!(passwd(&["-b", f, "alice", "second-pw"], None).status.success());
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains("-pw"), "passwords are stored hashed: {text}");
    let users = roost_core::auth::users::parse(&file, &text).unwrap();
    let names: Vec<_> = users.iter().map(|u| u.username.as_str()).collect();
    assert_eq!(names, ["alice", "bob", "carol"]);
    assert!(roost_core::auth::users::verify_password(b"second-pw", &users[0].hash));
    assert!(!roost_core::auth::users::verify_password(b"first-pw", &users[0].hash));
    assert_eq!(users[1].client_id.as_deref(), Some("bob-dev"));
    assert!(roost_core::auth::users::verify_password(b"carol-pw", &users[2].hash));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    // Refusals: a password without -b, -b without one, a username with ':'.
    assert_eq!(passwd(&[f, "dave", "pw"], None).status.code(), Some(2));
    assert_eq!(passwd(&["-b", f, "dave"], None).status.code(), Some(2));
    assert!(!passwd(&["-b", f, "a:b", "pw"], None).status.success());
}
