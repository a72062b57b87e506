//! The desktop app's model, shared by its resident tray process and its window: the
//! [`protocol`] every face speaks, the [`service::Service`] that carries requests out with the
//! core, and the [`control`] socket that connects the window process to the tray process.
//! Knows nothing of any GUI toolkit.

pub mod control;
pub mod demo;
pub mod desktop;
mod error;
pub mod intent;
mod listening;
pub mod protocol;
pub mod service;
pub mod settings;
mod status;
mod views;

pub use desktop::Desktop;
pub use service::{Service, ServiceConfig};
