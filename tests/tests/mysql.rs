//! The mysql emulator against Debian's `mysql` client (MariaDB's) and `nmap -sV`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::process::Command;

use decnet_e2e::{Decky, msgid, sd_param};

fn mysql(port: u16, args: &[&str]) -> String {
    let out = Command::new("mysql")
        .args([
            "-h",
            "127.0.0.1",
            "-P",
            &port.to_string(),
            "--connect-timeout=10",
        ])
        .args(args)
        .args(["-e", "select 1"])
        .output()
        .expect("mysql is installed by scripts/test.sh (default-mysql-client)");
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// mysql_native_password's client proof: SHA1(pw) XOR SHA1(scramble + SHA1(SHA1(pw))).
fn native_proof(password: &str, scramble_hex: &str) -> String {
    let py = "import hashlib,sys\n\
        s=bytes.fromhex(sys.argv[2]); h1=hashlib.sha1(sys.argv[1].encode()).digest()\n\
        x=hashlib.sha1(s+hashlib.sha1(h1).digest()).digest()\n\
        print(bytes(a^b for a,b in zip(h1,x)).hex())";
    let out = Command::new("python3")
        .args(["-c", py, password, scramble_hex])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn mysql_client_logins_are_captured_crackably() {
    let decky = Decky::start("mysql", &[]);
    let err = mysql(decky.port, &["-u", "root", "-pSup3rSecret", "billing"]);
    assert_eq!(
        err.trim(),
        "ERROR 1045 (28000): Access denied for user 'root'@'127.0.0.1' (using password: YES)"
    );
    let err = mysql(decky.port, &["-u", "backup"]);
    assert_eq!(
        err.trim(),
        "ERROR 1045 (28000): Access denied for user 'backup'@'127.0.0.1' (using password: NO)"
    );

    let lines = decky.wait_for(|l| l.iter().filter(|x| x.contains(" disconnect ")).count() >= 2);
    let auths: Vec<&String> = lines.iter().filter(|l| msgid(l) == Some("auth")).collect();
    assert_eq!(auths.len(), 2, "{lines:#?}");
    let root = auths[0];
    assert_eq!(sd_param(root, "username").as_deref(), Some("root"));
    assert_eq!(sd_param(root, "database").as_deref(), Some("billing"));
    assert_eq!(
        sd_param(root, "plugin").as_deref(),
        Some("mysql_native_password")
    );
    assert_eq!(sd_param(root, "using_password").as_deref(), Some("YES"));
    assert_eq!(sd_param(root, "client_name").as_deref(), Some("libmariadb"));
    assert_eq!(sd_param(root, "program_name").as_deref(), Some("mysql"));
    assert_eq!(sd_param(root, "src_ip").as_deref(), Some("127.0.0.1"));
    assert!(sd_param(root, "src_port").unwrap().parse::<u16>().unwrap() > 0);
    assert!(root.starts_with("<132>1 "), "{root}");
    assert!(root.contains(" e2e-host mysql - auth "), "{root}");
    // The capture is enough to test a password guess offline.
    let scramble = sd_param(root, "scramble_hex").unwrap();
    let response = sd_param(root, "auth_response_hex").unwrap();
    assert_eq!(scramble.len(), 40);
    assert_eq!(native_proof("Sup3rSecret", &scramble), response);
    assert_eq!(
        sd_param(root, "hashcat").unwrap(),
        format!("$mysqlna${scramble}*{response}")
    );
    let backup = auths[1];
    assert_eq!(sd_param(backup, "username").as_deref(), Some("backup"));
    assert_eq!(sd_param(backup, "auth_response_hex").as_deref(), Some(""));
    assert_eq!(sd_param(backup, "using_password").as_deref(), Some("NO"));
    // Fresh scramble and the next connection id for every connection.
    assert_ne!(sd_param(backup, "scramble_hex").unwrap(), scramble);
    let id = |l: &str| {
        sd_param(l, "connection_id")
            .unwrap()
            .parse::<u32>()
            .unwrap()
    };
    assert!(id(backup) > id(root));
}

#[test]
fn nmap_identifies_mysql_with_its_version() {
    let decky = Decky::start("mysql", &[("MYSQL_VERSION", "5.7.42-log")]);
    let Some(line) = decnet_e2e::nmap_version_row(decky.port) else {
        return;
    };
    let text = &line;
    assert!(
        line.contains("mysql") && line.contains("MySQL 5.7.42-log"),
        "{text}"
    );
}
