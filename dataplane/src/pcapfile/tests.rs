use std::io::Cursor;

use proptest::prelude::*;

use super::*;

fn read_all(bytes: &[u8]) -> Result<Vec<(i64, u32, Vec<u8>)>, PcapError> {
    let mut r = PcapReader::new(Cursor::new(bytes))?;
    let mut out = Vec::new();
    while let Some(rec) = r.next_record()? {
        out.push((rec.ts_ns, rec.orig_len, rec.data.to_vec()));
    }
    Ok(out)
}

#[test]
fn writer_round_trips_usec_and_nsec() {
    for nanos in [false, true] {
        let mut w = PcapWriter::new(Vec::new(), 65535, nanos).unwrap();
        w.write_packet(1_700_000_000_123_456_789, b"frame-one")
            .unwrap();
        w.write_packet(1_700_000_001_000_000_000, b"").unwrap();
        let bytes = w.into_inner().unwrap();
        let recs = read_all(&bytes).unwrap();
        let ts0 = if nanos {
            1_700_000_000_123_456_789
        } else {
            1_700_000_000_123_456_000
        };
        assert_eq!(
            recs,
            vec![
                (ts0, 9, b"frame-one".to_vec()),
                (1_700_000_001_000_000_000, 0, vec![])
            ]
        );
    }
}

#[test]
fn snaplen_cuts_and_orig_len_is_kept() {
    let mut w = PcapWriter::new(Vec::new(), 4, false).unwrap();
    w.write_packet(0, b"abcdefgh").unwrap();
    let recs = read_all(&w.into_inner().unwrap()).unwrap();
    assert_eq!(recs, vec![(0, 8, b"abcd".to_vec())]);
}

#[test]
fn pcapng_writer_round_trips_with_padding_and_snaplen() {
    let mut w = PcapNgWriter::new(Vec::new(), 6).unwrap();
    w.write_packet(1_700_000_000_123_456_789, b"abc").unwrap();
    w.write_packet(1_700_000_001_000_000_001, b"abcdefgh")
        .unwrap();
    w.write_packet(-5, b"").unwrap();
    let bytes = w.into_inner().unwrap();
    assert_eq!(bytes.len() % 4, 0);
    assert_eq!(
        read_all(&bytes).unwrap(),
        vec![
            (1_700_000_000_123_456_789, 3, b"abc".to_vec()),
            (1_700_000_001_000_000_001, 8, b"abcdef".to_vec()),
            (0, 0, vec![]),
        ]
    );
    let empty = PcapNgWriter::new(Vec::new(), 65535)
        .unwrap()
        .into_inner()
        .unwrap();
    assert_eq!(read_all(&empty).unwrap(), vec![]);
}

/// pcapng: SHB, IDB with if_tsresol = 9 (ns), EPB, SPB, an unknown block; both byte orders.
fn pcapng(be: bool, linktype: u16) -> Vec<u8> {
    let w32 = |v: u32| if be { v.to_be_bytes() } else { v.to_le_bytes() };
    let w16 = |v: u16| if be { v.to_be_bytes() } else { v.to_le_bytes() };
    let block = |ty: u32, body: &[u8]| {
        let total = (12 + body.len()) as u32;
        let mut b = w32(ty).to_vec();
        b.extend_from_slice(&w32(total));
        b.extend_from_slice(body);
        b.extend_from_slice(&w32(total));
        b
    };
    let mut f = Vec::new();
    let mut shb = w32(0x1a2b_3c4d).to_vec();
    shb.extend_from_slice(&w16(1));
    shb.extend_from_slice(&w16(0));
    shb.extend_from_slice(&[0xff; 8]);
    f.extend(block(0x0a0d_0d0a, &shb));
    let mut idb = w16(linktype).to_vec();
    idb.extend_from_slice(&[0, 0]);
    idb.extend_from_slice(&w32(65535));
    idb.extend_from_slice(&w16(9));
    idb.extend_from_slice(&w16(1));
    idb.extend_from_slice(&[9, 0, 0, 0]);
    idb.extend_from_slice(&[0, 0, 0, 0]);
    f.extend(block(1, &idb));
    let ts: u64 = 1_700_000_000_000_000_001;
    let mut epb = w32(0).to_vec();
    epb.extend_from_slice(&w32((ts >> 32) as u32));
    epb.extend_from_slice(&w32(ts as u32));
    epb.extend_from_slice(&w32(5));
    epb.extend_from_slice(&w32(60));
    epb.extend_from_slice(b"hello\0\0\0");
    f.extend(block(6, &epb));
    f.extend(block(0x0bad, &[1, 2, 3, 4]));
    let mut spb = w32(3).to_vec();
    spb.extend_from_slice(b"abc\0");
    f.extend(block(3, &spb));
    f
}

#[test]
fn pcapng_both_byte_orders() {
    for be in [false, true] {
        let recs = read_all(&pcapng(be, 1)).unwrap();
        assert_eq!(
            recs,
            vec![
                (1_700_000_000_000_000_001, 60, b"hello".to_vec()),
                (0, 3, b"abc".to_vec())
            ]
        );
    }
}

#[test]
fn other_linktypes_and_garbage_are_refused() {
    assert!(matches!(
        read_all(&pcapng(false, 113)),
        Err(PcapError::UnsupportedLinktype(113))
    ));
    let mut w = PcapWriter::new(Vec::new(), 100, false)
        .unwrap()
        .into_inner()
        .unwrap();
    w[20] = 101;
    assert!(matches!(
        read_all(&w),
        Err(PcapError::UnsupportedLinktype(101))
    ));
    assert!(matches!(
        read_all(b"GIF89a.........................."),
        Err(PcapError::BadMagic(_))
    ));
    assert!(matches!(read_all(b""), Err(PcapError::Truncated(_))));
}

#[test]
fn file_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cooked.pcapng");
    std::fs::write(&path, pcapng(false, 113)).unwrap();
    let err = analyze_pcap(&path, HashMap::new()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("cooked.pcapng") && msg.contains("linktype 113"),
        "{msg}"
    );
}

proptest! {
    #[test]
    fn reader_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = read_all(&bytes);
    }

    #[test]
    fn reader_never_panics_on_damaged_pcapng(at in 0usize..200, val in any::<u8>(), be in any::<bool>()) {
        let mut f = pcapng(be, 1);
        if at < f.len() {
            f[at] = val;
        }
        let _ = read_all(&f);
    }

    #[test]
    fn write_then_read_is_identity(
        frames in proptest::collection::vec((0i64..4_000_000_000_000_000_000, proptest::collection::vec(any::<u8>(), 0..80)), 0..8)
    ) {
        let mut w = PcapWriter::new(Vec::new(), 65535, true).unwrap();
        for (ts, data) in &frames {
            w.write_packet(*ts, data).unwrap();
        }
        let recs = read_all(&w.into_inner().unwrap()).unwrap();
        let expect: Vec<(i64, u32, Vec<u8>)> =
            frames.iter().map(|(ts, d)| (*ts, d.len() as u32, d.clone())).collect();
        prop_assert_eq!(recs, expect);
    }
}
