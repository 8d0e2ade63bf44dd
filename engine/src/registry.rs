//! The registry of task types, keyed by the name pipelines use in `type:`, and of the
//! top-level sections plugins own (see [`crate::section`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::executor::{DynExecutor, Erased as ErasedExecutor, Executor};
use crate::expect::ExpectChecker;
use crate::section::{self, DynSection, Section};
use crate::task::{DynTask, Erased, Task};

/// Maps task type names to their implementations, and section names to their schemas.
#[derive(Clone, Default)]
pub struct Registry {
    tasks: BTreeMap<&'static str, Arc<dyn DynTask>>,
    sections: Vec<Arc<dyn DynSection>>,
    executors: BTreeMap<&'static str, Arc<dyn DynExecutor>>,
    expect_checker: Option<ExpectChecker>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a task type; a later registration of the same name replaces the earlier one.
    pub fn register<T: Task>(&mut self, task: T) -> &mut Self {
        self.tasks.insert(T::TYPE, Arc::new(Erased(task)));
        self
    }

    /// The task type named `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn DynTask>> {
        self.tasks.get(name)
    }

    /// Every registered type, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn DynTask>> {
        self.tasks.values()
    }

    /// The registered type names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.tasks.keys().copied()
    }

    /// Registers a top-level section; a later registration of the same name replaces the
    /// earlier one.
    pub fn register_section<S: Section>(&mut self) -> &mut Self {
        self.sections.retain(|s| s.name() != S::NAME);
        self.sections.push(Arc::new(section::Erased::<S>::new()));
        self
    }

    /// The section named `name`.
    pub fn section(&self, name: &str) -> Option<&Arc<dyn DynSection>> {
        self.sections.iter().find(|s| s.name() == name)
    }

    /// Every registered section, in registration order.
    pub fn sections(&self) -> impl Iterator<Item = &Arc<dyn DynSection>> {
        self.sections.iter()
    }
}

impl Registry {
    /// Registers an executor (chosen with `executor: { NAME: ... }`); a later registration of
    /// the same name replaces the earlier one.
    pub fn register_executor<E: Executor>(&mut self, executor: E) -> &mut Self {
        self.executors
            .insert(E::NAME, Arc::new(ErasedExecutor(executor)));
        self
    }

    /// The executor named `name`.
    pub fn executor(&self, name: &str) -> Option<&Arc<dyn DynExecutor>> {
        self.executors.get(name)
    }

    /// The registered executor names, sorted.
    pub fn executor_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.executors.keys().copied()
    }
}

impl Registry {
    /// Sets the checker of `expect:` SQL used at load time (the plugin that evaluates
    /// expectations registers it; without one, only the shape of `expect:` is checked).
    pub fn set_expect_checker(&mut self, checker: ExpectChecker) -> &mut Self {
        self.expect_checker = Some(checker);
        self
    }

    /// The checker of `expect:` SQL, if a plugin registered one.
    pub fn expect_checker(&self) -> Option<&ExpectChecker> {
        self.expect_checker.as_ref()
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.names())
            .entries(self.sections.iter().map(|s| s.name()))
            .entries(self.executor_names())
            .finish()
    }
}
