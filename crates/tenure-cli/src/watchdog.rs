//! The watchdog of `tenure run`: a small process between tenure and the
//! command, so that the command stops by its renew deadline even when tenure
//! itself is frozen, blocked or dead.
//!
//! ```text
//! tenure run (supervisor) ──pipe: deadlines──► tenure __watchdog ──► command
//!                                              (leads the command's process group)
//! ```
//!
//! The supervisor writes every new renew deadline into a pipe, as the absolute
//! `CLOCK_MONOTONIC` time (shared by every process of the host) in nanoseconds.
//! The watchdog, a plain single-threaded loop with no async runtime:
//!
//! - sends SIGTERM to the process group [`TERM_LEAD`] (or the grace, if shorter)
//!   before the deadline and SIGKILL at it, unless a newer deadline came first;
//! - when the pipe closes (the supervisor died): SIGTERM at once and SIGKILL at
//!   the deadline or after the grace, whichever is first — at once if there is
//!   no deadline (local: the kernel released the supervisor's lock, so another
//!   candidate may be granted now);
//! - exits with the command's status (or dies of the same signal), which is
//!   what the supervisor sees as the command's.
//!
//! The command dies with the watchdog (`PR_SET_PDEATHSIG`), and the supervisor
//! signals the whole group itself, so freezing or killing the watchdog alone
//! leaves the supervisor's own cut in force. What no process of the host can
//! cover is the whole host frozen: there only fencing helps.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::time::Duration;

use tokio::time::Instant;

/// The hidden subcommand that runs the watchdog.
pub(crate) const SUBCOMMAND: &str = "__watchdog";

/// How long before the deadline the watchdog sends SIGTERM (at most the grace).
pub(crate) const TERM_LEAD: Duration = Duration::from_millis(250);

/// A pet meaning "no deadline" (sessions without a TTL: local).
const NO_DEADLINE: u64 = u64::MAX;

/// The signals the supervisor passes on to the command's group: the watchdog
/// ignores them itself (the command gets them directly) and restores them for
/// the command.
const PASSED_ON: [i32; 6] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGQUIT,
];

/// The host's monotonic clock now, in nanoseconds.
fn monotonic_now() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
    }
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// `at` (an instant of this process) on the host's monotonic clock: `Instant`
/// is `CLOCK_MONOTONIC` on Linux, but opaque, so go through the distance from now.
fn monotonic_of(at: Instant) -> u64 {
    let now = Instant::now();
    let base = monotonic_now();
    if at >= now {
        base.saturating_add((at - now).as_nanos() as u64)
    } else {
        base.saturating_sub((now - at).as_nanos() as u64)
    }
}

/// The supervisor's end of the pipe.
#[derive(Clone, Debug)]
pub(crate) struct Leash {
    write: std::sync::Arc<OwnedFd>,
}

impl Leash {
    /// A new pipe: the leash, and the raw read end for the watchdog to inherit.
    /// Both ends are close-on-exec; the spawn clears the flag on the read end in
    /// the watchdog alone, so no other process holds the pipe open.
    pub(crate) fn new() -> io::Result<(Leash, OwnedFd)> {
        let mut fds = [0; 2];
        // SAFETY: pipe2 writes two fds into the array we own.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 returned two fresh fds that nothing else owns.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // A frozen watchdog must never block the supervisor: a pet that does
        // not fit is dropped (the pipe holds thousands).
        // SAFETY: fcntl on an fd we own.
        unsafe {
            let flags = libc::fcntl(write.as_raw_fd(), libc::F_GETFL);
            libc::fcntl(write.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
        Ok((
            Leash {
                write: write.into(),
            },
            read,
        ))
    }

    /// Tells the watchdog the command must be dead by `deadline` (`None`: no
    /// deadline, only the supervisor's death stops it).
    pub(crate) fn pet(&self, deadline: Option<Instant>) {
        let value = deadline.map_or(NO_DEADLINE, monotonic_of);
        let bytes = value.to_le_bytes();
        // SAFETY: write(2) from a buffer we own; 8 bytes are written whole or
        // not at all on a pipe (below PIPE_BUF).
        unsafe {
            libc::write(self.write.as_raw_fd(), bytes.as_ptr().cast(), bytes.len());
        }
    }
}

/// The arguments of the hidden subcommand.
pub(crate) fn args(control: RawFd, grace: Duration, command: &[String]) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![
        SUBCOMMAND.into(),
        control.to_string().into(),
        grace.as_millis().to_string().into(),
        "--".into(),
    ];
    args.extend(command.iter().map(OsString::from));
    args
}

/// Runs the watchdog (`tenure __watchdog FD GRACE_MS -- CMD…`); never returns.
pub(crate) fn main(args: &[OsString]) -> ! {
    let parsed = (|| {
        let fd: RawFd = args.first()?.to_str()?.parse().ok()?;
        let grace: u64 = args.get(1)?.to_str()?.parse().ok()?;
        (args.get(2)? == "--" && args.len() > 3).then_some(())?;
        Some((fd, Duration::from_millis(grace), &args[3..]))
    })();
    let Some((fd, grace, command)) = parsed else {
        eprintln!("tenure: {SUBCOMMAND} is started by `tenure run` only");
        std::process::exit(crate::exit::USAGE.into());
    };
    let mut watchdog = Watchdog {
        control: Some(fd),
        buffered: Vec::new(),
        deadline: NO_DEADLINE,
        grace: grace.as_nanos() as u64,
        termed: false,
        kill_at: NO_DEADLINE,
        cause: None,
    };
    // The first deadline comes before the command starts.
    watchdog.read_first();
    for signal in PASSED_ON {
        // SAFETY: setting a signal's disposition to "ignore" is always sound.
        unsafe {
            libc::signal(signal, libc::SIG_IGN);
        }
    }
    let (program, rest) = (&command[0], &command[1..]);
    let mut cmd = std::process::Command::new(program);
    cmd.args(rest);
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: runs in the forked child before exec and calls only
    // async-signal-safe functions (signal, close, prctl, getppid, _exit).
    unsafe {
        cmd.pre_exec(move || {
            for signal in PASSED_ON {
                libc::signal(signal, libc::SIG_DFL);
            }
            libc::close(fd);
            die_with_parent(parent);
            Ok(())
        });
    }
    let child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            eprintln!("tenure: cannot start {program:?}: {e}");
            std::process::exit(crate::exit::of_spawn_error(&e).into());
        }
    };
    let status = watchdog.watch(child.id() as libc::pid_t);
    mirror(status)
}

