//! The `mage-secrets` binary: parse arguments, run, print the error once,
//! exit with its code. Everything else lives in the library and `cli`.

mod cli;

fn main() {
    let code = cli::main();
    // The command is done: its output written, its files closed, its
    // temporaries gone, its values dropped (and wiped). The process ends
    // here at once, without the exit handlers, whose one task left is the
    // allocator's walk over all its memory to free it (measured: 2% of a
    // large `check`), which the system does anyway.
    let _ = std::io::Write::flush(&mut std::io::stdout());
    // SAFETY: `_exit` only ends the process.
    unsafe { libc::_exit(i32::from(code)) }
}
