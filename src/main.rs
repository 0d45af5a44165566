//! The `cotforge` command line: parses arguments, calls the library, maps errors to exit codes
//! (0 success, 1 the run failed, 2 usage or spec error).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use cotforge::pipeline::{self, RunOptions};
use cotforge::{Result, spec};

#[derive(Parser)]
#[command(name = "cotforge", version, about = "Curate multimodal long chain-of-thought traces into clean training data.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a pipeline spec: ingest its inputs, apply its stages, write the run directory
    /// (curated/, ledger/, images/, stats.json).
    Run {
        /// Pipeline spec (YAML), e.g. pipelines/demo.yaml.
        spec: PathBuf,
        /// Run directory (default: the spec's output.dir).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Keep the completed stages of an interrupted run of the same spec and continue.
        #[arg(long)]
        resume: bool,
        /// Worker threads (default: all cores). Outputs do not depend on it.
        #[arg(long)]
        threads: Option<usize>,
        /// No progress bars.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Show schema, row count and first rows of a Parquet/JSONL/JSON file, a directory of
    /// Parquet files, or a run directory.
    Inspect {
        /// File or directory.
        path: PathBuf,
        /// Rows to show.
        #[arg(long, default_value_t = 5)]
        rows: usize,
    },
    /// Check a spec without running it.
    Check {
        /// Pipeline spec (YAML).
        spec: PathBuf,
    },
    /// Write the JSON Schemas (trace, ledger, pipeline spec) into a directory.
    Schemas {
        /// Output directory.
        #[arg(default_value = "schemas")]
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

fn dispatch(cmd: Command) -> Result<()> {
    match cmd {
        Command::Run { spec: path, out, resume, threads, quiet } => {
            let spec = spec::load(&path)?;
            let opts = RunOptions { out, resume, threads, progress: !quiet };
            let dir = pipeline::run_dir(&spec, &opts);
            let stats = pipeline::run(&spec, &opts)?;
            println!("{:<4} {:<16} {:>9} {:>9}  drops", "#", "stage", "rows_in", "rows_out");
            for s in &stats.stages {
                let drops: Vec<String> = s.dropped.iter().map(|(k, v)| format!("{k}={v}")).collect();
                println!("{:<4} {:<16} {:>9} {:>9}  {}", s.index, s.stage, s.rows_in, s.rows_out, drops.join(" "));
            }
            println!(
                "{} rows in, {} kept, {} in the ledger -> {}",
                stats.rows_in,
                stats.rows_out,
                stats.ledger_rows,
                dir.display()
            );
            Ok(())
        }
        Command::Inspect { path, rows } => {
            print!("{}", cotforge::inspect::inspect(&path, rows)?);
            Ok(())
        }
        Command::Check { spec: path } => {
            let s = spec::load(&path)?;
            let files: usize = s.inputs.iter().map(|i| i.files.len()).sum();
            for i in &s.inputs {
                cotforge::ingest::preflight(i)?;
            }
            println!("{}: ok ({} inputs, {files} files, {} stages)", path.display(), s.inputs.len(), s.stages.len());
            Ok(())
        }
        Command::Schemas { dir } => {
            for (name, text) in cotforge::schema::schema_files() {
                let p = dir.join(name);
                cotforge::pipeline::io::atomic_write(&p, text.as_bytes(), 0)?;
                println!("wrote {}", p.display());
            }
            Ok(())
        }
    }
}
