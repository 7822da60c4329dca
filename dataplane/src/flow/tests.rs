use std::net::Ipv4Addr;

use super::*;
use crate::testutil::{tcp4, udp4};

const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 9);
const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const SYN: u16 = TcpFlags::SYN;
const ACK: u16 = TcpFlags::ACK;
const SA: u16 = TcpFlags::SYN | TcpFlags::ACK;
const FA: u16 = TcpFlags::FIN | TcpFlags::ACK;
const PA: u16 = TcpFlags::PSH | TcpFlags::ACK;

fn feed(
    t: &mut FlowTable<()>,
    ts: i64,
    frame: &[u8],
    out: &mut Vec<Expired<()>>,
) -> (bool, bool, bool) {
    let p = Packet::decode(ts, frame).unwrap();
    let up = t.update(&p, out).unwrap();
    let r = (up.from_initiator, up.handshake_completed, up.retransmit);
    if let Some(reason) = up.ends {
        let slot = up.slot;
        out.push(t.end(slot, reason).unwrap());
    }
    r
}

#[test]
fn a_stale_slot_ends_nothing() {
    let mut t = FlowTable::<()>::new(FlowConfig::default());
    let mut out = Vec::new();
    let (f1, f2) = (
        udp4((A, 1000), (B, 53), b"a"),
        udp4((A, 1001), (B, 53), b"b"),
    );
    let first = Packet::decode(0, &f1).unwrap();
    let stale = t.update(&first, &mut out).unwrap().slot;
    // The first flow times out; the second, created after it, then moves into its slot.
    let second = Packet::decode(1, &f2).unwrap();
    t.update(&second, &mut out).unwrap();
    t.expire(FlowConfig::default().idle_timeout_ns, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(t.len(), 1);
    assert!(t.end(stale, EndReason::Rst).is_none());
    assert_eq!(t.len(), 1, "the flow now in the stale slot must live on");
}

#[test]
fn tcp_conversation_counts_both_ways_and_ends_on_fin() {
    let mut t = FlowTable::<()>::new(FlowConfig::default());
    let mut out = Vec::new();
    let c = (A, 40000);
    let s = (B, 443);
    assert_eq!(
        feed(&mut t, 0, &tcp4(c, s, 100, 0, SYN, &[], &[]), &mut out),
        (true, false, false)
    );
    assert_eq!(
        feed(&mut t, 1000, &tcp4(s, c, 500, 101, SA, &[], &[]), &mut out),
        (false, false, false)
    );
    assert_eq!(
        feed(&mut t, 2000, &tcp4(c, s, 101, 501, ACK, &[], &[]), &mut out),
        (true, true, false)
    );
    feed(
        &mut t,
        3000,
        &tcp4(c, s, 101, 501, PA, &[], b"hello"),
        &mut out,
    );
    // The same bytes again: a retransmission.
    assert_eq!(
        feed(
            &mut t,
            9000,
            &tcp4(c, s, 101, 501, PA, &[], b"hello"),
            &mut out
        ),
        (true, false, true)
    );
    feed(
        &mut t,
        10_000,
        &tcp4(s, c, 501, 106, PA, &[], b"world!"),
        &mut out,
    );
    feed(
        &mut t,
        11_000,
        &tcp4(c, s, 106, 507, FA, &[], &[]),
        &mut out,
    );
    assert!(out.is_empty());
    feed(
        &mut t,
        12_000,
        &tcp4(s, c, 507, 107, FA, &[], &[]),
        &mut out,
    );
    assert_eq!(out.len(), 1);
    let e = &out[0];
    assert_eq!(e.reason, EndReason::Fin);
    let st = &e.stats;
    assert_eq!(st.initiator, (A.into(), 40000));
    assert_eq!(st.dir[0].packets, 5);
    assert_eq!(st.dir[1].packets, 3);
    assert_eq!(st.dir[0].payload_bytes, 10);
    assert_eq!(st.dir[1].payload_bytes, 6);
    assert_eq!(st.dir[0].bytes, 3 * 40 + 2 * 45);
    assert_eq!(st.retransmits, 1);
    assert!(st.handshake_done);
    assert_eq!(st.duration_ns(), 12_000);
    assert_eq!(st.iat.count, 7);
    assert_eq!(st.iat.min(), 1000.0);
    assert_eq!(st.iat.max(), 6000.0);
    assert_eq!(st.flags().names(), "FIN|SYN|PSH|ACK");
    assert!(t.is_empty());
}

#[test]
fn rst_ends_a_flow_and_synack_first_keeps_the_client_as_initiator() {
    let mut t = FlowTable::<()>::new(FlowConfig::default());
    let mut out = Vec::new();
    let c = (A, 40000);
    let s = (B, 22);
    assert_eq!(
        feed(&mut t, 0, &tcp4(s, c, 1, 2, SA, &[], &[]), &mut out),
        (false, false, false)
    );
    feed(
        &mut t,
        5,
        &tcp4(c, s, 2, 0, TcpFlags::RST, &[], &[]),
        &mut out,
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].reason, EndReason::Rst);
    assert_eq!(out[0].stats.initiator, (A.into(), 40000));
}

