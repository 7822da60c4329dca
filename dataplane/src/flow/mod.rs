//! The per-thread flow table.
//!
//! One table per capture thread, no locks: a plain `HashMap` keyed by the canonical 5-tuple
//! (lower endpoint first), so both directions of a conversation land in one entry. Time is the
//! packets' own timestamps (sans-IO: replaying a pcap gives the same flows as live capture).
//! Flows end on RST, on FIN from both sides, on the idle or active timeout, on eviction when
//! the table is full (the oldest flow goes first; evictions are counted), or on
//! [`FlowTable::drain`].
//!
//! Each entry carries a caller-defined `S` (the analyzer keeps its stream reassembly there) so
//! per-flow state dies with the flow and needs no second map.

mod index;
mod stats;

use std::{collections::VecDeque, hash::BuildHasher, net::IpAddr};

pub use stats::RunningStats;

use crate::decode::{Packet, TcpFlags, Transport};

/// The canonical 5-tuple: `lo` is the smaller (address, port) endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct FlowKey {
    pub protocol: u8,
    pub lo: (IpAddr, u16),
    pub hi: (IpAddr, u16),
}

/// Hashes three fixed-width words instead of the derived walk over two `IpAddr` enums (their
/// discriminants, then length-prefixed byte arrays): this runs for every captured packet.
/// An IPv4 address and its IPv4-mapped IPv6 form hash alike, which `Eq` still tells apart.
impl std::hash::Hash for FlowKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let bits = |ip: IpAddr| match ip {
            IpAddr::V4(a) => u128::from(a.to_ipv6_mapped()),
            IpAddr::V6(a) => u128::from(a),
        };
        state.write_u128(bits(self.lo.0));
        state.write_u128(bits(self.hi.0));
        state.write_u64(
            u64::from(self.protocol) << 32 | u64::from(self.lo.1) << 16 | u64::from(self.hi.1),
        );
    }
}

impl FlowKey {
    /// The key of a packet and whether the packet travels lo → hi.
    pub fn of(packet: &Packet<'_>) -> Option<(Self, bool)> {
        let ip = packet.ip()?;
        let (sp, dp) = match &packet.transport {
            Transport::Tcp(t) => (t.src_port, t.dst_port),
            Transport::Udp(u) => (u.src_port, u.dst_port),
            // ICMP and other protocols: one flow per address pair and protocol.
            _ => (0, 0),
        };
        let a = (ip.src, sp);
        let b = (ip.dst, dp);
        let protocol = ip.protocol;
        Some(if endpoint_rank(a) <= endpoint_rank(b) {
            (
                Self {
                    protocol,
                    lo: a,
                    hi: b,
                },
                true,
            )
        } else {
            (
                Self {
                    protocol,
                    lo: b,
                    hi: a,
                },
                false,
            )
        })
    }
}

/// An endpoint as a tuple of integers that orders exactly as `(IpAddr, u16)` does (IPv4
/// before IPv6, then the address bits, then the port), compared inline: the derived
/// comparison of the `IpAddr` enums was an out-of-line call on every packet.
#[inline]
fn endpoint_rank((ip, port): (IpAddr, u16)) -> (bool, u128, u16) {
    match ip {
        IpAddr::V4(a) => (false, u128::from(u32::from(a)), port),
        IpAddr::V6(a) => (true, u128::from(a), port),
    }
}

/// Why a flow ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    Fin,
    Rst,
    Idle,
    Active,
    Evicted,
    /// The capture ended (end of file, shutdown).
    Flush,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fin => "fin",
            Self::Rst => "rst",
            Self::Idle => "idle_timeout",
            Self::Active => "active_timeout",
            Self::Evicted => "evicted",
            Self::Flush => "flush",
        }
    }
}

/// Per-direction counters; index 0 is initiator → responder.
#[derive(Debug, Clone, Default)]
pub struct Direction {
    pub packets: u64,
    /// IP bytes (header + payload as declared).
    pub bytes: u64,
    pub payload_bytes: u64,
    pub flags: TcpFlags,
    seq: SeqRanges,
    fin: bool,
}

/// Most disjoint sequence ranges remembered per direction (holes left by loss or reordering).
const MAX_SEQ_RANGES: usize = 8;

