//! Ctrl-C during a run: the running jobs are stopped (as a cancelled ticket stops them, at
//! their next chunk or candidate-loop check), nothing is written, and the process exits 130;
//! a second Ctrl-C ends it at once (the default action, restored by the first).

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use meridian::CancelToken;

/// Set by the signal handler; read by the watcher thread (a handler may only touch atomics).
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, SeqCst);
}

/// Cancels a token on Ctrl-C while it lives.
pub struct Watch {
    done: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Installs the handler and starts watching for it on `token`'s behalf.
pub fn watch(token: &CancelToken) -> Watch {
    // SAFETY: `action` is a zeroed sigaction with only the handler and flags set; the handler
    // stores to an atomic, which is async-signal-safe; SA_RESETHAND puts the default action
    // back after the first signal, so a second Ctrl-C ends the process as usual.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigint as extern "C" fn(libc::c_int) as libc::sighandler_t;
        action.sa_flags = libc::SA_RESETHAND | libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGINT, &action, std::ptr::null_mut());
    }
    let done = Arc::new(AtomicBool::new(false));
    let (token, seen) = (token.clone(), done.clone());
    let thread = std::thread::Builder::new()
        .name("meridian-ctrl-c".into())
        .spawn(move || {
            while !seen.load(SeqCst) {
                if INTERRUPTED.load(SeqCst) {
                    token.cancel();
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
        .ok();
    Watch { done, thread }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.done.store(true, SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
