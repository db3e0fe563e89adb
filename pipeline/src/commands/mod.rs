//! One module per subcommand.

pub mod inspect;
pub mod record;

/// A command's error: a message for the user.
pub type CmdResult = Result<std::process::ExitCode, String>;