/// Sequence ranges already seen in one direction, unwrapped to 64 bits relative to the first
/// sequence number, so reordered segments are not mistaken for retransmissions.
#[derive(Debug, Clone, Default)]
struct SeqRanges {
    base: Option<u32>,
    /// Unwrapped offset of the most recent segment start (the anchor for unwrapping).
    last: i64,
    /// Sorted, disjoint, non-adjacent `[start, end)` ranges.
    ranges: Vec<(i64, i64)>,
}

impl SeqRanges {
    /// Record `[seq, seq + len)`; `true` when all of it was seen before.
    fn see(&mut self, seq: u32, len: u32) -> bool {
        let base = *self.base.get_or_insert(seq);
        // Unwrap relative to the last segment: the nearest 64-bit value with these low bits.
        let rel = seq.wrapping_sub(base);
        let delta = i64::from(rel.wrapping_sub(self.last as u32) as i32);
        let start = self.last.saturating_add(delta);
        let end = start.saturating_add(i64::from(len));
        self.last = start;
        if self.ranges.iter().any(|&(s, e)| s <= start && end <= e) {
            return true;
        }
        // Merge with every overlapping or adjacent range.
        let (mut s, mut e) = (start, end);
        self.ranges.retain(|&(rs, re)| {
            if rs <= e && s <= re {
                s = s.min(rs);
                e = e.max(re);
                false
            } else {
                true
            }
        });
        let at = self.ranges.partition_point(|&(rs, _)| rs < s);
        self.ranges.insert(at, (s, e));
        if self.ranges.len() > MAX_SEQ_RANGES {
            // Forget the lowest hole: old data retransmitted later is then undercounted, never
            // a fresh segment overcounted.
            self.ranges.remove(0);
        }
        false
    }
}

/// One flow's statistics.
#[derive(Debug, Clone)]
pub struct FlowStats {
    pub key: FlowKey,
    /// The endpoint that sent first (for TCP, the SYN sender when a SYN was seen).
    pub initiator: (IpAddr, u16),
    pub responder: (IpAddr, u16),
    pub first_ts: i64,
    pub last_ts: i64,
    pub dir: [Direction; 2],
    /// Inter-arrival times of all packets, nanoseconds.
    pub iat: RunningStats,
    /// Segments whose sequence range was already seen.
    pub retransmits: u64,
    /// The initiator completed the three-way handshake (SYN, SYN-ACK, ACK).
    pub handshake_done: bool,
    synack_seen: bool,
}

impl FlowStats {
    pub fn duration_ns(&self) -> i64 {
        self.last_ts.saturating_sub(self.first_ts)
    }

    /// Flags seen in either direction.
    pub fn flags(&self) -> TcpFlags {
        TcpFlags(self.dir[0].flags.0 | self.dir[1].flags.0)
    }
}

/// A flow that ended, with its caller state.
#[derive(Debug)]
pub struct Expired<S> {
    pub stats: FlowStats,
    pub reason: EndReason,
    pub state: S,
}

/// Where a packet landed.
#[derive(Debug)]
pub struct Update<'t, S> {
    pub stats: &'t FlowStats,
    pub state: &'t mut S,
    /// The packet travels initiator → responder.
    pub from_initiator: bool,
    /// The packet created the flow.
    pub new: bool,
    /// This packet completed the three-way handshake.
    pub handshake_completed: bool,
    /// The initiator answered the SYN-ACK with a RST instead of completing the handshake
    /// (the half-open probe of a SYN scan against an open port).
    pub half_open_reset: bool,
    /// The segment was a retransmission.
    pub retransmit: bool,
    /// The flow is over after this packet (a RST either way, or FIN both ways): end it with
    /// [`FlowTable::end`] once the packet is analysed.
    pub ends: Option<EndReason>,
    /// Where the flow lives, for [`FlowTable::end`] without a second lookup.
    pub slot: FlowSlot,
}

/// A flow's place in the table as of one [`Update`]; [`FlowTable::end`] checks it still
/// holds that flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowSlot {
    at: usize,
    generation: u64,
}

