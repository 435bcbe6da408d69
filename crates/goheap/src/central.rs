//! Central span lists, one per size class (Go's mcentral).
//!
//! A central list owns the spans that no thread cache owns: spans handed back by exiting
//! threads, and spans that came back to life after being parked full by one of them. It keeps
//!
//! - `partial`: spans with at least one free object (or remote frees waiting), guarded by the
//!   class's lock;
//! - `reclaim`: a lock-free stack onto which the first remote free into a parked, centrally
//!   owned full span pushes it (see [`crate::span`]). Draining it needs the lock.
//!
//! Full spans are on no list at all: they are parked, and they come back through `reclaim`.
//! That is what makes a free into a full span lock-free, and what lets central avoid ever
//! scanning full spans (Go's mcentral scans its unswept lists; with explicit frees there is no
//! need to).
//!
//! Lock order: a central lock may be taken while holding nothing, and the heap lock may be
//! taken while holding a central lock (to free an empty span), never the reverse.

use crate::lock::{Mutex, MutexGuard};

use crate::report;
use crate::sizeclass::NUM_CLASSES;
use crate::span::{next_in_stack, ListTag, Span, SpanList, SpanStack, CENTRAL_OWNER};

/// One size class's central list.
#[repr(align(64))]
pub struct Central {
    partial: Mutex<Partial>,
    reclaim: SpanStack,
}

struct Partial(SpanList);
// SAFETY: the list's spans are owned by whoever holds the mutex, which serialises all access.
unsafe impl Send for Partial {}

pub static CENTRAL: [Central; NUM_CLASSES] = [const {
    Central {
        partial: Mutex::new(Partial(SpanList::new())),
        reclaim: SpanStack::new(),
    }
}; NUM_CLASSES];

impl Central {
    /// The lock itself, for the fork handlers.
    pub(crate) fn raw(&self) -> &Mutex<impl Send> {
        &self.partial
    }

    fn lock(&self) -> MutexGuard<'_, Partial> {
        let g = self.partial.lock();
        // Spans pushed home since the last look now have free objects: list them.
        let mut s = self.reclaim.take_all();
        while !s.is_null() {
            // SAFETY: `s` came from our reclaim stack; we hold the lock, so we own it.
            let next = unsafe { next_in_stack(s) };
            // SAFETY: as above; a span on the reclaim stack is on no list.
            unsafe { g.0.push(s, ListTag::Partial) };
            s = next;
        }
        g
    }

    /// Takes a span with free objects (or remote frees waiting) and makes `owner` its owner.
    /// Null if there is none.
    pub fn take(&self, owner: usize) -> *mut Span {
        let g = self.lock();
        // SAFETY: we hold the lock, so we own the list and its spans.
        unsafe {
            let s = g.0.pop();
            if !s.is_null() {
                (*s).set_owner(owner);
            }
            s
        }
    }

    /// Hands over a span that has free objects.
    ///
    /// # Safety
    /// The caller owns `s`, which is on no list and not parked.
    pub unsafe fn put_partial(&self, s: *mut Span) {
        let g = self.lock();
        // SAFETY: caller's contract; the lock orders the hand-over.
        unsafe {
            (*s).set_owner(CENTRAL_OWNER);
            g.0.push(s, ListTag::Partial);
        }
        drop(g);
        // A remote free that raced with the hand-over (it read the old owner, so it did not
        // tell the scavenger) may have emptied the span: the scavenger must sweep.
        crate::scavenge_policy::central_freed();
    }

    /// Hands over a span with no free object: it is parked with this list's reclaim stack
    /// as its home.
    ///
    /// # Safety
    /// The caller owns `s`, which is on no list and not parked.
    pub unsafe fn put_full(&self, s: *mut Span) {
        let g = self.lock();
        // SAFETY: caller's contract; the central list is static, so it outlives the park.
        unsafe {
            (*s).set_owner(CENTRAL_OWNER);
            if !(*s).park(&self.reclaim) {
                g.0.push(s, ListTag::Partial);
            }
        }
        drop(g);
        // As in `put_partial`.
        crate::scavenge_policy::central_freed();
    }

    /// Collects remote frees in every partial span and frees the spans that are now empty
    /// (`release_memory`). Returns the number of spans freed.
    pub fn free_empty_spans(&self) -> usize {
        let g = self.lock();
        let mut freed = 0;
        let mut s = g.0.first();
        while !s.is_null() {
            // SAFETY: we hold the lock, so we own the list and its spans.
            unsafe {
                let next = (*s).link_next();
                if let Err(idx) = (*s).collect_remote() {
                    report::double_free((*s).base() + idx * (*s).elemsize());
                }
                if (*s).nfree() == (*s).nelems() {
                    g.0.remove(s);
                    crate::heap::free_small_span(s, None);
                    freed += 1;
                }
                s = next;
            }
        }
        freed
    }
}
