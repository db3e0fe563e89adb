//! One module per subcommand.

pub mod client;
pub mod embed;
pub mod inputs;
pub mod inspect;
pub mod preprocess;
pub mod record;
pub mod run;
pub mod sensors;
pub mod sheet;

/// A command's error: a message for the user.
pub type CmdResult = Result<std::process::ExitCode, String>;

/// Writes `text` to stdout; a closed pipe (`edgebind embed ... | head`) is
/// not an error, any other write failure is.
pub fn print_stdout(text: &str) -> Result<(), String> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(format!("stdout: {e}")),
        _ => Ok(()),
    }
}
