//! Worker threads that make instances ahead of their invocations and drop finished stores,
//! so that the thread running a simulation's invocations (in order) mostly just calls.
//!
//! Nothing a worker does is observable by an app or reaches an output: it instantiates a
//! component from its `InstancePre` into a fresh `Store` that holds no part of the world
//! (no storage, no Confluence, no ledger, no randomness yet), or frees a store whose
//! invocation is over. Everything an invocation can observe is put into its store by the
//! invoking thread just before the call.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

type Task = Box<dyn FnOnce() + Send>;

/// A fixed set of worker threads taking tasks from one queue.
pub(crate) struct Pool {
    tx: Option<mpsc::Sender<Task>>,
    workers: Vec<JoinHandle<()>>,
}

impl Pool {
    pub(crate) fn new(workers: usize) -> Pool {
        let (tx, rx) = mpsc::channel::<Task>();
        let rx = Arc::new(Mutex::new(rx));
        let workers = (0..workers)
            .filter_map(|i| {
                let rx = rx.clone();
                std::thread::Builder::new()
                    .name(format!("signoff-sim-worker-{i}"))
                    .spawn(move || {
                        loop {
                            // The lock is held only while waiting for the next task.
                            let task = match rx.lock() {
                                Ok(rx) => rx.recv(),
                                Err(_) => return,
                            };
                            match task {
                                Ok(task) => task(),
                                Err(_) => return,
                            }
                        }
                    })
                    .ok()
            })
            .collect();
        Pool {
            tx: Some(tx),
            workers,
        }
    }

    /// Runs `task` on a worker. A task that cannot be queued (no worker could be started) is
    /// dropped; callers treat that as "not done ahead".
    pub(crate) fn spawn(&self, task: impl FnOnce() + Send + 'static) {
        if self.workers.is_empty() {
            return;
        }
        if let Some(tx) = &self.tx {
            let _ = tx.send(Box::new(task));
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.tx.take();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}
