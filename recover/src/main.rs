//! routerd-recover: reinstalls a router over PXE (see `routerd-recover --help`).

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = routerd_recover::serve::Args::parse();
    match routerd_recover::serve::run(args).await {
        Ok(message) => {
            println!("routerd-recover: installed: {message}");
            std::process::ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("routerd-recover: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
