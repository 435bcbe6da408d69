//! `xmalloc-test`: Lever & Boreham's producer/consumer test (USENIX 2000), as
//! run by mimalloc-bench: `xmalloc-test -w P -t 5 -s 64`
//! (bench/xmalloc-test/xmalloc-test.c).
//!
//! P producer threads allocate batches of 4096 64-byte objects (the batch
//! record itself, 32 KiB, is allocated too) and fill each object; they push
//! the batches on a shared, mutex-protected stack of at most 100 batches.
//! P consumer threads pop batches and free every object, so all frees are
//! cross-thread. After 5 s (quick: 1 s) everything stops; the number reported
//! is the original's `rtime = 100 / (million frees per second)`, smaller is
//! better. Its peak RSS means little: a faster allocator fills the stack more.
//!
//! Consumers check the first and last byte of each object before freeing it.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::{alloc, bytes, Params};

const OBJECT_SIZE: usize = 64;
const OBJECTS_PER_BATCH: usize = 4096;
const BATCH_LIMIT: usize = 100;

struct Batch {
    next: *mut Batch,
    objects: [*mut u8; OBJECTS_PER_BATCH],
}

const BATCH: Layout = Layout::new::<Batch>();

/// The shared LIFO of full batches.
struct Stack {
    head: *mut Batch,
    count: usize,
}

// Batches are owned by whoever holds the lock (or popped them).
unsafe impl Send for Stack {}

struct Shared {
    stack: Mutex<Stack>,
    not_empty: Condvar,
    not_full: Condvar,
    done: AtomicBool,
}

impl Shared {
    fn done(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }

    /// # Safety
    /// `batch` is a live batch that the caller owns alone and hands over to the stack.
    unsafe fn push(&self, batch: *mut Batch) {
        let mut stack = self.stack.lock().unwrap();
        while stack.count >= BATCH_LIMIT && !self.done() {
            stack = self.not_full.wait(stack).unwrap();
        }
        // SAFETY: the caller owns the live batch alone (this function's contract); it stays
        // live until a consumer pops it, and we hold the lock.
        unsafe { (*batch).next = stack.head };
        stack.head = batch;
        stack.count += 1;
        self.not_empty.notify_one();
    }

    fn pop(&self) -> Option<*mut Batch> {
        let mut stack = self.stack.lock().unwrap();
        while stack.head.is_null() && !self.done() {
            stack = self.not_empty.wait(stack).unwrap();
        }
        let batch = stack.head;
        if batch.is_null() {
            return None;
        }
        // SAFETY: `batch` is the non-null stack head; batches on the stack are live (freed only
        // after being popped) and their links are only touched under the lock we hold.
        stack.head = unsafe { (*batch).next };
        stack.count -= 1;
        self.not_full.notify_one();
        Some(batch)
    }

    fn stop(&self) {
        // Set the flag under the lock so no waiter can miss the wake-up.
        let _stack = self.stack.lock().unwrap();
        self.done.store(true, Ordering::Release);
        self.not_empty.notify_all();
        self.not_full.notify_all();
    }
}

pub fn run<A: GlobalAlloc + Sync>(a: &A, p: &Params) -> Result<f64, String> {
    let run_time = Duration::from_secs(if p.quick { 1 } else { 5 });
    let shared = Shared {
        stack: Mutex::new(Stack {
            head: std::ptr::null_mut(),
            count: 0,
        }),
        not_empty: Condvar::new(),
        not_full: Condvar::new(),
        done: AtomicBool::new(false),
    };

    let begin = Instant::now();
    let (frees, corrupt, elapsed) = thread::scope(|s| {
        let consumers: Vec<_> = (0..p.threads)
            // SAFETY: only `produce` pushes onto `shared`, with full batches allocated through
            // this same `a`, so every batch a consumer pops is one it may free through `a`.
            .map(|_| s.spawn(|| unsafe { consume(a, &shared) }))
            .collect();
        let producers: Vec<_> = (0..p.threads)
            // SAFETY: the consumers and the cleanup below free every pushed batch through this
            // same `a`, as `produce` requires.
            .map(|_| s.spawn(|| unsafe { produce(a, &shared) }))
            .collect();
        thread::sleep(run_time);
        shared.stop();
        producers.into_iter().for_each(|t| t.join().unwrap());
        let (mut frees, mut corrupt) = (0u64, 0u64);
        for t in consumers {
            let (f, c) = t.join().unwrap();
            frees += f;
            corrupt += c;
        }
        (frees, corrupt, begin.elapsed().as_secs_f64())
    });

    // Free what is left on the stack (not counted).
    let mut batch = shared.stack.into_inner().unwrap().head;
    while !batch.is_null() {
        // SAFETY: the scope joined every thread, so this stack is ours alone; each batch on it
        // is a full `produce` batch from `a`, and `next` is read before it is freed, once.
        unsafe {
            let next = (*batch).next;
            free_batch(a, batch);
            batch = next;
        }
    }

    if corrupt != 0 {
        return Err(format!("{corrupt} objects lost their contents"));
    }
    if frees == 0 {
        return Err("no objects were freed".into());
    }
    let mfree_per_sec = frees as f64 / elapsed * 1e-6;
    Ok(100.0 / mfree_per_sec)
}

/// # Safety
/// Whoever pops the batches this pushes onto `shared` must free them through this
/// same `a` (`consume` and `run`'s cleanup do), with [`free_batch`].
unsafe fn produce<A: GlobalAlloc>(a: &A, shared: &Shared) {
    while !shared.done() {
        let batch = alloc(a, BATCH) as *mut Batch;
        let objects = &raw mut (*batch).objects;
        for i in 0..OBJECTS_PER_BATCH {
            let p = alloc(a, bytes(OBJECT_SIZE));
            p.write_bytes(i as u8, OBJECT_SIZE.min(128));
            (*objects)[i] = p;
        }
        // SAFETY: the batch was just allocated and filled here, and nobody else has it.
        unsafe { shared.push(batch) };
    }
}

/// Returns (objects freed, objects found corrupt).
///
/// # Safety
/// Every batch pushed onto `shared` must be a full batch from [`produce`] with this
/// same `a`, owned by the stack until popped.
unsafe fn consume<A: GlobalAlloc>(a: &A, shared: &Shared) -> (u64, u64) {
    let (mut frees, mut corrupt) = (0, 0);
    while !shared.done() {
        if let Some(batch) = shared.pop() {
            corrupt += free_batch(a, batch);
            frees += OBJECTS_PER_BATCH as u64;
        }
    }
    (frees, corrupt)
}

/// Frees a batch and its objects; returns how many objects were corrupt.
///
/// # Safety
/// `batch` must be a full batch from [`produce`] with the same `a` (every object
/// allocated and filled), owned by the caller, not freed before and not used after.
unsafe fn free_batch<A: GlobalAlloc>(a: &A, batch: *mut Batch) -> u64 {
    let mut corrupt = 0;
    for (i, &p) in (*batch).objects.iter().enumerate() {
        corrupt += u64::from(p.read() != i as u8 || p.add(OBJECT_SIZE - 1).read() != i as u8);
        a.dealloc(p, bytes(OBJECT_SIZE));
    }
    a.dealloc(batch as *mut u8, BATCH);
    corrupt
}
