//! The `irgan` command line: train, evaluate and generate data offline ([`cli::offline`]), and
//! serve, import, export and probe the service ([`cli::service`]).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli;

use cli::offline::{self, EvalArgs, SynthArgs, TrainArgs, TuneArgs};
use cli::service::{self, ExportArgs, HealthcheckArgs, ImportArgs, ServeArgs};

/// IRGAN ranking: train, evaluate and serve a generator/discriminator pair.
#[derive(Parser)]
#[command(name = "irgan", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Pretrain, play the adversarial game, select on validation and write a snapshot.
    Train(TrainArgs),
    /// Search pretraining and game settings on the validation split within a time budget;
    /// write the best as a config `irgan train` takes.
    Tune(TuneArgs),
    /// Evaluate a snapshot or imported factors on a test file.
    Eval(EvalArgs),
    /// Write a synthetic latent-cluster data set (train.txt, test.txt).
    Synth(SynthArgs),
    /// Run the service: REST and gRPC APIs (rankings, feedback), background training.
    Serve(ServeArgs),
    /// Append an interaction file to the service's feedback log (offline).
    Import(ImportArgs),
    /// Dump the service's feedback log as JSON lines.
    Export(ExportArgs),
    /// Probe a running service: exit 0 if `GET url` answers 200, else 1 (for container health
    /// checks).
    Healthcheck(HealthcheckArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(a) => offline::train(a),
        Command::Tune(a) => offline::tune(a),
        Command::Eval(a) => offline::eval(a),
        Command::Synth(a) => offline::synth_cmd(a),
        Command::Serve(a) => service::serve(a),
        Command::Import(a) => service::import(a),
        Command::Export(a) => service::export(a),
        Command::Healthcheck(a) => service::healthcheck(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", describe(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, skipping a cause whose text the message before it already shows.
fn describe(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out
}

/// Sizes rayon's global pool (0 = all cores).
pub(crate) fn set_threads(threads: usize) {
    if threads > 0 {
        // Only fails if a pool already exists, which cannot happen this early.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global();
    }
}
