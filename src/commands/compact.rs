//! `vintagelake compact`: the compaction daemon (cron) or one run (`--once`).

use std::process::ExitCode;

use vintagelake_compactor::{CompactorConfig, compact_once};

use super::{DaemonBase, Error, start_daemon};
use crate::config::CommonConfig;

pub async fn run(common: CommonConfig, config: CompactorConfig, once: bool) -> Result<ExitCode, Error> {
    let DaemonBase { store, readiness: _, shutdown, http } =
        start_daemon(&common, &[vintagelake_compactor::metrics::CATALOGUE]).await?;
    let options = config.options(&common.daemon());
    let result = if once {
        match compact_once(&store, &options, &shutdown).await {
            Ok(report) => {
                println!("{}", serde_json::to_string_pretty(&report).expect("report serialises"));
                Ok(ExitCode::SUCCESS)
            }
            Err(vintagelake_compactor::compact::CompactError::Cancelled) => Ok(ExitCode::SUCCESS),
            Err(e) => Err(Error::Failed(format!("compaction failed: {e}"))),
        }
    } else {
        vintagelake_compactor::daemon::run(store, config.compaction_schedule, options, shutdown.clone()).await;
        Ok(ExitCode::SUCCESS)
    };
    shutdown.cancel();
    let _ = http.await;
    result
}
