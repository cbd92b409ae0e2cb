//! `certgate generate` (hidden): shell completions and man pages from the command line's own
//! definition, so they cannot drift from it. The Debian package build runs it
//! (`scripts/package.sh`); nobody else needs it.

use std::path::{Path, PathBuf};

use clap::{CommandFactory, Subcommand};
use clap_complete::aot::Shell;

#[derive(Debug, Subcommand)]
pub enum GenerateCommand {
    /// Completion scripts for bash (certgate), zsh (_certgate) and fish (certgate.fish) in DIR.
    Completions { dir: PathBuf },
    /// Man pages in DIR: certgate.1 and one per subcommand (certgate-cert-import.1, ...).
    Man { dir: PathBuf },
}

pub fn run(cmd: &GenerateCommand) -> u8 {
    let result = match cmd {
        GenerateCommand::Completions { dir } => completions(dir),
        GenerateCommand::Man { dir } => man(dir),
    };
    match result {
        Ok(files) => {
            for f in files {
                println!("{}", f.display());
            }
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

fn command() -> clap::Command {
    super::Cli::command()
}

fn completions(dir: &Path) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut out = Vec::new();
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let mut cmd = command();
        let path = clap_complete::aot::generate_to(shell, &mut cmd, "certgate", dir)
            .map_err(|e| format!("cannot write the {shell} completions to {}: {e}", dir.display()))?;
        out.push(path);
    }
    Ok(out)
}

fn man(dir: &Path) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    clap_mangen::generate_to(command(), dir)
        .map_err(|e| format!("cannot write man pages to {}: {e}", dir.display()))?;
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "1"))
        .collect();
    out.sort();
    Ok(out)
}
