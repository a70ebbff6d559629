//! sandlock-oci's own error, where the engine looks for it: on stderr,
//! and in runc's `--log` file in runc's format, which containerd's shim
//! reads to say why a command failed.
//!
//! Must never fail the command it reports on: a log that cannot be written
//! leaves the message on stderr alone.

use std::io::Write;

use crate::cli::{Cli, LogFormat};

/// Reports `e` on stderr and in the log file.
pub fn error(cli: &Cli, e: &anyhow::Error) {
    let msg = format!("{e:#}");
    let _ = writeln!(std::io::stderr().lock(), "sandlock-oci: {msg}");
    let Some(path) = &cli.log else {
        return;
    };
    let time = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let line = line(cli.log_format, &time, &msg);
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = f.write_all(line.as_bytes());
    }
}

/// One log line, as runc (logrus) writes it.
fn line(format: LogFormat, time: &str, msg: &str) -> String {
    match format {
        LogFormat::Json => format!(
            "{}\n",
            serde_json::json!({"level": "error", "msg": msg, "time": time})
        ),
        LogFormat::Text => format!(
            "time={} level=error msg={}\n",
            serde_json::Value::from(time),
            serde_json::Value::from(msg)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_runcs() {
        let t = "2026-12-06T01:00:00Z";
        let j: serde_json::Value =
            serde_json::from_str(&line(LogFormat::Json, t, "bad \"x\"\nnext")).unwrap();
        assert_eq!(
            j,
            serde_json::json!({"level": "error", "msg": "bad \"x\"\nnext", "time": t})
        );
        assert_eq!(
            line(LogFormat::Text, t, "bad \"x\""),
            "time=\"2026-12-06T01:00:00Z\" level=error msg=\"bad \\\"x\\\"\"\n"
        );
    }
}
