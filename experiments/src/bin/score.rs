//! `score`: scores model outputs by the official checker's rules. See
//! `score --help`.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let cli = apr_experiments::score_cli::Cli::parse();
    let tally = apr_experiments::score_cli::run(&cli)?;
    eprintln!("{}", apr_experiments::score_cli::summary(cli.mode, &tally));
    Ok(())
}
