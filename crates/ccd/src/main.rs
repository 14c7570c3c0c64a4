//! The `ccd` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod agent;
mod api;
mod controller;
mod doctor;
mod events;
mod gcp_services;
mod guest;
mod localcloud;
mod logging;
mod logs;
mod metrics;
mod notifications;
mod observe;
mod plan;
mod reconcilers;
mod remote;
mod rollout;
mod services;
mod sync;
mod target;
mod token;
mod up;
mod validate;

#[derive(Debug, Parser)]
#[command(
    name = "ccd",
    version,
    about = "Deploy apps onto Compute Engine, or ccd's local cloud, from spec files"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check spec files; prints FILE:LINE:COL: field: problem for each mistake. Exit 1 if any.
    Validate {
        /// Spec files, or folders whose *.yaml and *.yml files are checked.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Print the JSON Schema of the app spec (also at specs/schema/app.v1.json).
    Schema,
    /// Serve ccd's local cloud: the Compute Engine API on this machine.
    Localcloud(localcloud::Args),
    /// Everything on this machine: the controller, the local cloud and the specs in DIR/specs.
    Up(up::Args),
    /// The production controller: specs in a bucket, apps on Compute Engine.
    Controller(controller::Args),
    /// The agent on every instance: health checks, resource figures, restarts (started by the startup script).
    Agent(agent::Args),
    /// What the controller did and why, newest last.
    Events(observe::EventsArgs),
    /// Each app's status, as a table or as data.
    Status(observe::StatusArgs),
    /// An app's rollout (status), or an operator's say over it (pause, resume, promote, abort).
    Rollout(rollout::Args),
    /// What a spec would change, resource by resource, and its rollout schedule. Changes nothing.
    Plan(plan::Args),
    /// Whether the project, network, permissions and store are ready for `ccd controller --config FILE`.
    Doctor(doctor::Args),
    /// Put a git commit's spec files into the store: only what changed, deletions with --prune.
    Sync(sync::Args),
    /// Each app's services (databases, cache, storage, logs) and their state; `env APP` prints
    /// the variables an app receives, values included.
    Services(services::Args),
    /// What an app's instances wrote (its spec's services.logs), also after they are gone.
    Logs(logs::Args),
    /// Tokens for the REST API: `create --scope read|deploy|admin [--apps PREFIX]`.
    Token(token::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate { paths } => validate::run(&paths),
        Command::Schema => {
            #[allow(clippy::print_stdout)] // the command's output
            {
                print!("{}", ccd_spec::app_schema_json());
            }
            ExitCode::SUCCESS
        }
        Command::Localcloud(args) => localcloud::run(args),
        Command::Up(args) => up::run(args),
        Command::Controller(args) => controller::run(args),
        Command::Agent(args) => agent::run(args),
        Command::Events(args) => observe::events(args),
        Command::Status(args) => observe::status(args),
        Command::Rollout(args) => rollout::run(args),
        Command::Plan(args) => plan::run(args),
        Command::Doctor(args) => doctor::run(args),
        Command::Sync(args) => sync::run(args),
        Command::Services(args) => services::run(args),
        Command::Logs(args) => logs::run(args),
        Command::Token(args) => token::run(args),
    }
}
