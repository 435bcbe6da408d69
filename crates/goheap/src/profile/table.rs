//! The profiler's two tables, kept under its lock ([`super::PROFILER`]): *buckets* (one per
//! distinct call stack and label, with Go's four counters: allocations and frees, objects
//! and bytes) and *live samples* (sampled objects not yet freed, by address, naming their
//! bucket), as in Go's `mprof.go`. Both are open-addressing hash tables in [`MapVec`]s;
//! nothing here allocates from the heap, and nothing here takes another lock.
//!
//! A full table grows by rehashing into one twice the size. If the OS refuses memory for
//! that, the sample is counted in [`Tables::dropped`] instead of recorded: the profile
//! says so rather than the program failing.

use super::mapvec::MapVec;

/// Frames kept per sample (Go keeps 32 too).
pub const MAX_DEPTH: usize = 32;

/// A label on a sample: the name of the object's type (GC heaps), or none.
pub type Label = Option<fn() -> &'static str>;

/// A call stack: return addresses, innermost first.
#[derive(Clone, Copy)]
pub struct Stack {
    pub depth: usize,
    pub pcs: [usize; MAX_DEPTH],
}

impl Stack {
    pub const EMPTY: Stack = Stack {
        depth: 0,
        pcs: [0; MAX_DEPTH],
    };

    pub fn frames(&self) -> &[usize] {
        &self.pcs[..self.depth]
    }
}

/// One call stack's counts for one object size (Go's `bucket` with its `memRecord`; as in
/// Go, the size is part of the key, because scaling a sample back to a total depends on
/// the object size, and an average over mixed sizes would overestimate). Written under
/// the lock.
#[derive(Clone, Copy)]
pub struct Bucket {
    pub hash: u64,
    pub size: usize,
    pub label: Label,
    pub stack: Stack,
    /// Sampled allocations and their bytes.
    pub allocs: u64,
    pub alloc_bytes: u64,
    /// Sampled allocations since freed, and their bytes.
    pub frees: u64,
    pub free_bytes: u64,
}

/// A sampled object not yet freed.
#[derive(Clone, Copy)]
struct Live {
    /// Its address; 0 marks an empty slot.
    addr: usize,
    size: usize,
    bucket: u32,
}

/// Both tables. Owned by the profiler's lock.
pub struct Tables {
    pub buckets: MapVec<Bucket>,
    /// Bucket index + 1 by hash (0: empty). Length a power of two.
    index: MapVec<u32>,
    live: MapVec<Live>,
    live_len: usize,
    /// Samples not recorded because the OS refused memory for the tables.
    pub dropped: u64,
}

fn hash_of(stack: &Stack, size: usize, label: Label) -> u64 {
    // FNV-1a over the words, then a final mix (the low bits index the table).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let tail = [size, label_id(label)];
    for &w in stack.frames().iter().chain(tail.iter()) {
        h = (h ^ w as u64).wrapping_mul(0x0100_0000_01b3);
    }
    mix(h)
}

/// A label's identity: the address of its name function (labels are compared by it; two
/// types whose name functions the linker merged share their buckets, harmlessly).
fn label_id(label: Label) -> usize {
    label.map_or(0, |f| f as usize)
}

fn mix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

impl Tables {
    pub const fn new() -> Tables {
        Tables {
            buckets: MapVec::new(),
            index: MapVec::new(),
            live: MapVec::new(),
            live_len: 0,
            dropped: 0,
        }
    }

    /// The bucket of (`stack`, `size`, `label`), made if new. None if out of memory.
    fn bucket(&mut self, stack: &Stack, size: usize, label: Label) -> Option<u32> {
        let h = hash_of(stack, size, label);
        if (self.buckets.len() + 1) * 2 > self.index.len() && !self.grow_index() {
            return None;
        }
        let mask = self.index.len() - 1;
        let mut i = h as usize & mask;
        loop {
            let slot = self.index[i];
            if slot == 0 {
                break;
            }
            let b = &self.buckets[slot as usize - 1];
            if b.hash == h
                && b.size == size
                && label_id(b.label) == label_id(label)
                && b.stack.frames() == stack.frames()
            {
                return Some(slot - 1);
            }
            i = (i + 1) & mask;
        }
        let n = self.buckets.len() as u32;
        if !self.buckets.push(Bucket {
            hash: h,
            size,
            label,
            stack: *stack,
            allocs: 0,
            alloc_bytes: 0,
            frees: 0,
            free_bytes: 0,
        }) {
            return None;
        }
        self.index[i] = n + 1;
        Some(n)
    }

