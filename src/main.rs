//! The `mage-secrets` binary: parse arguments, run, print the error once,
//! exit with its code. Everything else lives in the library and `cli`.

mod cli;

fn main() {
    std::process::exit(cli::main());
}
