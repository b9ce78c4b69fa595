//! One plugin running: its store (its memory, limits and deadline) and the calls into it. A call
//! that traps, runs past its deadline or outgrows its limits stops the plugin: the instance is
//! dropped (wasm state after a trap cannot be trusted), the reason reported, and the plugin
//! stays stopped until restarted, which instantiates it afresh.

use std::time::Instant;

use wasmtime::{Store, Trap};

use super::bindings::partyline::plugin::types::Event;
use super::bindings::{Plugin, PluginPre};
use super::budget::Budget;
use super::budget::DEADLINE_TICKS;
use super::host_api::{Counters, HostState};
use super::permission::Permission;

pub(crate) struct Sandbox {
    pre: PluginPre<HostState>,
    store: Store<HostState>,
    /// `None` while stopped.
    plugin: Option<Plugin>,
    config: Vec<(String, String)>,
    /// Why it was stopped last, if it is.
    pub(crate) stopped: Option<String>,
}

/// What went wrong with a call.
#[derive(Debug, PartialEq, Eq)]
pub enum CallError {
    /// The plugin is stopped (now, or before): the reason.
    Stopped(String),
    /// The plugin said no (its `handle` or `init` returned an error); it keeps running.
    Plugin(String),
}

impl Sandbox {
    /// Instantiates the plugin and runs its `init`.
    pub(crate) fn start(
        pre: PluginPre<HostState>,
        state: HostState,
        config: Vec<(String, String)>,
    ) -> (Self, Result<(), CallError>) {
        let store = Store::new(pre.engine(), state);
        let mut sandbox = Self { pre, store, plugin: None, config, stopped: None };
        let started = sandbox.instantiate();
        (sandbox, started)
    }

    /// A fresh instance of the plugin; its storage and party view are kept, and its grants
    /// unless new ones are given.
    pub(crate) fn restart(self, grants: Option<Vec<Permission>>) -> (Self, Result<(), CallError>) {
        let mut state = self.store.into_data();
        state.limits = Default::default();
        if let Some(grants) = grants {
            state.grants = grants.into_iter().collect();
        }
        Self::start(self.pre, state, self.config)
    }

    fn instantiate(&mut self) -> Result<(), CallError> {
        self.store.limiter(|s| &mut s.limits);
        self.store.epoch_deadline_callback(|store| Ok(store.data().budget.check()));
        self.store.data_mut().budget = Budget::start();
        self.store.set_epoch_deadline(DEADLINE_TICKS);
        match self.pre.instantiate(&mut self.store) {
            Ok(plugin) => self.plugin = Some(plugin),
            Err(e) => return Err(self.stop(&e)),
        }
        let config = self.config.clone();
        self.call(|plugin, store| plugin.partyline_plugin_guest().call_init(store, &config))
    }

    /// Hands the plugin one event.
    /// When the user asked for something (an action) and the plugin says no, the user is told
    /// why, as a failed outcome.
    pub(crate) fn handle(&mut self, event: &Event) -> Result<(), CallError> {
        let result = self.call(|plugin, store| plugin.partyline_plugin_guest().call_handle(store, event));
        if let (Event::Action(_), Err(CallError::Plugin(said))) = (event, &result) {
            let _ = self.store.data_mut().say(said.clone(), Some(crate::events::Outcome::Failed));
        }
        result
    }

    /// The next timer that is due, if any (fired: removed).
    pub(crate) fn due_timer(&mut self, now: Instant) -> Option<u64> {
        self.store.data_mut().timers.fire(now)
    }

    /// When the thread must wake without an event: the next timer, or a held panel's retry.
    pub(crate) fn next_wake(&self) -> Option<Instant> {
        let data = self.store.data();
        [data.timers.next_due(), data.held_panel_due()].into_iter().flatten().min()
    }

    /// Shows a panel the rate held back, once it allows.
    pub(crate) fn flush_panel(&mut self) {
        self.store.data_mut().flush_panel();
    }

    pub(crate) fn counters(&self) -> Counters {
        self.store.data().counters
    }

    fn call(
        &mut self,
        f: impl FnOnce(&Plugin, &mut Store<HostState>) -> wasmtime::Result<Result<(), String>>,
    ) -> Result<(), CallError> {
        let Some(plugin) = &self.plugin else {
            return Err(CallError::Stopped(self.stopped.clone().unwrap_or_default()));
        };
        self.store.data_mut().budget = Budget::start();
        self.store.set_epoch_deadline(DEADLINE_TICKS);
        match f(plugin, &mut self.store) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(said)) => Err(CallError::Plugin(said)),
            Err(e) => Err(self.stop(&e)),
        }
    }

    /// Stops the plugin after `error`, saying why in words a user understands.
    fn stop(&mut self, error: &wasmtime::Error) -> CallError {
        self.plugin = None;
        let trap = error.downcast_ref::<Trap>().copied();
        let refused = self.store.data_mut().limits.refused.take();
        let reason = match (trap, refused) {
            (Some(Trap::Interrupt), _) => {
                format!("it ran past its {} ms deadline", super::budget::CPU.as_millis())
            }
            (Some(Trap::StackOverflow), _) => "it overflowed its stack (too deep a recursion)".to_owned(),
            (_, Some(refused)) => refused,
            (Some(trap), None) => format!("it crashed ({trap})"),
            (None, None) => format!("{error:#}"),
        };
        let plugin = self.store.data().plugin.clone();
        tracing::warn!(plugin, "plugin stopped: {reason}");
        self.store.data_mut().stopped(reason.clone());
        self.stopped = Some(reason.clone());
        CallError::Stopped(reason)
    }
}
