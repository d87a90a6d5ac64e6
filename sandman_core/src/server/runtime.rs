//! The IO runtime: one tokio thread by default (a current-thread runtime on its own OS
//! thread, which skips the work-stealing machinery a single worker never uses), or a
//! multi-threaded runtime when more IO threads are asked for.

use std::future::Future;
use std::io;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::runtime::{Builder, Handle, Runtime};
use tokio::sync::oneshot;

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
    /// Start `threads` IO threads (at least one).
    pub fn start(threads: usize) -> io::Result<IoRuntime> {
        if threads > 1 {
            let runtime = Builder::new_multi_thread()
                .worker_threads(threads)
                .thread_name("sandman-io")
                .enable_all()
                .build()?;
            return Ok(IoRuntime {
                handle: runtime.handle().clone(),
                kind: Kind::Multi(runtime),
            });
        }
        let runtime = Builder::new_current_thread().enable_all().build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("sandman-io".into())
            .spawn(move || {
                runtime.block_on(async {
                    let _ = stopped.await;
                });
                // Whatever is left (connections the graceful timeout gave up on) is dropped.
                runtime.shutdown_timeout(Duration::from_secs(1));
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
