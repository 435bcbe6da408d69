//! A growable array in memory from `mmap`: the profiler's only container.
//!
//! The profiler must never call the allocator it profiles (a `Vec` in a program whose global
//! allocator is goheap, or anywhere inside the `LD_PRELOAD` library, would be exactly that),
//! so every table, scratch buffer and output byte it keeps lives in a [`MapVec`]: address
//! space from [`crate::os::reserve`], doubled by reserving a larger range, copying and
//! releasing the old one. Elements are plain data (`Copy`), never dropped. Pages are
//! touched only as they are used.

use core::ptr;

use crate::os;

/// A vector of `T` in OS memory. Written by whoever owns it (the profiler under its lock,
/// or one call of the profile writer).
pub struct MapVec<T: Copy> {
    /// Start of the reservation (null before the first push).
    ptr: *mut T,
    /// Elements in use.
    len: usize,
    /// Elements the reservation holds.
    cap: usize,
}

// SAFETY: a `MapVec` owns its memory exclusively; moving it to another thread moves that
// ownership (the profiler's tables move between threads only under its lock).
unsafe impl<T: Copy + Send> Send for MapVec<T> {}

impl<T: Copy> MapVec<T> {
    pub const fn new() -> MapVec<T> {
        MapVec {
            ptr: ptr::null_mut(),
            len: 0,
            cap: 0,
        }
    }

    /// A vector of `n` elements, all zero bytes (the OS's fresh pages). False if the OS
    /// refuses the memory.
    ///
    /// # Safety
    /// All-zero bytes must be a valid `T`.
    pub unsafe fn zeroed(n: usize) -> Option<MapVec<T>> {
        let mut v = MapVec::new();
        if !v.grow_to(n) {
            return None;
        }
        v.len = n;
        Some(v)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Keeps the first `len` elements.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Makes room for at least `cap` elements. False if the OS refuses the memory (the vector
    /// is unchanged).
    fn grow_to(&mut self, cap: usize) -> bool {
        if cap <= self.cap {
            return true;
        }
        let size = core::mem::size_of::<T>().max(1);
        let new_cap = cap.max(self.cap * 2).max(os::OS_PAGE_SIZE / size);
        let Some(bytes) = new_cap.checked_mul(size) else {
            return false;
        };
        let bytes = bytes.next_multiple_of(os::OS_PAGE_SIZE);
        let p = os::reserve(bytes, os::OS_PAGE_SIZE) as *mut T;
        if p.is_null() {
            return false;
        }
        if !self.ptr.is_null() {
            // SAFETY: both ranges are ours and distinct; `len` elements are initialised.
            unsafe {
                ptr::copy_nonoverlapping(self.ptr, p, self.len);
                os::release(self.ptr.cast(), self.reserved_bytes());
            }
        }
        self.ptr = p;
        self.cap = bytes / size;
        true
    }

    fn reserved_bytes(&self) -> usize {
        (self.cap * core::mem::size_of::<T>().max(1)).next_multiple_of(os::OS_PAGE_SIZE)
    }

    /// Appends `v`. False (and nothing appended) if out of memory.
    pub fn push(&mut self, v: T) -> bool {
        if self.len == self.cap && !self.grow_to(self.len + 1) {
            return false;
        }
        // SAFETY: `len < cap`, inside our reservation.
        unsafe { self.ptr.add(self.len).write(v) };
        self.len += 1;
        true
    }

    /// Appends every element of `s`. False (and nothing appended) if out of memory.
    pub fn extend_from_slice(&mut self, s: &[T]) -> bool {
        if !self.grow_to(self.len + s.len()) {
            return false;
        }
        // SAFETY: room for `s.len()` more elements; `s` is not inside our spare capacity.
        unsafe { ptr::copy_nonoverlapping(s.as_ptr(), self.ptr.add(self.len), s.len()) };
        self.len += s.len();
        true
    }

    pub fn as_slice(&self) -> &[T] {
        if self.ptr.is_null() {
            return &[];
        }
        // SAFETY: `len` initialised elements at `ptr`.
        unsafe { core::slice::from_raw_parts(self.ptr, self.len) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [T] {
        if self.ptr.is_null() {
            return &mut [];
        }
        // SAFETY: as above, and `&mut self` makes the access exclusive.
        unsafe { core::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl<T: Copy> Default for MapVec<T> {
    fn default() -> Self {
        MapVec::new()
    }
}

impl<T: Copy> Drop for MapVec<T> {
    fn drop(&mut self) {
        if !self.ptr.is_null() {
            // SAFETY: our reservation, no longer referenced.
            unsafe { os::release(self.ptr.cast(), self.reserved_bytes()) };
        }
    }
}

impl<T: Copy> core::ops::Deref for MapVec<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        self.as_slice()
    }
}

impl<T: Copy> core::ops::DerefMut for MapVec<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        self.as_mut_slice()
    }
}

impl core::fmt::Write for MapVec<u8> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        if self.extend_from_slice(s.as_bytes()) {
            Ok(())
        } else {
            Err(core::fmt::Error)
        }
    }
}
