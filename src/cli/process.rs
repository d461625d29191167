//! What the process does to itself before it touches a key or a value, as
//! ssh-agent and gpg-agent do: no core dumps (a dump would hold the key and
//! every value read), and on Linux not dumpable (no core, and no ptrace or
//! /proc/<pid>/mem by other processes of the same user). And SIGPIPE's
//! default action, so that a closed stdout or stderr (`… | head -1`) ends
//! the process quietly, as it ends `cat`, instead of a panic.

pub fn harden() {
    // SAFETY: system calls on the calling process with valid arguments;
    // their failure leaves the process as it was, which is no worse.
    unsafe {
        // The soft limit only: a command `run` hands the secrets to may
        // raise it again for itself.
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_CORE, &mut limit) == 0 {
            limit.rlim_cur = 0;
            libc::setrlimit(libc::RLIMIT_CORE, &limit);
        }
        #[cfg(target_os = "linux")]
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
