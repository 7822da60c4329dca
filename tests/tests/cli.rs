//! The `decnet` binary as a user runs it: listings, planning, compose output, errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers, not product code

use std::{fs, path::PathBuf};

use assert_cmd::Command;
use serde_yaml::Value;

fn decnet() -> Command {
    let mut cmd = Command::new(decnet_e2e::workspace_bin("decnet"));
    cmd.env_remove("DECNET_LOG");
    cmd
}

fn repo_file(rel: &str) -> PathBuf {
    PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("..")
    .join(rel)
}

fn json_of(args: &[&str]) -> serde_json::Value {
    let out = decnet().args(args).arg("--json").output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn listings_have_the_documented_counts() {
    let services = json_of(&["services"]);
    let list = services.as_array().unwrap();
    assert_eq!(list.len(), 28);
    let ssh = list.iter().find(|s| s["slug"] == "ssh").unwrap();
    assert_eq!(ssh["ports"][0]["number"], 22);
    assert_eq!(ssh["ports"][0]["transport"], "tcp");
    assert!(
        ssh["persona"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| !k["doc"].as_str().unwrap().is_empty())
    );
    let sniffer = list.iter().find(|s| s["slug"] == "sniffer").unwrap();
    assert_eq!(sniffer["fleet_singleton"], true);
    assert_eq!(json_of(&["archetypes"]).as_array().unwrap().len(), 15);
    assert_eq!(json_of(&["distros"]).as_array().unwrap().len(), 9);

    let table = decnet().arg("services").output().unwrap();
    let text = String::from_utf8(table.stdout).unwrap();
    assert!(text.contains("22/tcp") && text.contains("28 services (27 per decky, 1 fleet-wide)"));
    let text = String::from_utf8(decnet().arg("archetypes").output().unwrap().stdout).unwrap();
    assert!(text.contains("15 archetypes") && text.contains("domain-controller"));
    let text = String::from_utf8(decnet().arg("distros").output().unwrap().stdout).unwrap();
    assert!(text.contains("9 distros") && text.contains("rocky9"));
}

fn compose_of(args: &[&str]) -> (Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("fleet.yml");
    let out = decnet()
        .args(args)
        .args(["--dry-run", "--seed", "11", "-o"])
        .arg(&out_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = fs::read_to_string(&out_path).unwrap();
    (serde_yaml::from_str(&text).unwrap(), text)
}

fn str_list(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| s.iter().map(|x| x.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

/// Field-by-field check of the parts every compose file shares.
fn check_common_structure(doc: &Value, deckies: usize) {
    assert_eq!(doc["version"], "3.8");
    assert_eq!(doc["networks"]["lan"]["external"], true);
    assert_eq!(doc["networks"]["lan"]["name"], "fleet_lan");
    let services = doc["services"].as_mapping().unwrap();
    let bases: Vec<(&Value, &Value)> = services
        .iter()
        .filter(|(_, s)| s["labels"]["fleet.role"] == "base")
        .collect();
    assert_eq!(bases.len(), deckies);
    for (name, base) in &bases {
        let name = name.as_str().unwrap();
        assert_eq!(base["container_name"], name);
        assert_eq!(base["image"], "fleet/base:latest");
        assert_eq!(base["pull_policy"], "never");
        assert_eq!(base["restart"], "unless-stopped");
        assert_eq!(str_list(&base["cap_drop"]), ["ALL"]);
        assert_eq!(str_list(&base["cap_add"]), ["NET_ADMIN"]);
        assert_eq!(str_list(&base["security_opt"]), ["no-new-privileges:true"]);
        assert_eq!(base["read_only"], true);
        assert_eq!(base["mem_limit"], "16m");
        assert_eq!(base["pids_limit"], 16);
        assert_eq!(base["labels"]["fleet.member"], name);
        assert_eq!(base["logging"]["driver"], "json-file");
        assert_eq!(base["logging"]["options"]["max-size"], "10m");
        assert_eq!(base["sysctls"].as_mapping().unwrap().len(), 10);
        let ttl = base["sysctls"]["net.ipv4.ip_default_ttl"].as_str().unwrap();
        assert!(["64", "128", "255"].contains(&ttl));
        let hostname = base["hostname"].as_str().unwrap();
        assert!(!hostname.is_empty());
        let lan = &base["networks"]["lan"];
        let ip: std::net::Ipv4Addr = lan["ipv4_address"].as_str().unwrap().parse().unwrap();
        assert!(!ip.is_unspecified());
        let mac = lan["mac_address"].as_str().unwrap();
        let first = u8::from_str_radix(&mac[..2], 16).unwrap();
        assert_eq!(first & 0x03, 0, "{mac} must be a global unicast vendor MAC");
    }
    for (name, svc) in services
        .iter()
        .filter(|(_, s)| s["labels"]["fleet.role"] == "service")
    {
        let name = name.as_str().unwrap();
        let member = svc["labels"]["fleet.member"].as_str().unwrap();
        let slug = svc["labels"]["fleet.service"].as_str().unwrap();
        assert_eq!(name, format!("{member}-{}", slug.replace('_', "-")));
        assert_eq!(svc["container_name"], name);
        assert_eq!(svc["network_mode"], format!("service:{member}"));
        assert_eq!(str_list(&svc["depends_on"]), [member]);
        assert!(svc.get("hostname").is_none() && svc.get("networks").is_none());
        assert_eq!(str_list(&svc["cap_drop"]), ["ALL"]);
        assert_eq!(str_list(&svc["security_opt"]), ["no-new-privileges:true"]);
        assert_eq!(svc["environment"]["NODE_NAME"], member);
        let base_hostname = &services[member]["hostname"];
        assert_eq!(&svc["environment"]["HOSTNAME"], base_hostname);
        assert!(svc["mem_limit"].as_str().unwrap().ends_with('m'));
        assert!(svc["pids_limit"].as_u64().unwrap() > 0);
    }
}

#[test]
fn dry_run_random_fleet_compose_structure() {
    let (doc, text) = compose_of(&[
        "deploy",
        "-n",
        "5",
        "--randomize-services",
        "--subnet",
        "10.20.0.0/24",
    ]);
    check_common_structure(&doc, 5);
    let services = doc["services"].as_mapping().unwrap();
    for n in 1..=5 {
        let name = format!("host-{n:02}");
        let base = &services[name.as_str()];
        assert_eq!(
            base["networks"]["lan"]["ipv4_address"],
            format!("10.20.0.{}", n + 1)
        );
        let own: Vec<&Value> = services
            .values()
            .filter(|s| s["labels"]["fleet.member"] == name.as_str())
            .collect();
        assert!((2..=4).contains(&own.len()), "{name}: base + 1-3 services");
    }
    for svc in services
        .values()
        .filter(|s| s["labels"]["fleet.role"] == "service")
    {
        let slug = svc["labels"]["fleet.service"].as_str().unwrap();
        assert_eq!(svc["image"], format!("fleet/{slug}:latest"));
        assert_eq!(str_list(&svc["command"]), ["serve", slug]);
        assert_eq!(svc["read_only"], true);
        assert_eq!(str_list(&svc["tmpfs"]), ["/tmp:size=16m,mode=1777"]);
    }
    assert_stealthy(&text);
}

#[test]
fn dry_run_full_ini_compose_structure() {
    let ini = repo_file("examples/full.ini");
    let (doc, text) = compose_of(&["deploy", "-c", ini.to_str().unwrap()]);
    check_common_structure(&doc, 8);
    let s = doc["services"].as_mapping().unwrap();
    // amount expansion + group persona + member override
    for n in 1..=3 {
        assert!(s.contains_key(format!("winfarm-0{n}").as_str()));
        let base = &s[format!("winfarm-0{n}").as_str()];
        assert!(base["hostname"].as_str().unwrap().starts_with("DESKTOP-"));
        assert_eq!(base["sysctls"]["net.ipv4.ip_default_ttl"], "128");
        assert_eq!(base["sysctls"]["net.ipv4.tcp_timestamps"], "1");
    }
    assert_eq!(s["winfarm-01-smb"]["environment"]["SMB_WORKGROUP"], "CORP");
    assert!(
        s["winfarm-01-smb"]["environment"]
            .get("SMB_SHARES")
            .is_none()
    );
    assert_eq!(
        s["winfarm-02-smb"]["environment"]["SMB_WORKGROUP"],
        "FINANCE"
    );
    assert_eq!(
        s["winfarm-02-smb"]["environment"]["SMB_SHARES"],
        "payroll, scans"
    );
    assert_eq!(
        str_list(&s["winfarm-01-smb"]["cap_add"]),
        ["NET_BIND_SERVICE"]
    );
    assert!(
        s["winfarm-01-rdp"].get("cap_add").is_none(),
        "rdp binds 3389: no caps"
    );
    // explicit ip, hostname, distro, persona
    assert_eq!(s["mx01"]["networks"]["lan"]["ipv4_address"], "10.20.0.40");
    assert_eq!(s["mx01"]["hostname"], "mx01.corp.local");
    assert_eq!(s["mx01-smtp"]["environment"]["DISTRO"], "debian");
    assert_eq!(
        s["mx01-smtp"]["environment"]["SMTP_BANNER"],
        "220 mx01.corp.local ESMTP Postfix (Debian/GNU)"
    );
    assert_eq!(
        s["mx01-imap"]["environment"]["IMAP_USERS"],
        "admin:Summer2024!, backup:backup"
    );
    // continuation line, persona kinds, custom service
    assert_eq!(
        s["web01-http"]["environment"]["SERVER_HEADER"],
        "nginx/1.18.0 (Ubuntu)"
    );
    assert_eq!(s["web01-http"]["environment"]["RESPONSE_CODE"], "200");
    assert_eq!(s["web01-http"]["environment"]["SITE_APP"], "wordpress");
    assert_eq!(s["web01-ssh"]["environment"]["SSH_ACCEPT_AFTER"], "3");
    let metrics = &s["web01-metrics"];
    assert_eq!(metrics["image"], "prom/node-exporter:latest");
    assert!(metrics.get("pull_policy").is_some());
    assert_eq!(
        str_list(&metrics["command"]),
        ["/bin/node_exporter", "--web.listen-address=:9100"]
    );
    // general log_target reaches every service; nmap_os spellings; archetype OS
    for svc in s
        .values()
        .filter(|v| v["labels"]["fleet.role"] == "service")
    {
        assert_eq!(svc["environment"]["LOG_TARGET"], "10.20.0.250:514");
    }
    assert_eq!(s["pgsql-postgres"]["environment"]["OS_FAMILY"], "bsd");
    assert_eq!(s["plc"]["sysctls"]["net.ipv4.ip_default_ttl"], "255");
    assert_eq!(
        s["plc-snmp"]["environment"]["SNMP_ARCHETYPE"],
        "water_plant"
    );
    assert!(s.contains_key("plc-conpot"));
    assert_stealthy(&text);
}

#[test]
fn json_plan_carries_mutate_intervals_and_general_settings() {
    let ini = repo_file("examples/full.ini");
    let plan = json_of(&["config", "check", ini.to_str().unwrap(), "--seed", "3"]);
    let find = |n: &str| {
        plan["deckies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["name"] == n)
            .unwrap()
            .clone()
    };
    assert_eq!(find("mx01")["mutate_interval"], 120);
    assert_eq!(find("web01")["mutate_interval"], 60);
    assert_eq!(plan["network"]["interface"], "eth1");
    assert_eq!(plan["network"]["gateway"], "10.20.0.1");
    assert_eq!(plan["log_target"], "10.20.0.250:514");
    assert_eq!(plan["seed"], 3);
}

#[test]
fn crlf_ini_plans_identically() {
    let ini = fs::read_to_string(repo_file("examples/full.ini")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let crlf = dir.path().join("crlf.ini");
    fs::write(&crlf, ini.replace('\n', "\r\n")).unwrap();
    let a = json_of(&[
        "config",
        "check",
        repo_file("examples/full.ini").to_str().unwrap(),
        "--seed",
        "5",
    ]);
    let b = json_of(&["config", "check", crlf.to_str().unwrap(), "--seed", "5"]);
    assert_eq!(a, b);
}

/// Nothing an attacker could see, and nothing in the compose file, names the product.
fn assert_stealthy(text: &str) {
    let lower = text.to_ascii_lowercase();
    for word in ["decnet", "honeypot", "decoy", "fake"] {
        assert!(!lower.contains(word), "compose output contains {word:?}");
    }
}

fn bad_ini(body: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.ini");
    fs::write(&path, body).unwrap();
    let out = decnet()
        .args(["config", "check"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    let stderr = stderr.replace(&path.display().to_string(), "bad.ini");
    (out.status.code().unwrap(), stderr)
}

const NET: &str = "[general]\nnet = 10.9.0.0/24\n\n";

#[test]
fn bad_inputs_give_one_line_errors_with_exit_code_2() {
    let cases: Vec<(String, &str)> = vec![
        (
            format!("{NET}[aa]\nservices = ssh, telnetd\n"),
            "bad.ini: line 5: [aa] services: unknown service `telnetd`; known services:",
        ),
        (
            format!(
                "{NET}[aa]\nip = 10.9.0.7\nservices = ssh\n\n[bb]\nip = 10.9.0.7\nservices = ssh\n"
            ),
            "bad.ini: line 9: [bb] ip: 10.9.0.7 is already assigned to `aa`",
        ),
        (
            format!("{NET}[aa]\nip = 10.8.0.7\nservices = ssh\n"),
            "bad.ini: line 5: [aa] ip: 10.8.0.7 is outside the subnet 10.9.0.0/24",
        ),
        (
            format!("{NET}[aa]\narchetype = deaddeck\namount = 0\n"),
            "bad.ini: line 6: [aa] amount: amount 0 is out of range; use 1 to 100",
        ),
        (
            format!("{NET}[aa]\narchetype = deaddeck\namount = 101\n"),
            "bad.ini: line 6: [aa] amount: amount 101 is out of range; use 1 to 100",
        ),
        (
            format!("{NET}[bad name!]\nservices = ssh\n"),
            "bad.ini: line 4: invalid name \"bad name!\"",
        ),
        (
            format!("{NET}[aa]\nservices = ssh\n\n[ghost.ssh]\npassword = x\n"),
            "bad.ini: line 7: [ghost.ssh]: subsection names no host: no section or group called `ghost`",
        ),
        (
            "[general]\nnet = 10.9.0.0/30\n\n[aa]\narchetype = deaddeck\namount = 3\n".to_owned(),
            "bad.ini: line 4: [aa-02]: subnet 10.9.0.0/30 is too small: 3 addresses needed from 10.9.0.0, only 1 free",
        ),
        (
            format!("{NET}[aa]\nservices = http\n\n[aa.http]\nserver_hdr = x\n"),
            "bad.ini: line 8: [aa.http] server_hdr: unknown persona key for `http`; it accepts: server_header,",
        ),
        (
            format!("{NET}[aa]\nservices = http\n\n[aa.htp]\nserver_header = x\n"),
            "bad.ini: line 7: [aa.htp]: unknown service `htp`",
        ),
        (
            format!("{NET}[aa]\nservices = ssh\n\n[aa.http]\nresponse_code = 700\n"),
            "bad.ini: line 8: [aa.http] response_code: invalid persona value \"700\": expected a whole number from 100 to 599",
        ),
        (
            format!("{NET}[aa]\nservices = ssh\n\n[aa.http]\nresponse_code = 200\n"),
            "bad.ini: line 7: [aa.http]: `http` is not a service of this host",
        ),
        (
            format!("{NET}[aa]\nservices = ssh\nip = 10.9.0.5\namount = 2\n"),
            "bad.ini: line 6: [aa] ip: `amount` cannot be combined with `ip`",
        ),
        (
            format!("{NET}[aa]\nservices = smtp, smtp_relay\n"),
            "bad.ini: line 5: [aa] services: services `smtp` and `smtp_relay` both bind 25/tcp",
        ),
        (
            format!("{NET}[aa]\nservices = ssh\ncolour = blue\n"),
            "bad.ini: line 6: [aa] colour: unknown key; this section accepts:",
        ),
        (
            "[aa]\nservices = ssh\n".to_owned(),
            "bad.ini: no subnet: set `net` in [general] or pass --subnet",
        ),
        (
            format!("{NET}[custom-ssh]\nbinary = x/y:1\n"),
            "bad.ini: line 4: [custom-ssh]: custom service: `ssh` is the name of a built-in service",
        ),
        (
            format!("{NET}[aa]\nservices = sniffer\n"),
            "bad.ini: line 5: [aa] services: service `sniffer` runs once per fleet",
        ),
        (
            format!("{NET}[web]\nservices = ssh\n\n[web-ssh]\nservices = http\n"),
            "bad.ini: line 7: [web-ssh]: container name `web-ssh` is already used by host `web`",
        ),
        (
            format!("{NET}[web]\narchetype = deaddeck\namount = 2\n\n[web-01.htp]\nx = 1\n"),
            "bad.ini: line 8: [web-01.htp]: unknown service `htp`",
        ),
        (
            format!("{NET}[aa]\narchetype = deaddeck\namount = 5\n  junk\n"),
            "bad.ini: line 6: [aa] amount: the value continues on an indented line",
        ),
        (
            "[general]\nnet = 10.9.0.0/24\nlog_target = collector.corp.local:514\n".to_owned(),
            "bad.ini: line 3: [general] log_target: invalid log target",
        ),
        (
            "[general]\nnet = 10.9.0.0/24\ngw = 10.9.0.255\n\n[aa]\nservices = ssh\n".to_owned(),
            "bad.ini: [general] gw: 10.9.0.255 is the broadcast address",
        ),
        (
            format!("{NET}[-a]\nservices = ssh\n"),
            "bad.ini: line 4: invalid name \"-a\"",
        ),
        (
            format!("{NET}[aa]\nservices = http\n\n[aa.http]\nfiles = /var/run/docker.sock\n"),
            "bad.ini: line 8: [aa.http] files: invalid persona value",
        ),
    ];
    for (body, expected) in cases {
        let (code, stderr) = bad_ini(&body);
        assert_eq!(code, 2, "exit code for {expected:?}; stderr: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        let line = stderr
            .trim_end()
            .strip_prefix("error: ")
            .unwrap_or_else(|| panic!("{stderr}"));
        assert!(
            line.starts_with(expected),
            "\n got: {line}\nwant: {expected}"
        );
    }
}

#[test]
fn oversize_ini_is_refused() {
    let mut body = String::from(NET);
    body.push_str("; padding\n".repeat(60_000).as_str());
    let (code, stderr) = bad_ini(&body);
    assert_eq!(code, 2);
    assert!(stderr.contains("larger than 524288 bytes"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1);
}

#[test]
fn the_readme_ini_example_is_valid() {
    let readme = fs::read_to_string(repo_file("README.md")).unwrap();
    let start = readme.find("```ini\n").expect("README has an INI example") + 7;
    let end = start + readme[start..].find("```").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("readme.ini");
    fs::write(&ini, &readme[start..end]).unwrap();
    let plan = json_of(&["config", "check", ini.to_str().unwrap(), "--seed", "1"]);
    assert_eq!(plan["deckies"].as_array().unwrap().len(), 4);
}

#[test]
fn endless_inputs_are_refused_without_reading_them_whole() {
    let out = decnet()
        .args(["config", "check", "/dev/zero"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("larger than 524288 bytes"));
}

#[test]
fn dollar_signs_reach_the_container_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("d.ini");
    fs::write(&ini, "[general]\nnet = 10.9.0.0/24\n\n[web01]\nservices = ssh\n\n[web01.ssh]\npassword = pa$word${X\n").unwrap();
    let out_path = dir.path().join("c.yml");
    let out = decnet()
        .args(["deploy", "--dry-run", "-c"])
        .arg(&ini)
        .arg("-o")
        .arg(&out_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_yaml::from_str(&fs::read_to_string(&out_path).unwrap()).unwrap();
    // Compose turns `$$` back into `$`; a single `$` would be substituted or rejected.
    assert_eq!(
        doc["services"]["web01-ssh"]["environment"]["SSH_ROOT_PASSWORD"],
        "pa$$word$${X"
    );
}

#[test]
fn bad_flags_give_clear_errors() {
    let out = decnet()
        .args([
            "deploy",
            "--dry-run",
            "-n",
            "2",
            "--services",
            "ssh,nope",
            "--subnet",
            "10.0.0.0/24",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with("error: [command line] --services: unknown service `nope`"),
        "{err}"
    );

    let out = decnet()
        .args(["deploy", "--dry-run", "-n", "2", "--subnet", "10.0.0.0/24"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("no services: pass --services")
    );

    let out = decnet()
        .args([
            "deploy",
            "--dry-run",
            "-n",
            "300",
            "--archetype",
            "deaddeck",
            "--subnet",
            "10.0.0.0/24",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("is too small: 300 addresses needed")
    );

    let out = decnet()
        .args([
            "deploy",
            "--dry-run",
            "-n",
            "1",
            "-a",
            "deaddeck",
            "--subnet",
            "10.0.0.1/24",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("did you mean 10.0.0.0/24?")
    );
}

#[test]
fn probe_once_on_an_empty_store_probes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = decnet()
        .args(["probe", "--once", "--data-dir"])
        .arg(dir.path())
        .env_remove("DECNET_DB_TYPE")
        .env_remove("DECNET_DB_URL")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("0 new attackers, 0 probes"), "{text}");
}

#[test]
fn mutate_without_deckies_does_nothing_and_names_unknown_ones() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        decnet()
            .args(args)
            .arg("--data-dir")
            .arg(dir.path())
            .env_remove("DECNET_DB_TYPE")
            .env_remove("DECNET_DB_URL")
            .output()
            .unwrap()
    };
    let out = run(&["mutate"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("none is due"),
        "{out:?}"
    );
    let out = run(&["mutate", "--all"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("none is running"),
        "{out:?}"
    );
    let out = run(&["--json", "mutate", "--all"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]", "{out:?}");
    // Docker is never asked about a name the fleet does not have.
    let out = run(&["mutate", "--decky", "web01"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("\"web01\"") && err.contains("decnet status"),
        "{err}"
    );
    let out = run(&["mutate", "--all", "--watch"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

#[test]
fn sniffer_without_a_fleet_or_interface_says_what_to_give() {
    let dir = tempfile::tempdir().unwrap();
    let out = decnet()
        .args(["sniffer", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("give --interface IF"), "{err}");
}

#[test]
fn deploy_without_docker_says_how_to_start_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = decnet()
        .args([
            "deploy",
            "-n",
            "1",
            "-a",
            "deaddeck",
            "--subnet",
            "10.0.0.0/24",
            "--interface",
            "lo",
            "--data-dir",
        ])
        .arg(dir.path())
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("cannot reach the Docker engine") && err.contains("dockerd"),
        "{err}"
    );
}

#[test]
fn help_and_completions() {
    for verb in [
        "services",
        "archetypes",
        "distros",
        "deploy",
        "config",
        "teardown",
        "completions",
    ] {
        let out = decnet().args([verb, "--help"]).output().unwrap();
        assert!(out.status.success(), "{verb} --help");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("Usage:"), "{verb}");
        assert!(!text.to_ascii_lowercase().contains("honeypot"));
    }
    let out = decnet().args(["completions", "bash"]).output().unwrap();
    assert!(out.status.success());
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .contains("complete -F")
    );
}

#[test]
fn writing_the_compose_file_to_a_device_keeps_the_device() {
    let out = decnet()
        .args([
            "deploy",
            "-n",
            "1",
            "--services",
            "http",
            "--subnet",
            "10.9.0.0/24",
            "--dry-run",
            "-o",
            "/dev/null",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta = fs::metadata("/dev/null").unwrap();
    assert!(!meta.is_file(), "/dev/null was replaced by a regular file");
}
