//! Exit codes: tenure's own are the BSD `sysexits` ones, so they stay apart from
//! the usual 1 and 2 of the commands `tenure run` starts.

use std::process::ExitStatus;

use tenure::Error;

/// Bad input: an unknown flag, a malformed URL, an invalid name.
pub(crate) const USAGE: u8 = 64;
/// The backend cannot be reached, or the session behind a request expired.
pub(crate) const UNAVAILABLE: u8 = 69;
/// tenure itself failed (the async runtime would not start).
pub(crate) const SOFTWARE: u8 = 70;
/// Leadership was lost (`run --restart never`, `campaign`), or a resign request
/// was not honoured in time.
pub(crate) const LEADERSHIP_LOST: u8 = 75;
/// The command of `tenure run` exists but cannot be executed.
pub(crate) const CANNOT_EXECUTE: u8 = 126;
/// The command of `tenure run` was not found.
pub(crate) const NOT_FOUND: u8 = 127;

/// The exit codes, as `--help` shows them.
pub(crate) const HELP: &str = "\
Exit codes:
  0        success (run: the command exited 0)
  1        failed (e.g. a backend error that retrying will not fix)
  64       bad input: unknown flag, malformed URL, invalid name
  69       backend unavailable
  70       internal error
  75       leadership lost (run --restart never, campaign); resign not honoured in time
  126/127  run: the command cannot be executed / was not found
  N        run: the command exited with status N
  128+S    run: the command was killed by signal S; or tenure itself was
           stopped by signal S before its command ran (130: SIGINT, 143: SIGTERM)";

/// The exit code for an error.
pub(crate) fn of_error(error: &Error) -> u8 {
    match error {
        Error::InvalidInput { .. } | Error::TooLarge { .. } => USAGE,
        Error::Unavailable { .. } | Error::SessionExpired { .. } => UNAVAILABLE,
        Error::LeadershipLost { .. } | Error::Fenced { .. } => LEADERSHIP_LOST,
        _ => 1,
    }
}

/// The exit code that reports a child's status the way a shell does: its own
/// code, or 128 + the signal that killed it.
pub(crate) fn of_status(status: ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => (code & 0xff) as u8,
        (None, Some(signal)) => 128u8.saturating_add(signal as u8),
        (None, None) => 1,
    }
}

/// The exit code for a signal that stopped tenure itself.
pub(crate) fn of_signal(signal: i32) -> u8 {
    128u8.saturating_add(signal as u8)
}

/// The exit code for a command that could not be started.
pub(crate) fn of_spawn_error(error: &std::io::Error) -> u8 {
    match error.kind() {
        std::io::ErrorKind::NotFound => NOT_FOUND,
        _ => CANNOT_EXECUTE,
    }
}
