//! # tweetflow-tasks
//!
//! The task plugins shipped with tweetflow. [`register_all`] adds every type to a registry.
//!
//! | type      | does                                                            |
//! |-----------|-----------------------------------------------------------------|
//! | `command` | runs a program with args, env and working dir                  |
//! | `noop`    | does nothing (placeholders, joins, engine benchmarks)           |

pub mod command;
pub mod noop;

use tweetflow_engine::Registry;

/// Registers every task type of this crate.
pub fn register_all(registry: &mut Registry) {
    registry.register(command::Command).register(noop::Noop);
}

/// A registry with every built-in task type.
pub fn default_registry() -> Registry {
    let mut registry = Registry::new();
    register_all(&mut registry);
    registry
}
