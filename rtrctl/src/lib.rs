//! rtrctl: the command-line client for routerd's gRPC API.

#![forbid(unsafe_code)]

pub mod cli;
pub mod commands;
pub mod connect;
pub mod error;
pub mod output;
pub mod private_file;
pub mod progress;
