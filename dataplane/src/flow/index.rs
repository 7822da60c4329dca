//! The flow table's hash index: slot numbers by key hash, one 8-byte word per bucket.
//!
//! Each bucket holds the upper half of the key's hash (the tag) and the slot number + 1 (0 is
//! an empty bucket), so a lookup reads one word, and only a tag match reads the slot to
//! compare keys: one memory access before the slot where a general-purpose table (control
//! bytes, then the bucket they point to) makes two dependent ones. In a flood of many flows
//! every lookup lands on a random bucket, so those accesses are the cost of the flow update.
//!
//! Open addressing with linear probing at a load of at most one half (the table is sized for
//! the flow table's bound and never grows); removal shifts the following entries back instead
//! of leaving tombstones, so probe lengths never degrade however many flows come and go. The
//! hash is seeded per process, so an attacker cannot choose keys that collide.

/// Hash index over slot numbers.
#[derive(Debug)]
pub(super) struct SlotIndex {
    buckets: Box<[u64]>,
    mask: usize,
}

/// The part of a hash a bucket keeps, which also picks the bucket.
fn tag(hash: u64) -> u32 {
    (hash >> 32) as u32
}

impl SlotIndex {
    /// An index for up to `max_slots` slots (`max_slots < u32::MAX`).
    pub(super) fn new(max_slots: usize) -> Self {
        let buckets = (max_slots.max(1) * 2).next_power_of_two();
        Self {
            // Zeroed memory comes from the allocator untouched: pages cost memory as flows arrive.
            buckets: vec![0; buckets].into_boxed_slice(),
            mask: buckets - 1,
        }
    }

    fn home(&self, tag: u32) -> usize {
        tag as usize & self.mask
    }

    /// The buckets a probe from `home` visits, in order: at most every bucket once, so a
    /// broken load bound could cost time but never hang a lookup.
    fn probe(&self, home: usize) -> impl Iterator<Item = usize> + use<> {
        let mask = self.mask;
        (0..=mask).map(move |i| (home + i) & mask)
    }

    /// The slot with this hash for which `is_key` holds.
    #[inline]
    pub(super) fn find(&self, hash: u64, mut is_key: impl FnMut(usize) -> bool) -> Option<usize> {
        let tag = tag(hash);
        for at in self.probe(self.home(tag)) {
            let word = *self.buckets.get(at)?;
            if word == 0 {
                return None;
            }
            if (word >> 32) as u32 == tag {
                let slot = (word as u32).wrapping_sub(1) as usize;
                if is_key(slot) {
                    return Some(slot);
                }
            }
        }
        None
    }

    /// Start fetching the bucket a lookup of `hash` reads first.
    #[inline]
    pub(super) fn prefetch(&self, hash: u64) {
        crate::prefetch(
            self.buckets
                .as_ptr()
                .wrapping_add(self.home(tag(hash)))
                .cast(),
        );
    }

    /// Record `slot` under `hash`. The caller keeps at most `max_slots` entries, so an empty
    /// bucket is always found.
    pub(super) fn insert(&mut self, hash: u64, slot: usize) {
        let tag = tag(hash);
        let Ok(slot) = u32::try_from(slot + 1) else {
            return;
        };
        let free = self
            .probe(self.home(tag))
            .find(|&at| self.buckets.get(at) == Some(&0));
        if let Some(bucket) = free.and_then(|at| self.buckets.get_mut(at)) {
            *bucket = u64::from(tag) << 32 | u64::from(slot);
        }
    }

    /// The bucket that holds `slot`, filed under `hash`.
    fn bucket_of(&self, hash: u64, slot: usize) -> Option<usize> {
        let want = u32::try_from(slot + 1).ok()?;
        for at in self.probe(self.home(tag(hash))) {
            let word = *self.buckets.get(at)?;
            if word == 0 {
                return None;
            }
            if word as u32 == want {
                return Some(at);
            }
        }
        None
    }

    /// `slot`, filed under `hash`, now lives at slot `to`.
    pub(super) fn repoint(&mut self, hash: u64, slot: usize, to: usize) {
        if let (Some(at), Ok(to)) = (self.bucket_of(hash, slot), u32::try_from(to + 1))
            && let Some(bucket) = self.buckets.get_mut(at)
        {
            *bucket = *bucket & !u64::from(u32::MAX) | u64::from(to);
        }
    }

