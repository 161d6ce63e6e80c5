//! The `(table, id)` → dense-row map of the streaming simulator, built for speed on large traces:
//! open addressing with linear probing over 16-byte slots (key and row inline, so a lookup reads
//! one cache line), a folded-multiply hash, and a split API — [`IdMap::hash`], then
//! [`IdMap::prefetch`] some accesses ahead, then [`IdMap::row_hashed`] — so the caller can keep
//! several table misses in flight instead of waiting for each (a 10 M-access trace of 1 M
//! distinct ids spends most of a plain hash map's time waiting on DRAM).
//!
//! Memory: 16 bytes per slot, at most 3/4 of the slots full (so 21–43 bytes per distinct id);
//! the table doubles when full and never holds anything but the distinct ids.

/// Slot row of an empty slot (a dense row is at most `u32::MAX − 2`).
const EMPTY: u32 = u32::MAX;
/// Slots of a new map.
const INITIAL_SLOTS: usize = 1 << 10;
/// The folded multiply's odd constant (the fractional digits of π, as wyhash/foldhash use).
const K: u64 = 0x243f_6a88_85a3_08d3;

#[derive(Debug, Clone, Copy)]
#[repr(C, align(16))]
struct Slot {
    id: u64,
    table: u32,
    /// Dense row; [`EMPTY`] when the slot is free.
    row: u32,
}

const FREE: Slot = Slot {
    id: 0,
    table: 0,
    row: EMPTY,
};

/// Open-addressing map from `(table, id)` to a dense row `u32`.
#[derive(Debug, Clone)]
pub struct IdMap {
    slots: Vec<Slot>,
    mask: usize,
    len: usize,
}

impl Default for IdMap {
    fn default() -> Self {
        IdMap {
            slots: vec![FREE; INITIAL_SLOTS],
            mask: INITIAL_SLOTS - 1,
            len: 0,
        }
    }
}

impl IdMap {
    /// The hash of a key: a 64×64→128-bit multiply folded to 64 bits, so every bit of the id
    /// and the table reaches the low bits the slot index is taken from.
    #[inline]
    pub fn hash(table: u32, id: u64) -> u64 {
        let x = id ^ u64::from(table).rotate_right(17);
        let p = u128::from(x ^ K) * u128::from(K.rotate_left(29) | 1);
        (p as u64) ^ ((p >> 64) as u64)
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes of the slot array (what a test can bound).
    pub fn state_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Slot>()
    }

    /// Asks the CPU to start loading the slot of hash `h` (a hint: no effect on the result).
    #[inline]
    pub fn prefetch(&self, h: u64) {
        prefetch(&self.slots[h as usize & self.mask]);
    }

    /// The row of `(table, id)` whose [`IdMap::hash`] is `h`, inserting `next` when the key is
    /// new; the flag says whether it was.
    #[inline]
    pub fn row_hashed(&mut self, h: u64, table: u32, id: u64, next: u32) -> (u32, bool) {
        debug_assert_ne!(next, EMPTY);
        let mut i = h as usize & self.mask;
        loop {
            let s = self.slots[i];
            if s.row == EMPTY {
                break;
            }
            if s.id == id && s.table == table {
                return (s.row, false);
            }
            i = (i + 1) & self.mask;
        }
        self.slots[i] = Slot {
            id,
            table,
            row: next,
        };
        self.len += 1;
        if self.len * 4 > self.slots.len() * 3 {
            self.grow();
        }
        (next, true)
    }

    /// [`IdMap::row_hashed`] computing the hash.
    #[inline]
    pub fn row(&mut self, table: u32, id: u64, next: u32) -> (u32, bool) {
        self.row_hashed(Self::hash(table, id), table, id, next)
    }

