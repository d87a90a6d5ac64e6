//! Every Python shape the core builds or reads, in one place: scopes, the messages
//! `receive()` returns and `send()` takes, the server's settings, and the arguments of the
//! core's calls into Python.

pub mod calls;
pub mod receive;
pub mod scope;
pub mod send;
pub mod settings;
