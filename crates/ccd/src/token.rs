//! `ccd token create --scope S [--apps PREFIX]... (--data DIR | --config
//! FILE)`: a new API token for `ccd up`'s API or a controller's (its
//! `apiTokens` file), printed once (only its hash is kept).
#![allow(clippy::print_stdout, clippy::print_stderr)] // the command's output

use std::process::ExitCode;

use ccd_api::{Scope, Tokens};

use crate::target::Target;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(Debug, clap::Subcommand)]
enum Sub {
    /// Makes a token and prints it; only its hash is kept.
    Create {
        /// read (look), deploy (also apply, delete, plan, control rollouts) or admin.
        #[arg(long, value_parser = parse_scope)]
        scope: Scope,
        /// Limit the token to apps whose name starts with PREFIX (repeatable).
        #[arg(long = "apps", value_name = "PREFIX")]
        apps: Vec<String>,
        #[command(flatten)]
        target: Target,
    },
}

fn parse_scope(text: &str) -> Result<Scope, String> {
    Scope::parse(text).ok_or_else(|| format!("{text:?}: read, deploy or admin"))
}

pub fn run(args: Args) -> ExitCode {
    let Sub::Create {
        scope,
        apps,
        target,
    } = args.command;
    let file = match target.config_path() {
        Some(config) => match crate::controller::load(config) {
            Ok(c) => c.api_tokens,
            Err(e) => {
                eprintln!("ccd token create: {e:#}");
                return ExitCode::FAILURE;
            }
        },
        None => crate::api::tokens_file(&target.local_data().unwrap_or_default()),
    };
    let made = Tokens::open(&file).and_then(|t| t.create(scope, &apps));
    match made {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ccd token create: {e}");
            ExitCode::FAILURE
        }
    }
}