struct Watchdog {
    /// The read end of the supervisor's pipe; `None` once it closed.
    control: Option<RawFd>,
    buffered: Vec<u8>,
    /// The latest deadline (monotonic ns) the supervisor gave.
    deadline: u64,
    grace: u64,
    termed: bool,
    /// When SIGKILL goes out regardless of pets (set once the pipe closed).
    kill_at: u64,
    /// Why the watchdog is stopping the command, if it is.
    cause: Option<Cause>,
}

/// Why the watchdog stops the command.
#[derive(Clone, Copy, Debug)]
enum Cause {
    /// The renew deadline (monotonic ns) came with no newer one.
    Deadline(u64),
    /// The supervisor's pipe closed at this time (monotonic ns).
    SupervisorDied(u64),
}

impl Watchdog {
    fn read_first(&mut self) {
        let Some(fd) = self.control else { return };
        let mut bytes = [0u8; 8];
        let mut got = 0;
        while got < 8 {
            // SAFETY: read(2) into the part of the buffer still unfilled.
            let n = unsafe { libc::read(fd, bytes[got..].as_mut_ptr().cast(), 8 - got) };
            if n > 0 {
                got += n as usize;
            } else if n == 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                // The supervisor is gone before the command started: do not start it.
                std::process::exit(crate::exit::LEADERSHIP_LOST.into());
            }
        }
        self.deadline = u64::from_le_bytes(bytes);
    }

    /// Reads what the pipe holds: the newest deadline wins; end of file means
    /// the supervisor died.
    fn read_pets(&mut self, now: u64) {
        let Some(fd) = self.control else { return };
        let mut chunk = [0u8; 512];
        // SAFETY: read(2) into a buffer we own; poll said it is readable.
        let n = unsafe { libc::read(fd, chunk.as_mut_ptr().cast(), chunk.len()) };
        if n < 0 {
            return;
        }
        if n == 0 {
            // SAFETY: closing the fd we were given.
            unsafe {
                libc::close(fd);
            }
            self.control = None;
            self.kill_at = if self.deadline == NO_DEADLINE {
                now
            } else {
                self.deadline.min(now.saturating_add(self.grace))
            };
            self.cause = Some(Cause::SupervisorDied(now));
            self.say("tenure died: stopping the command");
            self.term();
            return;
        }
        self.buffered.extend_from_slice(&chunk[..n as usize]);
        let whole = self.buffered.len() / 8 * 8;
        if let Some(last) = self.buffered[..whole].chunks_exact(8).last() {
            self.deadline = u64::from_le_bytes(last.try_into().expect("8 bytes"));
        }
        self.buffered.drain(..whole);
    }

    fn say(&self, what: &str) {
        eprintln!("tenure: watchdog: {what}");
    }

    fn term(&mut self) {
        if !self.termed {
            self.termed = true;
            signal_group(libc::SIGTERM);
        }
    }

    /// When SIGTERM and SIGKILL are due.
    fn due(&self) -> (u64, u64) {
        let kill = self.kill_at.min(self.deadline);
        let lead = (TERM_LEAD.as_nanos() as u64).min(self.grace);
        (kill.saturating_sub(lead), kill)
    }

    /// Watches the command until it exits; returns its wait status.
    fn watch(&mut self, pid: libc::pid_t) -> i32 {
        // SAFETY: pidfd_open has no memory-safety preconditions; -1 if the
        // kernel lacks it, and then the loop polls for the exit.
        let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as RawFd;
        loop {
            let mut status = 0;
            // SAFETY: waitpid on our own child, into an int we own.
            if unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } == pid {
                self.report("exited");
                return status;
            }
            let now = monotonic_now();
            let (term_at, kill_at) = self.due();
            if now >= kill_at {
                if self.cause.is_none() {
                    self.cause = Some(Cause::Deadline(self.deadline));
                }
                // The command first, reaped so that its end is reported; then
                // the rest of its group, this process with it (the supervisor
                // sees SIGKILL).
                // SAFETY: kill(2) and a blocking waitpid(2) on our own child.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                    libc::waitpid(pid, &mut status, 0);
                }
                self.report("was killed (SIGKILL)");
                signal_group(libc::SIGKILL);
            }
            if now >= term_at && !self.termed {
                self.cause = Some(Cause::Deadline(self.deadline));
                self.say("renew deadline near with no word from tenure: SIGTERM to the command");
                self.term();
            }
            let next = if self.termed { kill_at } else { term_at };
            let wait = next.saturating_sub(now);
            let mut timeout = libc::timespec {
                tv_sec: (wait / 1_000_000_000).min(i32::MAX as u64) as libc::time_t,
                tv_nsec: (wait % 1_000_000_000) as libc::c_long,
            };
            if pidfd < 0 && wait > 10_000_000 {
                timeout = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 10_000_000,
                };
            }
            let mut fds = [
                libc::pollfd {
                    fd: self.control.unwrap_or(-1),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: pidfd,
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            // SAFETY: ppoll(2) on an array and a timespec we own; negative
            // fds are ignored; no signal mask change.
            let ready = unsafe { libc::ppoll(fds.as_mut_ptr(), 2, &timeout, std::ptr::null()) };
            if ready > 0 && fds[0].revents != 0 {
                self.read_pets(monotonic_now());
            }
        }
    }

    /// Says how the command ended when the watchdog stopped it: how long
    /// after (or before) the renew deadline, or after tenure died.
    fn report(&self, how: &str) {
        let now = monotonic_now() as i128;
        match self.cause {
            None => {}
            Some(Cause::Deadline(deadline)) => {
                let late = (now - deadline as i128) as f64 / 1e6;
                let (ms, side) = if late < 0.0 {
                    (-late, "before")
                } else {
                    (late, "after")
                };
                self.say(&format!(
                    "the command {how} {ms:.1} ms {side} the renew deadline"
                ));
            }
            Some(Cause::SupervisorDied(at)) => {
                let ms = (now - at as i128) as f64 / 1e6;
                self.say(&format!("the command {how} {ms:.1} ms after tenure died"));
            }
        }
    }
}

