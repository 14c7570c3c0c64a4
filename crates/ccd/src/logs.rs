//! `ccd logs APP [--since 10m] [--follow]`: what the app's instances wrote,
//! as shipped for its `services.logs`, also after the instances are gone.
#![allow(clippy::print_stdout, clippy::print_stderr)] // the command's output

use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::bail;
use ccd_services::{LogCursor, ServiceError};
use ccd_store::check_app_name;

use crate::target::Target;

#[derive(Debug, clap::Args)]
pub struct Args {
    app: String,
    /// Only lines shipped within this long (e.g. 10m, 2h, 7d); everything kept when absent.
    #[arg(long, value_parser = parse_since)]
    since: Option<Duration>,
    /// Keep printing lines as they are shipped, until Ctrl-C.
    #[arg(long, short)]
    follow: bool,
    #[command(flatten)]
    target: Target,
}

fn parse_since(text: &str) -> Result<Duration, String> {
    if let Some(days) = text.strip_suffix('d') {
        let days: u64 = days
            .parse()
            .map_err(|_| format!("{text:?} is not a duration; write e.g. 10m, 2h or 7d"))?;
        return Ok(Duration::from_secs(days * 86_400));
    }
    ccd_spec::Duration::parse(text)
        .map(|d| d.as_std())
        .map_err(|_| format!("{text:?} is not a duration; write e.g. 10m, 2h or 7d"))
}

pub fn run(args: Args) -> ExitCode {
    crate::logging::init();
    match crate::logging::block_on(logs(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ccd logs: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn logs(args: Args) -> anyhow::Result<()> {
    check_app_name(&args.app)?;
    let Some(data) = args.target.local_data() else {
        bail!(
            "with --config an app's logs are in Cloud Logging, which ccd logs does not read yet: \
             gcloud logging read 'labels.\"ccd-app\"=\"{}\"'",
            args.app
        );
    };
    let dir = ccd_services::LocalServices::logs_dir(&data);
    let since = match args.since {
        Some(d) => ccd_clock::wall()
            .checked_sub(d)
            .unwrap_or(SystemTime::UNIX_EPOCH),
        None => SystemTime::UNIX_EPOCH,
    };
    let mut cursor = LogCursor::new(&dir, &args.app, since);
    loop {
        match cursor.next_batch().await {
            Ok(lines) => {
                for line in lines {
                    println!("{line}");
                }
            }
            // Following an app that has shipped nothing yet: wait for it.
            Err(ServiceError::NoLogs { .. }) if args.follow => {}
            Err(e) => return Err(e.into()),
        }
        if !args.follow {
            return Ok(());
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}