/// A bare ACK or RST: of an unknown flow, the tail of one that already ended (the last ACK
/// after both FINs) or a stray answer, which must not open a flow.
fn is_tail(t: &crate::decode::Tcp<'_>) -> bool {
    t.payload.is_empty()
        && t.flags.0 & (TcpFlags::SYN | TcpFlags::FIN) == 0
        && t.flags.0 & (TcpFlags::ACK | TcpFlags::RST) != 0
}

/// Flows from which [`FlowTable::prefetch`] pays: below, the index buckets in use stay in
/// cache, and decoding the next frame early for it would be pure cost.
pub const PREFETCH_FROM_FLOWS: usize = 4096;

/// Timeouts and size bound.
#[derive(Debug, Clone, Copy)]
pub struct FlowConfig {
    pub idle_timeout_ns: i64,
    pub active_timeout_ns: i64,
    pub max_flows: usize,
}

impl Default for FlowConfig {
    fn default() -> Self {
        Self {
            idle_timeout_ns: 60 * 1_000_000_000,
            active_timeout_ns: 300 * 1_000_000_000,
            max_flows: 1 << 18,
        }
    }
}

/// Counters of one table (plain integers: the table is single-threaded).
#[derive(Debug, Clone, Copy, Default)]
pub struct FlowCounters {
    pub created: u64,
    pub expired: u64,
    pub evicted: u64,
    /// Bare ACK/RST segments of unknown flows, not tracked.
    pub ignored_tails: u64,
}

struct Entry<S> {
    stats: FlowStats,
    state: S,
}

/// One live flow: its key and hash (to find it and to repoint its index entry when it moves),
/// the times the timeout sweep reads and the generation the eviction queue checks, inline;
/// the flow itself boxed, so a slot stays small and the sweep walks slots without chasing boxes.
struct Slot<S> {
    key: FlowKey,
    hash: u64,
    first_ts: i64,
    last_ts: i64,
    /// Distinguishes this flow from an earlier one with the same key in the eviction queue.
    generation: u64,
    entry: Box<Entry<S>>,
}

/// The flow table.
///
/// Live flows sit densely in `slots` (a removal moves the last slot into the hole); `index`
/// maps a key's hash to a slot number in one 8-byte word a bucket, allocated for `max_flows`
/// up front (4 MiB at the default), so it never grows while a flood fills it and mostly stays
/// in cache: a probe into a map of whole slots sized for `max_flows` (40 MiB) was a cache miss
/// to memory for nearly every packet of a many-flow flood (70 % of the capture thread's
/// samples). `slots` is reserved for `max_flows` too; its pages are touched only as flows
/// arrive.
pub struct FlowTable<S> {
    config: FlowConfig,
    hasher: foldhash::fast::RandomState,
    index: index::SlotIndex,
    slots: Vec<Slot<S>>,
    /// Creation order, for evicting the oldest flow in amortised O(1).
    order: VecDeque<(FlowKey, u64)>,
    next_generation: u64,
    pub counters: FlowCounters,
}