    /// The row of `(table, id)`, if present.
    pub fn get(&self, table: u32, id: u64) -> Option<u32> {
        let mut i = Self::hash(table, id) as usize & self.mask;
        loop {
            let s = self.slots[i];
            if s.row == EMPTY {
                return None;
            }
            if s.id == id && s.table == table {
                return Some(s.row);
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Doubles the slots and reinserts every key.
    #[cold]
    fn grow(&mut self) {
        let n = self.slots.len() * 2;
        let mut slots = Vec::with_capacity(n);
        advise_huge_pages(&slots);
        slots.resize(n, FREE);
        let old = std::mem::replace(&mut self.slots, slots);
        self.mask = n - 1;
        for s in old.into_iter().filter(|s| s.row != EMPTY) {
            let mut i = Self::hash(s.table, s.id) as usize & self.mask;
            while self.slots[i].row != EMPTY {
                i = (i + 1) & self.mask;
            }
            self.slots[i] = s;
        }
    }
}

/// Asks Linux to back the (not yet touched) allocation of `v` with transparent huge pages where
/// it spans whole 2 MiB pages (a hint; ignored when THP is off). A table of tens of MiB read at
/// random otherwise misses the TLB on nearly every access, and each miss is a page walk (two
/// levels of them in a VM).
pub fn advise_huge_pages<T>(v: &Vec<T>) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let start = v.as_ptr() as usize;
        let end = start + v.capacity() * std::mem::size_of::<T>();
        let (a, b) = (start.next_multiple_of(HUGE), end / HUGE * HUGE);
        if b > a {
            // SAFETY: madvise only changes how the kernel backs pages of this live allocation
            // (MADV_HUGEPAGE never discards contents); its result is a hint's, so it is ignored.
            unsafe {
                libc::madvise(a as *mut libc::c_void, b - a, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = v;
}

/// Bytes from which a growing per-row array is given huge pages (smaller ones fit the TLB).
const HUGE_FROM_BYTES: usize = 4 << 20;

/// `v.resize(n, fill)`, except that when this reallocates an array of 4 MiB or more, the new
/// allocation (doubling, as `Vec` does) is advised to use
/// huge pages ([`advise_huge_pages`]) before it is touched.
#[inline]
pub fn resize_huge<T: Clone>(v: &mut Vec<T>, n: usize, fill: T) {
    if n > v.capacity() && n * std::mem::size_of::<T>() >= HUGE_FROM_BYTES {
        let mut w = Vec::with_capacity(n.max(2 * v.capacity()));
        advise_huge_pages(&w);
        w.extend_from_slice(v);
        *v = w;
    }
    v.resize(n, fill);
}

/// Asks the CPU to start loading the cache line of `x` into all cache levels (x86-64;
/// elsewhere nothing). A hint only: it never faults and changes no result.
#[inline(always)]
pub fn prefetch<T>(x: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 (SSE, part of the x86-64 baseline) reads nothing architecturally and
    // cannot fault; the pointer comes from a live reference.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>((x as *const T).cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = x;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Growing past the huge-page threshold (8 MiB of `u64`, one row at a time as the stream
    /// does, then in one jump) keeps every value and fills the new ones, as `Vec::resize`.
    #[test]
    fn resize_huge_is_resize() {
        let mut v: Vec<u64> = Vec::new();
        for n in 1..=(1usize << 20) {
            resize_huge(&mut v, n, n as u64);
        }
        resize_huge(&mut v, 3 << 20, 7);
        assert_eq!(v.len(), 3 << 20);
        assert!(v[..1 << 20]
            .iter()
            .enumerate()
            .all(|(i, &x)| x == i as u64 + 1));
        assert!(v[1 << 20..].iter().all(|&x| x == 7));
        // Shrinking requests leave it as resize would.
        resize_huge(&mut v, 5, 0);
        assert_eq!(v, [1, 2, 3, 4, 5]);
    }

    /// The map agrees with std's `HashMap` on a mix of new and repeated keys across tables,
    /// dense and scattered ids (ids equal across tables, ids differing only in high bits), through
    /// several doublings.
    #[test]
    fn agrees_with_std_hashmap() {
        let mut m = IdMap::default();
        let mut std_map: HashMap<(u32, u64), u32> = HashMap::new();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..200_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let (table, id) = match i % 5 {
                0 => (0, x % 5000),
                1 => (1, x % 5000),
                2 => (0, (x % 3000) << 40),
                3 => (2, x),
                _ => (u32::MAX, i / 3),
            };
            let next = std_map.len() as u32;
            let want = match std_map.get(&(table, id)) {
                Some(&r) => (r, false),
                None => {
                    std_map.insert((table, id), next);
                    (next, true)
                }
            };
            let h = IdMap::hash(table, id);
            m.prefetch(h);
            assert_eq!(m.row_hashed(h, table, id, next), want, "key {table} {id}");
        }
        assert_eq!(m.len(), std_map.len());
        for (&(t, id), &r) in &std_map {
            assert_eq!(m.get(t, id), Some(r));
        }
        assert_eq!(m.get(7, 7), None);
        // At most 3/4 full, at least 3/8 after a doubling.
        let slots = m.state_bytes() / 16;
        assert!(
            m.len() * 4 <= slots * 3 && m.len() * 8 > slots * 3,
            "{} {slots}",
            m.len()
        );
    }
}