    fn grow_index(&mut self) -> bool {
        let n = (self.index.len() * 2).max(1024);
        // SAFETY: zero is a valid u32.
        let Some(mut index) = (unsafe { MapVec::<u32>::zeroed(n) }) else {
            return false;
        };
        for (b, bucket) in self.buckets.iter().enumerate() {
            let mut i = bucket.hash as usize & (n - 1);
            while index[i] != 0 {
                i = (i + 1) & (n - 1);
            }
            index[i] = b as u32 + 1;
        }
        self.index = index;
        true
    }

    /// Records a sampled allocation of `size` bytes at `addr`. `live`: track its free.
    pub fn record_alloc(&mut self, addr: usize, size: usize, stack: &Stack, label: Label) {
        let Some(b) = self.bucket(stack, size, label) else {
            self.dropped += 1;
            return;
        };
        if !self.insert_live(addr, size, b) {
            self.dropped += 1;
            return;
        }
        let bucket = &mut self.buckets[b as usize];
        bucket.allocs += 1;
        bucket.alloc_bytes += size as u64;
    }

    /// Records the free of the object at `addr` if it is a live sample. Returns whether it was.
    pub fn record_free(&mut self, addr: usize) -> bool {
        let Some((b, size)) = self.remove_live(addr) else {
            return false;
        };
        let bucket = &mut self.buckets[b as usize];
        bucket.frees += 1;
        bucket.free_bytes += size as u64;
        true
    }

    /// Calls `f(addr, size, bucket index, bucket)` for every live sample.
    pub fn for_each_live(&self, mut f: impl FnMut(usize, usize, u32, &Bucket)) {
        for e in self.live.iter().filter(|e| e.addr != 0) {
            f(e.addr, e.size, e.bucket, &self.buckets[e.bucket as usize]);
        }
    }

    fn insert_live(&mut self, addr: usize, size: usize, bucket: u32) -> bool {
        if (self.live_len + 1) * 2 > self.live.len() && !self.grow_live() {
            return false;
        }
        let mask = self.live.len() - 1;
        let mut i = mix(addr as u64) as usize & mask;
        while self.live[i].addr != 0 {
            if self.live[i].addr == addr {
                // The same address sampled again without a free we saw: the old sample's
                // object is gone (its memory was reused), so count it freed.
                let old = self.live[i];
                let ob = &mut self.buckets[old.bucket as usize];
                ob.frees += 1;
                ob.free_bytes += old.size as u64;
                self.live[i] = Live { addr, size, bucket };
                return true;
            }
            i = (i + 1) & mask;
        }
        self.live[i] = Live { addr, size, bucket };
        self.live_len += 1;
        true
    }

    fn grow_live(&mut self) -> bool {
        let n = (self.live.len() * 2).max(1024);
        // SAFETY: all-zero is a valid `Live` (an empty slot).
        let Some(mut live) = (unsafe { MapVec::<Live>::zeroed(n) }) else {
            return false;
        };
        for e in self.live.iter().filter(|e| e.addr != 0) {
            let mut i = mix(e.addr as u64) as usize & (n - 1);
            while live[i].addr != 0 {
                i = (i + 1) & (n - 1);
            }
            live[i] = *e;
        }
        self.live = live;
        true
    }

    fn remove_live(&mut self, addr: usize) -> Option<(u32, usize)> {
        if self.live_len == 0 {
            return None;
        }
        let mask = self.live.len() - 1;
        let mut i = mix(addr as u64) as usize & mask;
        loop {
            let e = self.live[i];
            if e.addr == 0 {
                return None;
            }
            if e.addr == addr {
                break;
            }
            i = (i + 1) & mask;
        }
        let found = self.live[i];
        // Backward-shift deletion: pull later entries of the run into the hole when their
        // home slot is not after it (no tombstones, so lookups stay short).
        let mut hole = i;
        let mut j = i;
        loop {
            j = (j + 1) & mask;
            let e = self.live[j];
            if e.addr == 0 {
                break;
            }
            let home = mix(e.addr as u64) as usize & mask;
            if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(hole) & mask) {
                self.live[hole] = e;
                hole = j;
            }
        }
        self.live[hole] = Live {
            addr: 0,
            size: 0,
            bucket: 0,
        };
        self.live_len -= 1;
        Some((found.bucket, found.size))
    }
}
