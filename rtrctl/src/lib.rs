//! rtrctl: the command-line client for routerd's gRPC API.

pub mod cli;
pub mod commands;
pub mod connect;
pub mod error;
pub mod output;
pub mod private_file;
pub mod progress;