    /// Forget `slot`, filed under `hash`. The entries after it in its run move back, each no
    /// further than its home bucket, so every lookup still finds its entry before an empty one.
    pub(super) fn remove(&mut self, hash: u64, slot: usize) {
        let Some(mut hole) = self.bucket_of(hash, slot) else {
            return;
        };
        for at in self.probe(hole).skip(1) {
            let word = self.buckets.get(at).copied().unwrap_or(0);
            if word == 0 {
                break;
            }
            let home = self.home((word >> 32) as u32);
            // The entry stays when its home lies cyclically in (hole, at]: moving it to the hole
            // would put it before its home, where probes never look.
            let stays = if hole <= at {
                hole < home && home <= at
            } else {
                hole < home || home <= at
            };
            if !stays {
                if let Some(bucket) = self.buckets.get_mut(hole) {
                    *bucket = word;
                }
                hole = at;
            }
        }
        if let Some(bucket) = self.buckets.get_mut(hole) {
            *bucket = 0;
        }
    }

    /// Forget every slot (with fresh, untouched memory rather than writing every bucket).
    pub(super) fn clear(&mut self) {
        *self = Self::new(self.buckets.len() / 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u32),
        Remove(usize),
        Repoint(usize),
    }

    fn any_op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        // Few distinct tags over 8 buckets: long runs, shared homes and runs that wrap past
        // the last bucket, which is where backward shifting can go wrong.
        prop_oneof![
            (0u32..10).prop_map(Op::Insert),
            any::<usize>().prop_map(Op::Remove),
            any::<usize>().prop_map(Op::Repoint),
        ]
    }

    proptest::proptest! {
        /// Every recorded slot is found under its hash, whatever was removed or moved before;
        /// a removed slot is not.
        #[test]
        fn finds_exactly_the_live_slots(ops in proptest::collection::vec(any_op(), 1..300)) {
            let mut index = SlotIndex::new(4);
            let mut live: Vec<(usize, u64)> = Vec::new();
            let mut gone = Vec::new();
            let mut next_slot = 0;
            for op in ops {
                match op {
                    Op::Insert(tag) if live.len() < 4 => {
                        let hash = u64::from(tag) << 32 | 0xdead;
                        index.insert(hash, next_slot);
                        live.push((next_slot, hash));
                        next_slot += 1;
                    }
                    Op::Remove(pick) if !live.is_empty() => {
                        let (slot, hash) = live.swap_remove(pick % live.len());
                        index.remove(hash, slot);
                        gone.push((slot, hash));
                    }
                    Op::Repoint(pick) if !live.is_empty() => {
                        let n = live.len();
                        let (slot, hash) = &mut live[pick % n];
                        index.repoint(*hash, *slot, next_slot);
                        gone.push((*slot, *hash));
                        *slot = next_slot;
                        next_slot += 1;
                    }
                    _ => {}
                }
                for &(slot, hash) in &live {
                    proptest::prop_assert_eq!(index.find(hash, |s| s == slot), Some(slot));
                }
                for &(slot, hash) in &gone {
                    proptest::prop_assert_eq!(index.find(hash, |s| s == slot), None);
                }
            }
        }
    }

    #[test]
    fn a_full_index_neither_hangs_nor_finds_what_it_lacks() {
        // Two buckets, filled beyond the bound the flow table keeps (one slot).
        let mut index = SlotIndex::new(1);
        index.insert(1 << 32, 0);
        index.insert(1 << 32, 1);
        index.insert(1 << 32, 2);
        assert_eq!(index.find(1 << 32, |s| s == 1), Some(1));
        assert_eq!(index.find(1 << 32, |s| s == 2), None);
        assert_eq!(index.find(5 << 32, |_| true), None);
        index.remove(1 << 32, 0);
        assert_eq!(index.find(1 << 32, |s| s == 1), Some(1));
    }

    #[test]
    fn a_tag_match_alone_is_not_a_find() {
        let mut index = SlotIndex::new(4);
        index.insert(7 << 32, 0);
        index.insert(7 << 32, 1);
        // Same tag, different keys: the caller's key check decides.
        assert_eq!(index.find(7 << 32, |s| s == 1), Some(1));
        assert_eq!(index.find(7 << 32, |_| false), None);
        assert_eq!(index.find(3 << 32, |_| true), None);
        index.clear();
        assert_eq!(index.find(7 << 32, |_| true), None);
    }
}
