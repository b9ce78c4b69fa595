//! A plugin's thread: it takes events from the plugin's bounded queue, fires its timers, and
//! restarts it when asked. Calls run here, on a stack large enough for the wasm stack limit,
//! so a plugin never holds up the session or another plugin for longer than its deadline.

use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result};

use super::bindings::partyline::plugin::types::Event;
use super::fetch::Deliver;
use super::host_api::Counters;
use super::permission::Permission;
use super::runtime::THREAD_STACK;
use super::sandbox::{CallError, Sandbox};

/// Events waiting for one plugin; more are dropped (and counted).
pub(crate) const QUEUE: usize = 256;

/// A plugin's queue; the sender also hands it its HTTP answers (see [`deliver`]).
pub(crate) fn queue() -> (SyncSender<Input>, Receiver<Input>) {
    std::sync::mpsc::sync_channel(QUEUE)
}

/// Events into the queue of `inputs`, for HTTP answers.
pub(crate) fn deliver(inputs: &SyncSender<Input>) -> Deliver {
    let inputs = inputs.clone();
    Arc::new(move |event| inputs.try_send(Input::Event(event)).is_ok())
}

pub(crate) enum Input {
    Event(Event),
    /// Start afresh, with these grants from now on if given.
    Restart(Option<Vec<Permission>>),
}

/// What the thread reports back: the plugin's counters, and whether it is stopped (why).
#[derive(Default, Clone, Debug)]
pub struct Status {
    pub counters: Counters,
    pub stopped: Option<String>,
    /// Events dropped because its queue was full.
    pub dropped_events: u64,
}

pub(crate) struct PluginThread {
    inputs: SyncSender<Input>,
    status: Arc<Mutex<Status>>,
}

impl PluginThread {
    /// Starts a plugin on a thread of its own with `start` (which makes its sandbox and runs its
    /// `init`, there: on this thread's stack, off the caller's), then takes inputs from `queue`
    /// (made by [`queue`]).
    pub(crate) fn spawn(
        id: &str,
        start: impl FnOnce() -> (Sandbox, Result<(), CallError>) + Send + 'static,
        queue: (SyncSender<Input>, Receiver<Input>),
    ) -> Result<Self> {
        let (inputs, rx) = queue;
        let status = Arc::new(Mutex::new(Status::default()));
        let shared = status.clone();
        std::thread::Builder::new()
            .name(format!("plugin-{id}"))
            .stack_size(THREAD_STACK)
            .spawn(move || {
                let (sandbox, started) = start();
                report(&shared, &sandbox, &started);
                run(sandbox, &rx, &shared);
            })
            .context("cannot start a plugin thread")?;
        Ok(Self { inputs, status })
    }

    /// Queues an event; false if the queue was full (the event is dropped and counted).
    pub(crate) fn send(&self, event: Event) -> bool {
        match self.inputs.try_send(Input::Event(event)) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                lock(&self.status).dropped_events += 1;
                false
            }
        }
    }

    /// Restarts the plugin, with new grants if given (its `init` then runs with them).
    pub(crate) fn restart(&self, grants: Option<Vec<Permission>>) {
        let _ = self.inputs.try_send(Input::Restart(grants));
    }

    pub(crate) fn status(&self) -> Status {
        lock(&self.status).clone()
    }
}

fn lock(status: &Mutex<Status>) -> std::sync::MutexGuard<'_, Status> {
    status.lock().unwrap_or_else(|p| p.into_inner())
}

fn report(status: &Mutex<Status>, sandbox: &Sandbox, result: &Result<(), CallError>) {
    let mut s = lock(status);
    s.counters = sandbox.counters();
    s.stopped = sandbox.stopped.clone();
    if let Err(CallError::Plugin(said)) = result {
        tracing::debug!("plugin said: {said}");
    }
}

fn run(mut sandbox: Sandbox, rx: &Receiver<Input>, status: &Mutex<Status>) {
    loop {
        let input = match sandbox.next_wake() {
            Some(at) => match rx.recv_timeout(at.saturating_duration_since(Instant::now())) {
                Ok(input) => Some(input),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            },
            None => match rx.recv() {
                Ok(input) => Some(input),
                Err(_) => return,
            },
        };
        match input {
            Some(Input::Event(event)) => {
                let result = sandbox.handle(&event);
                report(status, &sandbox, &result);
            }
            Some(Input::Restart(grants)) => {
                let result;
                (sandbox, result) = sandbox.restart(grants);
                report(status, &sandbox, &result);
            }
            None => {}
        }
        while let Some(id) = sandbox.due_timer(Instant::now()) {
            let result = sandbox.handle(&Event::Timer(id));
            report(status, &sandbox, &result);
        }
        sandbox.flush_panel();
    }
}
