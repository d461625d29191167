//! The `mage-secrets` binary: parse arguments, run, print the error once,
//! exit with its code. Everything else lives in the library and `cli`.

mod cli;

/// A faster allocator: rendering allocates many small strings (YAML
/// scalars above all) on several threads.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cli::main()
}
