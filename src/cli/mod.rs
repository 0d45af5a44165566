//! The `cotforge` command line: clap argument structs (flags shared by several commands in one
//! flattened group), one function per command, and the exit codes (0 success, 1 the run
//! failed, 2 usage or spec error). `main.rs` only parses and dispatches.

pub mod bench;
pub mod bench_tokenize;
pub mod curate;
pub mod model;
pub mod schemas;
pub mod train;

use clap::{Parser, Subcommand};

use crate::error::Result;

#[derive(Parser)]
#[command(
    name = "cotforge",
    version,
    about = "Curate multimodal long chain-of-thought traces into clean training data."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Every command; the argument structs carry the help texts.
#[derive(Subcommand)]
pub enum Command {
    Run(curate::RunArgs),
    Plan(curate::PlanArgs),
    Report(curate::ReportArgs),
    Export(curate::ExportArgs),
    InitModel(model::InitModelArgs),
    Eval(model::EvalArgs),
    TrainTokenizer(model::TrainTokenizerArgs),
    Logits(model::LogitsArgs),
    /// Train a model on packed shards (`cotforge train sft --help`).
    #[command(subcommand)]
    Train(train::TrainCommand),
    Inspect(curate::InspectArgs),
    Synth(curate::SynthArgs),
    Verify(curate::VerifyArgs),
    BenchTokens(bench::BenchTokensArgs),
    BenchTokenize(bench::BenchTokenizeArgs),
    BenchModel(bench::BenchModelArgs),
    BenchSft(bench::BenchSftArgs),
    BenchPack(bench::BenchPackArgs),
    ReproMini(train::ReproMiniArgs),
    Check(curate::CheckArgs),
    Schemas(schemas::SchemasArgs),
}

impl Command {
    /// Commands that run a model, whose allocations repeat step after step.
    pub fn runs_a_model(&self) -> bool {
        matches!(
            self,
            Command::Train(_) | Command::Eval(_) | Command::BenchSft(_) | Command::BenchModel(_) | Command::Logits(_)
        )
    }
}

/// Run one command.
pub fn dispatch(cmd: Command) -> Result<()> {
    match cmd {
        Command::Run(a) => curate::run(a),
        Command::Plan(a) => curate::plan(a),
        Command::Report(a) => curate::report(a),
        Command::Export(a) => curate::export(a),
        Command::InitModel(a) => model::init_model(a),
        Command::Eval(a) => model::eval(a),
        Command::TrainTokenizer(a) => model::train_tokenizer(a),
        Command::Logits(a) => model::logits(a),
        Command::Train(c) => train::train(c),
        Command::Inspect(a) => curate::inspect(a),
        Command::Synth(a) => curate::synth(a),
        Command::Verify(a) => curate::verify(a),
        Command::BenchTokens(a) => bench::bench_tokens(a),
        Command::BenchTokenize(a) => bench::bench_tokenize(a),
        Command::BenchModel(a) => bench::bench_model(a),
        Command::BenchSft(a) => bench::bench_sft(a),
        Command::BenchPack(a) => bench::bench_pack(a),
        Command::ReproMini(a) => train::repro_mini(a),
        Command::Check(a) => curate::check(a),
        Command::Schemas(a) => schemas::schemas(a),
    }
}
