#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::sync::Arc;

use ed25519_dalek::Signer;
use proptest::prelude::*;

use super::*;

fn auth(policy: AuthPolicy) -> Auth {
    let mut policy = policy;
    policy.credentials = vec![("root".into(), "admin".into())];
    Auth::new(Arc::new(policy))
}

fn request(user: &str, method: &str, rest: &[u8]) -> Vec<u8> {
    let mut w = Writer::message(MSG_USERAUTH_REQUEST);
    w.string(user.as_bytes())
        .string(b"ssh-connection")
        .string(method.as_bytes())
        .raw(rest);
    w.finish()
}

fn password(user: &str, pass: &str) -> Vec<u8> {
    let mut rest = Writer::new();
    rest.bool(false).string(pass.as_bytes());
    request(user, "password", &rest.finish())
}

fn run(a: &mut Auth, payload: &[u8]) -> (Outcome, Vec<Vec<u8>>, Step) {
    let mut msgs = Vec::new();
    let mut step = Step::default();
    let outcome = a.handle(payload, b"SESSION-ID", &mut msgs, &mut step);
    (outcome, msgs, step)
}

fn failure(methods: &str) -> Vec<u8> {
    let mut w = Writer::message(MSG_USERAUTH_FAILURE);
    w.string(methods.as_bytes()).bool(false);
    w.finish()
}

#[test]
fn none_lists_debian_methods_and_passwords_are_checked() {
    let mut a = auth(AuthPolicy::default());
    let (outcome, msgs, step) = run(&mut a, &request("root", "none", b""));
    assert_eq!(outcome, Outcome::Pending);
    assert_eq!(msgs, [failure("publickey,password")]);
    assert!(step.events.is_empty());

    let (outcome, msgs, step) = run(&mut a, &password("root", "123456"));
    assert_eq!(outcome, Outcome::Pending);
    assert_eq!(msgs, [failure("publickey,password")]);
    assert_eq!(step.delay, Some(Duration::from_secs(2)));
    let ev = &step.events[0];
    assert_eq!(ev.kind, "auth_attempt");
    assert_eq!(
        ev.fields,
        [
            ("username".to_owned(), "root".to_owned()),
            ("method".to_owned(), "password".to_owned()),
            ("password".to_owned(), "123456".to_owned()),
            ("success".to_owned(), "false".to_owned()),
        ]
    );

    let (outcome, msgs, step) = run(&mut a, &password("root", "admin"));
    assert_eq!(
        outcome,
        Outcome::Success {
            user: "root".into()
        }
    );
    assert_eq!(msgs, [vec![MSG_USERAUTH_SUCCESS]]);
    assert_eq!(step.events[0].field("success"), Some("true"));
    assert_eq!(step.delay, None);
}

#[test]
fn six_failures_hang_up_like_max_auth_tries() {
    let mut a = auth(AuthPolicy {
        failure_delay: Duration::ZERO,
        ..AuthPolicy::default()
    });
    let _ = run(&mut a, &request("admin", "none", b""));
    for i in 0..5 {
        let (outcome, msgs, _) = run(&mut a, &password("admin", &format!("pw{i}")));
        assert_eq!(outcome, Outcome::Pending);
        assert_eq!(msgs.len(), 1);
    }
    let (outcome, msgs, step) = run(&mut a, &password("admin", "pw5"));
    assert!(msgs.is_empty());
    assert_eq!(step.events.len(), 1, "the sixth attempt is still logged");
    assert_eq!(
        outcome,
        Outcome::Disconnect {
            reason: DISCONNECT_PROTOCOL_ERROR,
            description: "Too many authentication failures".into()
        }
    );
}

#[test]
fn accept_after_lets_the_nth_password_in() {
    let mut a = auth(AuthPolicy {
        accept_after: 2,
        failure_delay: Duration::ZERO,
        ..AuthPolicy::default()
    });
    assert_eq!(run(&mut a, &password("oracle", "a")).0, Outcome::Pending);
    assert_eq!(run(&mut a, &password("oracle", "b")).0, Outcome::Pending);
    let (outcome, _, step) = run(&mut a, &password("oracle", "c"));
    assert_eq!(
        outcome,
        Outcome::Success {
            user: "oracle".into()
        }
    );
    assert_eq!(step.events[0].field("password"), Some("c"));
}

#[test]
fn switching_user_is_refused() {
    let mut a = auth(AuthPolicy::default());
    let _ = run(&mut a, &request("root", "none", b""));
    let (outcome, _, _) = run(&mut a, &request("admin", "none", b""));
    assert_eq!(
        outcome,
        Outcome::Disconnect {
            reason: DISCONNECT_PROTOCOL_ERROR,
            description:
                "Change of username or service not allowed: (root,ssh-connection) -> (admin,ssh-connection)"
                    .into()
        }
    );
}

