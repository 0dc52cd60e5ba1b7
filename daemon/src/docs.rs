//! Man pages (section 8) and shell completions (bash, zsh, fish), generated from the
//! clap definitions of `netpold` and `netpolctl` so that they never disagree with
//! `--help`. `netpolctl package-assets DIR` (hidden) writes them; `scripts/package`
//! puts them in the Debian package.

use std::io;
use std::path::{Path, PathBuf};

use clap_complete::Shell;

/// Writes, under `out`, one man page per command and per visible subcommand
/// (`man8/netpolctl.8`, `man8/netpolctl-compile.8`, …) and each command's completions
/// (`bash-completion/NAME`, `zsh/_NAME`, `fish/NAME.fish`: the names each shell looks
/// for). Returns the files written.
pub fn write(out: &Path, commands: Vec<clap::Command>) -> io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for command in commands {
        let mut command = command.disable_help_subcommand(true);
        command.build();
        let name = command.get_name().to_owned();
        man_pages(&out.join("man8"), &command, &mut written)?;
        for (shell, dir, file) in [
            (Shell::Bash, "bash-completion", name.clone()),
            (Shell::Zsh, "zsh", format!("_{name}")),
            (Shell::Fish, "fish", format!("{name}.fish")),
        ] {
            let mut text = Vec::new();
            clap_complete::generate(shell, &mut command.clone(), &name, &mut text);
            written.push(write_file(&out.join(dir), &file, &text)?);
        }
    }
    Ok(written)
}

/// The page of `command`, then those of its visible subcommands, recursively.
fn man_pages(dir: &Path, command: &clap::Command, written: &mut Vec<PathBuf>) -> io::Result<()> {
    let man = clap_mangen::Man::new(command.clone())
        .section("8")
        .manual("netpol")
        .source(format!("netpol {}", env!("CARGO_PKG_VERSION")));
    let mut text = Vec::new();
    man.render(&mut text)?;
    written.push(write_file(dir, &man.get_filename(), &text)?);
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        man_pages(dir, sub, written)?;
    }
    Ok(())
}

fn write_file(dir: &Path, name: &str, text: &[u8]) -> io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(name);
    std::fs::write(&path, text)?;
    Ok(path)
}
