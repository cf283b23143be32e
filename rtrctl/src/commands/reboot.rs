//! `rtrctl reboot` and `rtrctl poweroff`: the appliance restarts or powers off (asked first on a terminal).

use std::io::{BufRead, IsTerminal, Write};

use routerd_proto::v1 as pb;

use crate::{
    cli::Cli,
    error::CliError,
    output::{self, Format},
};

pub async fn run(cli: &Cli, power_off: bool, yes: bool) -> Result<(), CliError> {
    let what = if power_off { "power off" } else { "restart" };
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err(CliError::Usage(format!("not asking without a terminal: pass --yes to {what} the router")));
        }
        let question = if power_off {
            "Power the router off? It stays off until someone presses its power button, and the network is down \
             until then. [y/N] "
        } else {
            "Restart the router? The network is down until it is back (about a minute). [y/N] "
        };
        eprint!("{question}");
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        let _ = std::io::stdin().lock().read_line(&mut answer);
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Err(CliError::Usage("nothing done".into()));
        }
    }
    let mut client = pb::system_service_client::SystemServiceClient::new(super::connect(cli).await?);
    client
        .reboot(pb::RebootRequest { power_off })
        .await
        .map_err(|status| CliError::from_status(if power_off { "poweroff" } else { "reboot" }, &status))?;
    match cli.output {
        Format::Json => output::print_json(&serde_json::json!({ "power_off": power_off, "accepted": true })),
        Format::Table => {
            println!("the router will {what} now");
            Ok(())
        }
    }
}