fn ed25519_request(sk: &ed25519_dalek::SigningKey, sign: bool, session_id: &[u8]) -> Vec<u8> {
    let blob = Writer::new()
        .string(b"ssh-ed25519")
        .string(sk.verifying_key().as_bytes())
        .finish();
    let mut rest = Writer::new();
    rest.bool(sign).string(b"ssh-ed25519").string(&blob);
    let mut payload = request("root", "publickey", &rest.finish());
    if sign {
        let mut signed = Writer::new();
        signed.string(session_id).raw(&payload);
        let sig = sk.sign(&signed.finish());
        let sig = Writer::new()
            .string(b"ssh-ed25519")
            .string(&sig.to_bytes())
            .finish();
        payload.extend_from_slice(&Writer::new().string(&sig).finish());
    }
    payload
}

#[test]
fn public_keys_are_fingerprinted_and_refused_by_default() {
    let sk = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
    let mut a = auth(AuthPolicy::default());
    let (outcome, msgs, step) = run(&mut a, &ed25519_request(&sk, false, b""));
    assert_eq!(outcome, Outcome::Pending);
    assert_eq!(msgs, [failure("publickey,password")]);
    let ev = &step.events[0];
    assert_eq!(ev.field("method"), Some("publickey"));
    assert_eq!(ev.field("key_type"), Some("ssh-ed25519"));
    assert!(ev.field("key_fingerprint").unwrap().starts_with("SHA256:"));
    assert_eq!(ev.field("signature"), None);
    assert_eq!(step.delay, None);
}

#[test]
fn accepted_keys_get_pk_ok_then_a_verified_login() {
    let sk = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
    let mut a = auth(AuthPolicy {
        accept_keys: true,
        ..AuthPolicy::default()
    });
    let (outcome, msgs, _) = run(&mut a, &ed25519_request(&sk, false, b""));
    assert_eq!(outcome, Outcome::Pending);
    assert_eq!(msgs[0][0], MSG_USERAUTH_PK_OK);
    // Signed over another session: refused.
    let (outcome, _, step) = run(&mut a, &ed25519_request(&sk, true, b"OTHER"));
    assert_eq!(outcome, Outcome::Pending);
    assert_eq!(step.events[0].field("signature"), Some("invalid"));
    let (outcome, msgs, step) = run(&mut a, &ed25519_request(&sk, true, b"SESSION-ID"));
    assert_eq!(
        outcome,
        Outcome::Success {
            user: "root".into()
        }
    );
    assert_eq!(msgs, [vec![MSG_USERAUTH_SUCCESS]]);
    assert_eq!(step.events[0].field("signature"), Some("valid"));
    assert_eq!(step.events[0].field("success"), Some("true"));
}

#[test]
fn keyboard_interactive_asks_for_the_password_once() {
    let mut a = auth(AuthPolicy {
        keyboard_interactive: true,
        ..AuthPolicy::default()
    });
    let mut rest = Writer::new();
    rest.string(b"").string(b"");
    let (_, msgs, _) = run(
        &mut a,
        &request("root", "keyboard-interactive", &rest.finish()),
    );
    let mut r = Reader::new(&msgs[0]);
    assert_eq!(r.u8(), Some(MSG_USERAUTH_INFO_REQUEST));
    assert_eq!(
        (r.string(), r.string(), r.string()),
        (Some(&b""[..]), Some(&b""[..]), Some(&b""[..]))
    );
    assert_eq!(r.u32(), Some(1));
    assert_eq!(r.string(), Some(&b"Password: "[..]));
    assert_eq!(r.bool(), Some(false));
    let mut w = Writer::message(MSG_USERAUTH_INFO_RESPONSE);
    w.u32(1).string(b"admin");
    let (outcome, _, step) = run(&mut a, &w.finish());
    assert_eq!(
        outcome,
        Outcome::Success {
            user: "root".into()
        }
    );
    assert_eq!(step.events[0].field("method"), Some("keyboard-interactive"));
    assert_eq!(step.events[0].field("password"), Some("admin"));
}

#[test]
fn keyboard_interactive_is_not_offered_by_default() {
    let mut a = auth(AuthPolicy::default());
    let (_, msgs, step) = run(
        &mut a,
        &request("root", "keyboard-interactive", b"\0\0\0\0\0\0\0\0"),
    );
    assert_eq!(msgs, [failure("publickey,password")]);
    assert_eq!(step.events[0].field("method"), Some("keyboard-interactive"));
}

proptest! {
    #[test]
    fn never_panics(payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..128), 0..16)) {
        let mut a = auth(AuthPolicy::default());
        for mut p in payloads {
            if let Some(first) = p.first_mut() {
                *first = 50 + *first % 12;
            }
            let _ = run(&mut a, &p);
        }
    }
}
