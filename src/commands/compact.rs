//! `vintagelake compact`: the compaction daemon (cron) or one run (`--once`).

use std::process::ExitCode;

use vintagelake_compactor::{CompactorConfig, compact_once};

use super::{DaemonBase, Error, STOP_WAIT, start_daemon};
use crate::config::CommonConfig;

pub async fn run(common: CommonConfig, config: CompactorConfig, once: bool) -> Result<ExitCode, Error> {
    let DaemonBase { store, readiness: _, signal, mut components, console: _ } =
        start_daemon(&common, &[vintagelake_compactor::metrics::CATALOGUE]).await?;
    let options = config.options(&common.daemon());
    let result = if once {
        match compact_once(&store, &options, &signal).await {
            Ok(report) => {
                println!("{}", serde_json::to_string_pretty(&report).expect("report serialises"));
                Ok(ExitCode::SUCCESS)
            }
            Err(vintagelake_compactor::compact::CompactError::Cancelled) => Ok(ExitCode::SUCCESS),
            Err(e) => Err(Error::Failed(format!("compaction failed: {e}"))),
        }
    } else {
        components.start("compactor", move |stop| async move {
            vintagelake_compactor::daemon::run(store, config.compaction_schedule, options, stop).await;
            Ok::<(), String>(())
        });
        return components.run_until(&signal, STOP_WAIT).await.map(|()| ExitCode::SUCCESS).map_err(Error::from);
    };
    components.stop_all(STOP_WAIT).await?;
    result
}
