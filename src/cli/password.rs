//! Where a password comes from. Never a plain argument: it would show in `ps`.

use std::io::{IsTerminal, Read};

use clap::Args;

use crate::control::ControlError;
use crate::pki::Password;

#[derive(Debug, Args, Clone, Default)]
#[group(multiple = false)]
pub struct PasswordArgs {
    /// Read the password from this environment variable.
    #[arg(long, value_name = "VAR")]
    pub password_env: Option<String>,
    /// Read the password from this file (one trailing newline is removed).
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<std::path::PathBuf>,
    /// Read the password from standard input (one trailing newline is removed).
    #[arg(long)]
    pub password_stdin: bool,
}

impl PasswordArgs {
    pub fn given(&self) -> bool {
        self.password_env.is_some() || self.password_file.is_some() || self.password_stdin
    }

    pub fn read(&self) -> Result<Option<Password>, ControlError> {
        let usage = |message: String, hint: &str| ControlError::usage("usage", message, hint);
        if let Some(var) = &self.password_env {
            let value = std::env::var(var).map_err(|_| {
                usage(format!("the environment variable {var} is not set"), "export it before running certgate")
            })?;
            return Ok(Some(Password::new(value)));
        }
        if let Some(path) = &self.password_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                usage(
                    format!("cannot read the password file {}: {e}", path.display()),
                    "check the path and its permissions",
                )
            })?;
            return Ok(Some(Password::new(strip_newline(text))));
        }
        if self.password_stdin {
            let mut text = String::new();
            std::io::stdin().take(64 * 1024).read_to_string(&mut text).map_err(|e| {
                usage(format!("cannot read the password from standard input: {e}"), "pipe the password in")
            })?;
            return Ok(Some(Password::new(strip_newline(text))));
        }
        Ok(None)
    }
}

fn strip_newline(mut s: String) -> String {
    if s.ends_with('\n') {
        s.pop();
        if s.ends_with('\r') {
            s.pop();
        }
    }
    s
}

/// Ask on the terminal, when one is attached to stdin.
pub fn prompt(what: &str) -> Option<Password> {
    if !std::io::stdin().is_terminal() {
        return None;
    }
    rpassword::prompt_password(format!("Password for {what}: ")).ok().map(Password::new)
}