impl<S> std::fmt::Debug for FlowTable<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowTable")
            .field("config", &self.config)
            .field("flows", &self.slots.len())
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl<S: Default> FlowTable<S> {
    pub fn new(config: FlowConfig) -> Self {
        // Slot numbers are stored as u32 + 1.
        let max_flows = config.max_flows.clamp(1, u32::MAX as usize - 1);
        Self {
            config: FlowConfig {
                max_flows,
                ..config
            },
            hasher: foldhash::fast::RandomState::default(),
            index: index::SlotIndex::new(max_flows),
            slots: Vec::with_capacity(max_flows),
            order: VecDeque::new(),
            next_generation: 0,
            counters: FlowCounters::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Start fetching what an update of `packet`'s flow reads first (its index bucket): for
    /// the next frame while the current one is analysed, once the table holds
    /// [`PREFETCH_FROM_FLOWS`] flows.
    pub fn prefetch(&self, packet: &Packet<'_>) {
        if let Some((key, _)) = FlowKey::of(packet) {
            self.index.prefetch(self.hasher.hash_one(key));
        }
    }

    /// The slot number of `key`'s flow.
    fn find(&self, hash: u64, key: &FlowKey) -> Option<usize> {
        let slots = &self.slots;
        self.index
            .find(hash, |at| slots.get(at).is_some_and(|s| s.key == *key))
    }

    /// Account a packet; flows it evicts are appended to `expired`. `None` for non-IP packets
    /// and for bare ACK/RST segments that belong to no known flow.
    pub fn update(
        &mut self,
        packet: &Packet<'_>,
        expired: &mut Vec<Expired<S>>,
    ) -> Option<Update<'_, S>> {
        let (key, lo_to_hi) = FlowKey::of(packet)?;
        let ip = packet.ip()?;
        let ts = packet.ts_ns;
        let tcp = packet.tcp();
        let hash = self.hasher.hash_one(key);
        let (at, new) = match self.find(hash, &key) {
            Some(at) => (at, false),
            None => {
                if tcp.is_some_and(is_tail) {
                    self.counters.ignored_tails += 1;
                    return None;
                }
                while self.slots.len() >= self.config.max_flows {
                    if !self.evict_oldest(expired) {
                        break;
                    }
                }
                let (src, dst) = if lo_to_hi {
                    (key.lo, key.hi)
                } else {
                    (key.hi, key.lo)
                };
                // A SYN-ACK as the first packet means we missed the SYN: its receiver initiated.
                let synack =
                    tcp.is_some_and(|t| t.flags.has(TcpFlags::SYN) && t.flags.has(TcpFlags::ACK));
                let (initiator, responder) = if synack { (dst, src) } else { (src, dst) };
                let generation = self.next_generation;
                self.next_generation += 1;
                self.order.push_back((key, generation));
                self.counters.created += 1;
                let at = self.slots.len();
                self.slots.push(Slot {
                    key,
                    hash,
                    first_ts: ts,
                    last_ts: ts,
                    generation,
                    entry: Box::new(Entry {
                        stats: FlowStats {
                            key,
                            initiator,
                            responder,
                            first_ts: ts,
                            last_ts: ts,
                            dir: Default::default(),
                            iat: RunningStats::default(),
                            retransmits: 0,
                            handshake_done: false,
                            synack_seen: false,
                        },
                        state: S::default(),
                    }),
                });
                self.index.insert(hash, at);
                (at, true)
            }
        };
        // `at` is a live slot: found in, or just pushed onto, `slots`.
        let slot = self.slots.get_mut(at)?;
        let generation = slot.generation;
        slot.last_ts = slot.last_ts.max(ts);
        let entry = &mut *slot.entry;
        let st = &mut entry.stats;
        let src = (ip.src, packet.ports().map_or(0, |p| p.0));
        let from_initiator = src == st.initiator && (st.initiator != st.responder || lo_to_hi);
        if !new {
            st.iat
                .push(u64::try_from(ts.saturating_sub(st.last_ts)).unwrap_or(0));
        }
        st.last_ts = st.last_ts.max(ts);
        let d = &mut st.dir[usize::from(!from_initiator)];
        d.packets += 1;
        d.bytes += ip.total_len as u64;
        let mut retransmit = false;
        let mut handshake_completed = false;
        let mut half_open_reset = false;
        if let Some(t) = tcp {
            d.flags.0 |= t.flags.0;
            d.payload_bytes += t.payload.len() as u64;
            // SYN and FIN each occupy one sequence number.
            let seg_len = u32::try_from(t.payload.len()).unwrap_or(u32::MAX)
                + u32::from(t.flags.has(TcpFlags::SYN))
                + u32::from(t.flags.has(TcpFlags::FIN));
            if seg_len > 0 {
                retransmit = d.seq.see(t.seq, seg_len);
            }
            if t.flags.has(TcpFlags::FIN) {
                d.fin = true;
            }
            if !from_initiator && t.flags.has(TcpFlags::SYN) && t.flags.has(TcpFlags::ACK) {
                st.synack_seen = true;
            }
            if from_initiator
                && st.synack_seen
                && !st.handshake_done
                && t.flags.has(TcpFlags::ACK)
                && !t.flags.has(TcpFlags::SYN)
                && !t.flags.has(TcpFlags::RST)
                && st.dir[0].flags.has(TcpFlags::SYN)
            {
                st.handshake_done = true;
                handshake_completed = true;
            }
            if from_initiator && st.synack_seen && !st.handshake_done && t.flags.has(TcpFlags::RST)
            {
                half_open_reset = true;
            }
            if retransmit {
                st.retransmits += 1;
            }
        }
        let ends = if tcp.is_none() {
            None
        } else if st.flags().has(TcpFlags::RST) {
            Some(EndReason::Rst)
        } else if st.dir[0].fin && st.dir[1].fin {
            Some(EndReason::Fin)
        } else {
            None
        };
        Some(Update {
            stats: &entry.stats,
            state: &mut entry.state,
            from_initiator,
            new,
            handshake_completed,
            half_open_reset,
            retransmit,
            ends,
            slot: FlowSlot { at, generation },
        })
    }

    /// End the flow an [`Update`] found in `slot` (as its `ends` says, after the packet was
    /// analysed). `None` when the table changed since and the slot holds another flow.
    pub fn end(&mut self, slot: FlowSlot, reason: EndReason) -> Option<Expired<S>> {
        if self.slots.get(slot.at)?.generation != slot.generation {
            return None;
        }
        self.remove_at(slot.at, reason)
    }

    /// End the flow in slot `at`; the last slot moves into its place.
    fn remove_at(&mut self, at: usize, reason: EndReason) -> Option<Expired<S>> {
        self.index.remove(self.slots.get(at)?.hash, at);
        let slot = self.slots.swap_remove(at);
        if let Some(moved) = self.slots.get(at) {
            self.index.repoint(moved.hash, self.slots.len(), at);
        }
        self.counters.expired += 1;
        let entry = slot.entry;
        Some(Expired {
            stats: entry.stats,
            reason,
            state: entry.state,
        })
    }

    /// The slot of the flow `key` if it is the one `generation` created.
    fn find_generation(&self, key: &FlowKey, generation: u64) -> Option<usize> {
        let at = self.find(self.hasher.hash_one(key), key)?;
        (self.slots.get(at)?.generation == generation).then_some(at)
    }

    fn evict_oldest(&mut self, expired: &mut Vec<Expired<S>>) -> bool {
        while let Some((key, generation)) = self.order.pop_front() {
            if let Some(at) = self.find_generation(&key, generation) {
                if let Some(e) = self.remove_at(at, EndReason::Evicted) {
                    self.counters.evicted += 1;
                    expired.push(e);
                }
                return true;
            }
        }
        false
    }

    /// End flows idle or active too long at packet time `now_ns`.
    pub fn expire(&mut self, now_ns: i64, expired: &mut Vec<Expired<S>>) {
        let idle = self.config.idle_timeout_ns;
        let active = self.config.active_timeout_ns;
        let mut ended: Vec<(u64, FlowKey, EndReason)> = self
            .slots
            .iter()
            .filter_map(|s| {
                if now_ns.saturating_sub(s.last_ts) >= idle {
                    Some((s.generation, s.key, EndReason::Idle))
                } else if now_ns.saturating_sub(s.first_ts) >= active {
                    Some((s.generation, s.key, EndReason::Active))
                } else {
                    None
                }
            })
            .collect();
        // Oldest first: a deterministic order (removals reorder the slots).
        ended.sort_unstable_by_key(|&(generation, _, _)| generation);
        for (generation, key, reason) in ended {
            if let Some(at) = self.find_generation(&key, generation)
                && let Some(e) = self.remove_at(at, reason)
            {
                expired.push(e);
            }
        }
        self.compact_order();
    }

    /// End every flow (end of capture), oldest first.
    pub fn drain(&mut self, expired: &mut Vec<Expired<S>>) {
        self.slots.sort_unstable_by_key(|s| s.generation);
        self.counters.expired += self.slots.len() as u64;
        expired.extend(self.slots.drain(..).map(|s| Expired {
            stats: s.entry.stats,
            reason: EndReason::Flush,
            state: s.entry.state,
        }));
        self.index.clear();
        self.order.clear();
    }

    /// Drop queue entries of flows that already ended, so the queue stays proportional.
    fn compact_order(&mut self) {
        if self.order.len() > 2 * self.slots.len() + 64 {
            let mut order = std::mem::take(&mut self.order);
            order.retain(|(k, g)| self.find_generation(k, *g).is_some());
            self.order = order;
        }
    }
}

#[cfg(test)]
mod tests;
