//! One module per subcommand.

pub mod client;
pub mod inspect;
pub mod record;
pub mod run;
pub mod sensors;

/// A command's error: a message for the user.
pub type CmdResult = Result<std::process::ExitCode, String>;