#[test]
fn timeouts_and_eviction() {
    let cfg = FlowConfig {
        idle_timeout_ns: 100,
        active_timeout_ns: 1000,
        max_flows: 2,
    };
    let mut t = FlowTable::<()>::new(cfg);
    let mut out = Vec::new();
    for (i, port) in [1u16, 2, 3].into_iter().enumerate() {
        feed(&mut t, i as i64, &udp4((A, port), (B, 53), b"q"), &mut out);
    }
    // The third flow evicted the oldest.
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].reason, EndReason::Evicted);
    assert_eq!(out[0].stats.initiator.1, 1);
    assert_eq!(t.counters.evicted, 1);
    out.clear();
    // Flow 3 stays busy; flow 2 goes idle.
    for ts in (50..1100).step_by(50) {
        feed(&mut t, ts, &udp4((B, 53), (A, 3), b"r"), &mut out);
        t.expire(ts, &mut out);
    }
    let reasons: Vec<(u16, EndReason)> = out
        .iter()
        .map(|e| (e.stats.initiator.1, e.reason))
        .collect();
    assert_eq!(reasons, vec![(2, EndReason::Idle), (3, EndReason::Active)]);
    out.clear();
    feed(&mut t, 2000, &udp4((A, 9), (B, 53), b"q"), &mut out);
    t.drain(&mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].reason, EndReason::Flush);
}

#[test]
fn sequence_wraparound_is_not_a_retransmission() {
    let mut t = FlowTable::<()>::new(FlowConfig::default());
    let mut out = Vec::new();
    let c = (A, 1);
    let s = (B, 2);
    feed(
        &mut t,
        0,
        &tcp4(c, s, u32::MAX - 2, 0, PA, &[], b"abc"),
        &mut out,
    );
    let r = feed(&mut t, 1, &tcp4(c, s, 0, 0, PA, &[], b"def"), &mut out);
    assert!(!r.2);
    let r = feed(
        &mut t,
        2,
        &tcp4(c, s, u32::MAX - 2, 0, PA, &[], b"abc"),
        &mut out,
    );
    assert!(r.2);
}

#[test]
fn reordering_is_not_retransmission_but_repeats_are() {
    let mut r = SeqRanges::default();
    assert!(!r.see(1000, 10)); // [1000, 1010)
    assert!(!r.see(1020, 10)); // ahead of a hole
    assert!(!r.see(1010, 10)); // fills the hole
    assert!(r.see(1000, 30)); // all seen
    assert!(r.see(1015, 5));
    assert!(!r.see(1025, 10)); // partly new
    assert_eq!(r.ranges, vec![(0, 35)]);
    // Many holes stay bounded.
    for i in 0..50u32 {
        r.see(2000 + i * 100, 10);
    }
    assert!(r.ranges.len() <= MAX_SEQ_RANGES);
}

fn any_endpoint() -> impl proptest::strategy::Strategy<Value = (IpAddr, u16)> {
    use proptest::prelude::*;
    // Small address and port ranges too, so equal addresses and equal ports both occur.
    let v4 = prop_oneof![any::<u32>(), 0u32..4].prop_map(|a| IpAddr::V4(a.into()));
    let v6 = prop_oneof![any::<u128>(), 0u128..4].prop_map(|a| IpAddr::V6(a.into()));
    (prop_oneof![v4, v6], prop_oneof![any::<u16>(), 0u16..3])
}

