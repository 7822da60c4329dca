//! Nothing an attacker can make a service say names the product: every emulator is driven
//! with the probes scanners and intruders send, and every byte it answers is searched.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use decnet_services::{
    persona::Persona,
    protocols,
    session::{ConnInfo, Step},
};

const BANNED: [&str; 5] = ["decnet", "honeypot", "decoy", "fake", "emulat"];

/// Probes in the shape of scanners (nmap's NULL/GenericLines/GetRequest/Help), brute-forcers
/// and intruders, for every protocol alike: what a service does not understand must not leak.
const PROBES: &[&[u8]] = &[
    b"\r\n\r\n",
    b"GET / HTTP/1.0\r\n\r\n",
    b"HELP\r\n",
    b"USER root\r\nPASS toor\r\n",
    b"EHLO x\r\nAUTH LOGIN\r\ncm9vdA==\r\ndG9vcg==\r\n",
    b"a001 CAPABILITY\r\na002 LOGIN admin admin123\r\na003 SELECT INBOX\r\na004 FETCH 1 BODY[]\r\n",
    b"*1\r\n$4\r\nINFO\r\nKEYS *\r\nCONFIG GET *\r\n",
    b"root\r\nadmin\r\nuname -a; id; cat /etc/passwd; ls -la /; ps; env; history; cat /proc/version\r\n",
    b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00",
    b"\x00\x00\x00\x00\xff\xff\xff\xff garbage \x80\x81",
];

#[test]
fn no_service_answer_names_the_product() {
    let persona = Persona::from_pairs(&[
        ("NODE_NAME", "e2e-host"),
        ("HOSTNAME", "SRV-WEB-42"),
        ("IMAP_USERS", "admin:admin123"),
        ("TELNET_USERS", "root:admin"),
    ]);
    for slug in protocols::AVAILABLE {
        let protocol = protocols::lookup(slug, &persona).unwrap();
        for probe in PROBES {
            let conn = ConnInfo {
                peer: "198.51.100.9:40000".parse().unwrap(),
                local: "10.0.0.5:1".parse().unwrap(),
            };
            let mut session = protocol.session(&conn);
            let mut out = Vec::new();
            let mut step = Step::default();
            session.start(&mut step);
            out.extend(step.out);
            // Line by line, as an interactive client would send it.
            for chunk in probe.split_inclusive(|b| *b == b'\n') {
                let mut step = Step::default();
                session.receive(chunk, &mut step);
                out.extend(step.out);
                if step.close {
                    break;
                }
            }
            let mut step = Step::default();
            session.finish(&mut step);
            out.extend(step.out);
            let text = String::from_utf8_lossy(&out).to_ascii_lowercase();
            for word in BANNED {
                assert!(
                    !text.contains(word),
                    "{slug} answered {word:?} to {probe:?}:\n{text}"
                );
            }
        }
    }
}
