//! The IO runtime: one tokio thread by default (a current-thread runtime on its own OS
//! thread, which skips the work-stealing machinery a single worker never uses), or a
//! multi-threaded runtime when more IO threads are asked for.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::runtime::{Builder, Handle, Runtime};
use tokio::sync::oneshot;

use crate::common::allocator;

enum Kind {
    Single {
        stop: oneshot::Sender<()>,
        thread: JoinHandle<()>,
    },
    Multi(Runtime),
}

/// A running IO runtime.
pub struct IoRuntime {
    handle: Handle,
    kind: Kind,
}

impl IoRuntime {
    /// Start `threads` IO threads (at least one). `on_unpark` runs each time a thread wakes
    /// up; `on_park` each time one is about to go idle and once more when it stops, so work
    /// deferred to "the next park" is never stranded.
    pub fn start(
        threads: usize,
        on_unpark: fn(),
        on_park: impl Fn() + Send + Sync + 'static,
    ) -> io::Result<IoRuntime> {
        let on_park = Arc::new(on_park);
        if threads > 1 {
            let on_stop = on_park.clone();
            let runtime = Builder::new_multi_thread()
                .worker_threads(threads)
                .thread_name("sandman-io")
                .on_thread_unpark(on_unpark)
                .on_thread_park({
                    let on_park = on_park.clone();
                    move || on_park()
                })
                .on_thread_stop(move || on_stop())
                .enable_all()
                .build()?;
            runtime.spawn(give_back_memory());
            return Ok(IoRuntime {
                handle: runtime.handle().clone(),
                kind: Kind::Multi(runtime),
            });
        }
        let runtime = Builder::new_current_thread()
            .on_thread_unpark(on_unpark)
            .on_thread_park({
                let on_park = on_park.clone();
                move || on_park()
            })
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("sandman-io".into())
            .spawn(move || {
                runtime.block_on(async {
                    tokio::select! {
                        _ = stopped => {}
                        () = give_back_memory() => {}
                    }
                });
                on_park();
                // Whatever is left (connections the graceful timeout gave up on) is dropped.
                runtime.shutdown_timeout(Duration::from_secs(1));
                on_park();
            })?;
        Ok(IoRuntime {
            handle,
            kind: Kind::Single { stop, thread },
        })
    }

    /// Run a task on the IO threads (callable from any thread).
    pub fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.handle.spawn(future);
    }

    /// Stop the IO threads and wait for them (bounded).
    pub fn shutdown(self) {
        match self.kind {
            Kind::Single { stop, thread } => {
                let _ = stop.send(());
                let _ = thread.join();
            }
            Kind::Multi(runtime) => runtime.shutdown_timeout(Duration::from_secs(1)),
        }
    }
}

/// Let the allocator give freed memory back every so often, even while nothing else runs:
/// after a spike of connections closes, RSS comes back down (docs/memory.md).
async fn give_back_memory() {
    let mut tick = tokio::time::interval(allocator::COLLECT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        allocator::collect();
    }
}
