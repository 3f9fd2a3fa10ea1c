//! Model checks of the host-side ring protocol under every interleaving loom explores:
//! `RUSTFLAGS="--cfg loom" cargo test -p meridian-runtime --release --lib loom`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use loom::sync::Arc;
use loom::thread;

use super::{HeapMemory, Pop, PushError, Reaper, Ring};
use crate::doorbell::Doorbell;

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(f);
}

/// Pushes, yielding while the ring is full.
fn push(ring: &Ring<u32>, v: u32) {
    loop {
        match ring.try_push(v) {
            Ok(()) => return,
            Err(PushError::Full) => thread::yield_now(),
            Err(PushError::Closed) => panic!("closed"),
        }
    }
}

/// One producer, two consumers racing it and each other: every item is taken exactly
/// once, and its payload is the one written (loom's `UnsafeCell` flags any unsynchronised
/// slot access). Consumers try a bounded number of times instead of spinning, and the main
/// thread takes what is left, so the model stays finite.
#[test]
fn producer_and_two_consumers() {
    model(|| {
        let ring = Arc::new(Ring::<u32>::new(2, HeapMemory).unwrap());
        let taken = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
        ring.try_push(0).unwrap();
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let (ring, taken) = (ring.clone(), taken.clone());
                thread::spawn(move || {
                    for _ in 0..2 {
                        if let Pop::Item(v) = ring.try_pop() {
                            taken[v as usize].fetch_add(1, SeqCst);
                        }
                    }
                })
            })
            .collect();
        push(&ring, 1);
        for c in consumers {
            c.join().unwrap();
        }
        while let Pop::Item(v) = ring.try_pop() {
            taken[v as usize].fetch_add(1, SeqCst);
        }
        for t in taken.iter() {
            assert_eq!(t.load(SeqCst), 1);
        }
    });
}

/// Two executors publish a completion each and reap; whoever finds the reaper busy leaves
/// its completion to the holder. Once both return, nothing is left unreaped.
#[test]
fn completions_are_never_stranded() {
    model(|| {
        let ring = Arc::new(Ring::<u32>::new(2, HeapMemory).unwrap());
        let reaper = Arc::new(Reaper::new());
        let reaped = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..2)
            .map(|i| {
                let (ring, reaper, reaped) = (ring.clone(), reaper.clone(), reaped.clone());
                thread::spawn(move || {
                    push(&ring, i);
                    reaper.drain(&ring, |_| {
                        reaped.fetch_add(1, SeqCst);
                    });
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(reaped.load(SeqCst), 2);
        assert_eq!(ring.try_pop(), Pop::Empty);
    });
}

/// Shutdown racing a producer: a push either lands before the close and is drained, or
/// fails with `Closed`; a consumer that sees `Drained` has taken every landed item.
#[test]
fn shutdown_resolves_every_published_item() {
    model(|| {
        let ring = Arc::new(Ring::<u32>::new(2, HeapMemory).unwrap());
        let producer = {
            let ring = ring.clone();
            thread::spawn(move || (0..2).filter(|&v| ring.try_push(v).is_ok()).count())
        };
        let consumer = {
            let ring = ring.clone();
            thread::spawn(move || {
                let mut n = 0;
                loop {
                    match ring.try_pop() {
                        Pop::Item(_) => n += 1,
                        Pop::Empty => thread::yield_now(),
                        Pop::Drained => return n,
                    }
                }
            })
        };
        ring.close();
        let pushed = producer.join().unwrap();
        let popped = consumer.join().unwrap();
        assert_eq!(pushed, popped);
    });
}

/// A worker that finds the ring empty sleeps on the doorbell; a producer publishes and
/// rings. The worker always wakes (loom reports a deadlock otherwise) and takes the item.
#[test]
fn doorbell_never_loses_a_wakeup() {
    model(|| {
        let ring = Arc::new(Ring::<u32>::new(2, HeapMemory).unwrap());
        let bell = Arc::new(Doorbell::new());
        let worker = {
            let (ring, bell) = (ring.clone(), bell.clone());
            thread::spawn(move || loop {
                match ring.try_pop() {
                    Pop::Item(v) => return v,
                    _ => bell.sleep_unless(|| ring.has_item()),
                }
            })
        };
        ring.try_push(7).unwrap();
        bell.ring(false);
        assert_eq!(worker.join().unwrap(), 7);
    });
}