/// In the forked child: ask the kernel to SIGKILL this process when the watchdog dies
/// (even by SIGKILL), so the command never outlives its watchdog (Linux only; elsewhere a no-op).
fn die_with_parent(parent: libc::pid_t) {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl, getppid and _exit are async-signal-safe.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        // tenure may have died before the prctl took effect.
        if libc::getppid() != parent {
            libc::_exit(1);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = parent;
}

/// Sends `signal` to this process's group: the command and all it started.
fn signal_group(signal: i32) {
    // SAFETY: kill(2) with 0 names our own process group.
    unsafe {
        libc::kill(0, signal);
    }
}

/// Exits the way the command did: with its code, or by its signal.
fn mirror(status: i32) -> ! {
    if libc::WIFSIGNALED(status) {
        let signal = libc::WTERMSIG(status);
        // SAFETY: restoring the default action, then raising the signal on
        // ourselves, so the supervisor sees the command's death as it was.
        unsafe {
            libc::signal(signal, libc::SIG_DFL);
            libc::kill(libc::getpid(), signal);
        }
        std::process::exit(128 + signal);
    }
    std::process::exit(libc::WEXITSTATUS(status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_map_to_the_hosts_monotonic_clock() {
        let before = monotonic_now();
        let soon = monotonic_of(Instant::now() + Duration::from_secs(2));
        let after = monotonic_now();
        assert!(soon >= before + 2_000_000_000 && soon <= after + 2_000_000_000);
        let past = monotonic_of(Instant::now() - Duration::from_millis(5));
        assert!(past < monotonic_now());
    }

    #[test]
    fn sigterm_comes_before_the_deadline_by_the_lead_or_the_grace() {
        let mut dog = Watchdog {
            control: None,
            buffered: Vec::new(),
            deadline: 10_000_000_000,
            grace: 10_000_000_000,
            termed: false,
            kill_at: NO_DEADLINE,
            cause: None,
        };
        assert_eq!(dog.due(), (9_750_000_000, 10_000_000_000));
        dog.grace = 100_000_000;
        assert_eq!(dog.due(), (9_900_000_000, 10_000_000_000));
        dog.kill_at = 5_000_000_000;
        assert_eq!(dog.due(), (4_900_000_000, 5_000_000_000));
        dog.deadline = NO_DEADLINE;
        dog.kill_at = NO_DEADLINE;
        assert_eq!(dog.due().1, NO_DEADLINE);
    }
}