proptest::proptest! {
    /// The inline rank orders endpoints exactly as the derived `(IpAddr, u16)` order, so which
    /// end of a flow is `lo` is unchanged.
    #[test]
    fn endpoint_rank_orders_like_the_derived_order(a in any_endpoint(), b in any_endpoint()) {
        proptest::prop_assert_eq!(endpoint_rank(a).cmp(&endpoint_rank(b)), a.cmp(&b));
    }
}

/// One step of the model test: a packet of flow `port` (a SYN opens or continues it, a RST ends
/// it), or a timeout sweep.
#[derive(Debug, Clone)]
enum Step {
    Syn(u16),
    Rst(u16),
    Sweep,
}

fn any_step() -> impl proptest::strategy::Strategy<Value = (Step, i64)> {
    use proptest::prelude::*;
    let step = prop_oneof![
        6 => (0u16..12).prop_map(Step::Syn),
        2 => (0u16..12).prop_map(Step::Rst),
        1 => Just(Step::Sweep),
    ];
    (step, 0i64..40)
}

/// A flow of the model: port, first and last packet time, packets.
type ModelFlow = (u16, i64, i64, u64);

proptest::proptest! {
    /// The table behaves like a list of flows in creation order: found again whatever moved
    /// inside it (removals move slots), the oldest evicted when full, timeouts and closes
    /// ending exactly the right flows, in the right order, with the right counts.
    #[test]
    fn the_table_matches_a_model(steps in proptest::collection::vec(any_step(), 1..200)) {
        let cfg = FlowConfig { idle_timeout_ns: 100, active_timeout_ns: 250, max_flows: 5 };
        let mut table = FlowTable::<()>::new(cfg);
        let mut model: Vec<ModelFlow> = Vec::new();
        let (mut got, mut want) = (Vec::new(), Vec::new());
        let mut out = Vec::new();
        let mut ts = 0;
        let port_of = |e: &Expired<()>| e.stats.initiator.1;
        for (step, gap) in steps {
            ts += gap;
            match step {
                Step::Syn(p) | Step::Rst(p) => {
                    let rst = matches!(step, Step::Rst(_));
                    let flags = if rst { TcpFlags::RST } else { SYN };
                    let frame = tcp4((A, p), (B, 80), 7, 0, flags, &[], &[]);
                    let packet = Packet::decode(ts, &frame).unwrap();
                    let up = table.update(&packet, &mut out);
                    let ending = up.as_ref().and_then(|u| u.ends.map(|r| (u.slot, r)));
                    let known = model.iter().position(|f| f.0 == p);
                    match (known, up) {
                        (None, None) => proptest::prop_assert!(rst, "a SYN always lands"),
                        (None, Some(up)) => {
                            proptest::prop_assert!(up.new && !rst);
                            if model.len() == cfg.max_flows {
                                let f = model.remove(0);
                                want.push((f.0, EndReason::Evicted, f.3));
                            }
                            model.push((p, ts, ts, 1));
                        }
                        (Some(at), Some(up)) => {
                            proptest::prop_assert!(!up.new);
                            model[at].2 = ts;
                            model[at].3 += 1;
                            let packets = up.stats.dir[0].packets;
                            proptest::prop_assert_eq!(packets, model[at].3);
                            if rst {
                                let f = model.remove(at);
                                want.push((f.0, EndReason::Rst, f.3));
                            }
                        }
                        (Some(_), None) => proptest::prop_assert!(false, "known flow {} not found", p),
                    }
                    if let Some((slot, reason)) = ending {
                        out.push(table.end(slot, reason).unwrap());
                    }
                }
                Step::Sweep => {
                    table.expire(ts, &mut out);
                    model.retain(|f| {
                        let reason = if ts - f.2 >= cfg.idle_timeout_ns {
                            EndReason::Idle
                        } else if ts - f.1 >= cfg.active_timeout_ns {
                            EndReason::Active
                        } else {
                            return true;
                        };
                        want.push((f.0, reason, f.3));
                        false
                    });
                }
            }
            got.extend(out.drain(..).map(|e| (port_of(&e), e.reason, e.stats.dir[0].packets)));
            proptest::prop_assert_eq!(table.len(), model.len());
        }
        table.drain(&mut out);
        got.extend(out.drain(..).map(|e| (port_of(&e), e.reason, e.stats.dir[0].packets)));
        want.extend(model.iter().map(|f| (f.0, EndReason::Flush, f.3)));
        proptest::prop_assert_eq!(got, want);
        proptest::prop_assert!(table.is_empty());
    }
}
