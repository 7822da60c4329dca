//! The redis emulator against the real `redis-cli` (Debian's redis-tools).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::process::Command;

use decnet_e2e::{Decky, msgid, sd_param};

fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli is installed by scripts/test.sh (redis-tools)");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

#[test]
fn redis_cli_session_is_captured() {
    let decky = Decky::start("redis", &[("KERNEL", "5.15.0-125-generic")]);
    assert_eq!(redis_cli(decky.port, &["PING"]).trim(), "PONG");
    let info = redis_cli(decky.port, &["INFO", "server"]);
    assert!(info.contains("redis_version:7.2.7"), "{info}");
    assert!(
        info.contains("os:Linux 5.15.0-125-generic x86_64"),
        "{info}"
    );
    let auth = redis_cli(decky.port, &["AUTH", "s3cret"]);
    assert!(auth.contains("without any password configured"), "{auth}");
    let keys = redis_cli(decky.port, &["KEYS", "aws:*"]);
    assert!(
        keys.contains("aws:access_key_id") && keys.contains("aws:secret_access_key"),
        "{keys}"
    );
    let set = redis_cli(decky.port, &["CONFIG", "SET", "dir", "/var/spool/cron"]);
    assert_eq!(set.trim(), "OK");

    let lines = decky.wait_for(|l| l.iter().filter(|x| x.contains(" disconnect ")).count() >= 5);
    let auth = lines
        .iter()
        .find(|l| msgid(l) == Some("auth"))
        .expect("auth event");
    assert_eq!(sd_param(auth, "password").as_deref(), Some("s3cret"));
    assert_eq!(sd_param(auth, "src_ip").as_deref(), Some("127.0.0.1"));
    assert!(sd_param(auth, "src_port").unwrap().parse::<u16>().unwrap() > 0);
    assert_eq!(sd_param(auth, "dst_port").unwrap(), decky.port.to_string());
    assert!(auth.starts_with("<132>1 "), "auth is a warning: {auth}");
    assert!(auth.contains(" e2e-host redis - auth "), "{auth}");
    let config = lines
        .iter()
        .find(|l| msgid(l) == Some("command") && sd_param(l, "cmd").as_deref() == Some("config"))
        .expect("config command event");
    assert_eq!(
        sd_param(config, "args").as_deref(),
        Some("SET dir /var/spool/cron")
    );
    assert_eq!(
        lines.iter().filter(|l| msgid(l) == Some("connect")).count(),
        5
    );
    decnet_e2e::assert_neutral(&lines);
}
