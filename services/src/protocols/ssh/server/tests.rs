#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use proptest::prelude::*;

use super::*;

fn conn() -> ConnInfo {
    ConnInfo {
        peer: "192.0.2.7:40000".parse().unwrap(),
        local: "10.0.0.5:22".parse().unwrap(),
    }
}

fn ssh(env: &[(&str, &str)]) -> Ssh {
    let mut pairs = vec![("NODE_NAME", "web1"), ("HOSTNAME", "SRV-WEB-42")];
    pairs.extend_from_slice(env);
    Ssh::from_persona(&Persona::from_pairs(&pairs)).unwrap()
}

#[test]
fn identification_follows_the_persona() {
    let mut step = Step::default();
    ssh(&[]).session(&conn()).start(&mut step);
    assert_eq!(step.out, b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n");
    let mut step = Step::default();
    ssh(&[("DISTRO", "ubuntu22")])
        .session(&conn())
        .start(&mut step);
    assert_eq!(step.out, b"SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.10\r\n");
    let mut step = Step::default();
    ssh(&[("SSH_VERSION", "OpenSSH_9.6p1 Ubuntu-3ubuntu13.5")])
        .session(&conn())
        .start(&mut step);
    assert_eq!(step.out, b"SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13.5\r\n");
}

#[test]
fn bad_persona_values_are_named() {
    let err = Ssh::from_persona(&Persona::from_pairs(&[("SSH_ACCEPT_AFTER", "many")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("SSH_ACCEPT_AFTER"), "{err}");
    let err = Ssh::from_persona(&Persona::from_pairs(&[("SSH_VERSION", "OpenSSH\u{7}")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("identification"), "{err}");
}

#[test]
fn templates_are_loaded() {
    let dir = std::env::temp_dir().join(format!("ssh-template-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("files/opt/app")).unwrap();
    std::fs::write(dir.join("motd"), "Authorized use only.\n").unwrap();
    std::fs::write(dir.join("files/opt/app/.env"), "KEY=1\n").unwrap();
    let s = ssh(&[("SSH_TEMPLATE_DIR", dir.to_str().unwrap())]);
    assert_eq!(
        s.config.bait,
        [("/opt/app/.env".to_owned(), b"KEY=1\n".to_vec())]
    );
    let session = s.session_with_clock(&conn(), Clock::Manual(Arc::default()));
    let login = session.login("root");
    assert!(
        login.motd.starts_with("Linux SRV-WEB-42 6.1.0-27-amd64"),
        "{}",
        login.motd
    );
    assert!(
        login
            .motd
            .contains("\n\nAuthorized use only.\nLast login: "),
        "{}",
        login.motd
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn login_grace_time_hangs_up_silently() {
    let ms = Arc::new(AtomicU64::new(0));
    let mut s = ssh(&[]).session_with_clock(&conn(), Clock::Manual(Arc::clone(&ms)));
    let mut step = Step::default();
    s.start(&mut step);
    ms.store(121_000, Ordering::Relaxed);
    let mut step = Step::default();
    s.receive(b"SSH-2.0-OpenSSH_9.2\r\n", &mut step);
    assert!(step.close && step.out.is_empty());
}

/// A client that sends nothing at all is dropped at the grace too: the runtime wakes the
/// session then (it once waited for data, i.e. the 300 s idle timeout).
#[test]
fn a_silent_client_is_dropped_at_the_login_grace() {
    let ms = Arc::new(AtomicU64::new(0));
    let mut s = ssh(&[]).session_with_clock(&conn(), Clock::Manual(Arc::clone(&ms)));
    let mut step = Step::default();
    s.start(&mut step);
    assert_eq!(s.wake_in(), Some(Duration::from_secs(120)));
    ms.store(119_000, Ordering::Relaxed);
    assert_eq!(s.wake_in(), Some(Duration::from_secs(1)));
    // Woken early (timers are coarse): nothing happens.
    let mut step = Step::default();
    s.wake(&mut step);
    assert!(!step.close);
    ms.store(120_000, Ordering::Relaxed);
    assert_eq!(s.wake_in(), Some(Duration::ZERO));
    s.wake(&mut step);
    assert!(step.close && step.out.is_empty() && step.events.is_empty());
    assert_eq!(s.wake_in(), None, "closed: no more timers");
}

#[test]
fn a_banner_only_visit_still_reports_the_client() {
    let mut s = ssh(&[]).session(&conn());
    let mut step = Step::default();
    s.start(&mut step);
    s.receive(b"SSH-2.0-Go\r\n", &mut step);
    let mut step = Step::default();
    s.finish(&mut step);
    assert_eq!(step.events[0].kind, "ssh_client");
    assert_eq!(step.events[0].field("client_version"), Some("SSH-2.0-Go"));
}

/// Building a persona generates its RSA host key: share one across property cases.
fn shared() -> &'static Ssh {
    static SSH: std::sync::OnceLock<Ssh> = std::sync::OnceLock::new();
    SSH.get_or_init(|| ssh(&[]))
}

proptest! {
    #[test]
    fn never_panics(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..256), 0..8)) {
        let mut s = shared().session(&conn());
        let mut step = Step::default();
        s.start(&mut step);
        s.receive(b"SSH-2.0-OpenSSH_9.2p1\r\n", &mut step);
        for c in &chunks {
            s.receive(c, &mut step);
        }
        s.finish(&mut step);
    }
}
