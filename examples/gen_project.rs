//! Generates a Mage-like project and a matching environment for benchmarks:
//!
//! ```sh
//! cargo run --release --example gen_project -- --files 1000 --refs 20 --secrets 100 --out /tmp/bench
//! ```
//!
//! writes `/tmp/bench/project` (io_config.yaml with profiles, pipeline
//! metadata, block YAML in nested folders, dbt profiles; quoted and plain
//! references; every tenth file also uses runtime expressions) and
//! `/tmp/bench/mage_data` (an environment holding the secrets `secret_0` …).

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use clap::Parser;
use mage_secrets::{Environment, Scope, Settings};

#[derive(Parser)]
struct Args {
    /// Number of YAML files
    #[arg(long, default_value_t = 1000)]
    files: usize,
    /// References per file
    #[arg(long, default_value_t = 20)]
    refs: usize,
    /// Distinct secrets
    #[arg(long, default_value_t = 100)]
    secrets: usize,
    /// Plain lines per file, besides the references
    #[arg(long, default_value_t = 0)]
    lines: usize,
    /// Put every file in pipeline folders, spread over this many (default:
    /// a mixed Mage layout with a pipeline folder per 20 files)
    #[arg(long)]
    pipelines: Option<usize>,
    /// Output folder (project/ and mage_data/ are created in it)
    #[arg(long)]
    out: PathBuf,
}

/// A small deterministic generator, so runs are comparable.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, bound: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % bound.max(1)
    }
}

fn reference(rng: &mut Lcg, secrets: usize, key: usize) -> String {
    let s = rng.next(secrets);
    match rng.next(10) {
        0..=4 => format!("key_{key}: \"{{{{ mage_secret_var('secret_{s}') }}}}\""),
        5..=6 => format!("key_{key}: '{{{{ mage_secret_var(\"secret_{s}\") }}}}'"),
        7 => format!(
            "key_{key}: \"postgresql://app:{{{{ mage_secret_var('secret_{s}') }}}}@db:5432/x\""
        ),
        8 => format!("key_{key}: {{{{ mage_secret_var('secret_{s}') }}}}"),
        _ => format!("key_{key}: \"{{{{ env_var('BENCH_HOST_{key}', 'localhost') }}}}\""),
    }
}

fn file_body(rng: &mut Lcg, index: usize, args: &Args) -> String {
    let mut text = format!("# generated file {index}\nname: block_{index}\nsettings:\n");
    for k in 0..args.refs {
        let _ = writeln!(text, "  {}", reference(rng, args.secrets, k));
    }
    for k in 0..args.lines {
        let _ = writeln!(text, "  plain_{k}: some plain configuration value {k}");
    }
    if index.is_multiple_of(10) {
        text.push_str("runtime:\n  start_date: \"{{ n_days_ago(1) }}\"\n  table: \"{{ variables('table') }}\"\n");
    }
    text
}

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

fn main() {
    let args = Args::parse();
    let project = args.out.join("project");
    let data_dir = args.out.join("mage_data");
    let _ = fs::remove_dir_all(&project);
    let _ = fs::remove_dir_all(&data_dir);
    let mut rng = Lcg(42);

    let mut io = String::from("version: 0.1.1\n");
    for profile in ["default", "staging", "prod"] {
        let _ = writeln!(io, "{profile}:");
        for k in 0..args.refs {
            let _ = writeln!(io, "  {}", reference(&mut rng, args.secrets, k));
        }
    }
    write(&project.join("io_config.yaml"), &io);
    let pipelines = args.pipelines.unwrap_or(args.files / 20).max(1);
    for i in 1..args.files {
        let p = i % pipelines;
        let path = match i % 4 {
            _ if args.pipelines.is_some() => {
                project.join(format!("pipelines/pipeline_{p}/blocks/block_{i}.yaml"))
            }
            0 => project.join(format!("pipelines/pipeline_{p}/metadata_{i}.yaml")),
            1 => project.join(format!(
                "pipelines/pipeline_{p}/blocks/group_{}/block_{i}.yaml",
                i % 7
            )),
            2 => project.join(format!(
                "data_loaders/nested/level_{}/loader_{i}.yaml",
                i % 5
            )),
            _ => project.join(format!("dbt/project_{}/profiles_{i}.yml", i % 3)),
        };
        write(&path, &file_body(&mut rng, i, &args));
    }

    let env = Environment::open(&Settings::for_data_dir(&data_dir)).expect("open environment");
    for s in 0..args.secrets {
        env.set(
            &format!("secret_{s}"),
            &Scope::Global,
            &format!("value-{s}-{}", "x".repeat(24)),
        )
        .expect("set secret");
    }
    println!(
        "{} files, {} references each, {} secrets: {} and {}",
        args.files,
        args.refs,
        args.secrets,
        project.display(),
        data_dir.display()
    );
}
