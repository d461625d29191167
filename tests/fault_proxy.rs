//! A TCP proxy on loopback that stands between the binary and the test
//! PostgreSQL server and injects the faults a network or a server crash
//! makes: a COMMIT that reaches the server whose reply never comes back,
//! and a server that accepts connections and never answers.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// What the proxy does once it has forwarded a COMMIT.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum AfterCommit {
    /// Drop the reply, close that connection, and accept nothing more (the
    /// server is unreachable afterwards).
    DropReplyAndVanish,
    /// Drop the reply and close that connection; later connections pass.
    DropReply,
}

pub struct FaultProxy {
    pub port: u16,
    fired: Arc<AtomicBool>,
}

impl FaultProxy {
    /// Forwards 127.0.0.1:<port> to `upstream`; the first COMMIT a client
    /// sends (simple query protocol, so without TLS) triggers `mode`.
    pub fn start(upstream: String, mode: AfterCommit) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().unwrap().port();
        let fired = Arc::new(AtomicBool::new(false));
        let shared = fired.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if shared.load(Ordering::SeqCst) && mode == AfterCommit::DropReplyAndVanish {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let fired = shared.clone();
                std::thread::spawn(move || pipe(client, server, fired));
            }
        });
        FaultProxy { port, fired }
    }

    /// Whether a COMMIT went through it.
    pub fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }
}

/// A simple-query message `Q` holding exactly `COMMIT`.
const COMMIT: &[u8] = b"Q\0\0\0\x0bCOMMIT\0";

fn pipe(client: TcpStream, server: TcpStream, fired: Arc<AtomicBool>) {
    let this_one = Arc::new(AtomicBool::new(false));
    let (mut c_read, mut s_write) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    let (mut s_read, mut c_write) = (server, client);
    let cut = this_one.clone();
    let downstream = std::thread::spawn(move || {
        let mut buf = [0u8; 16384];
        loop {
            match s_read.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if cut.load(Ordering::SeqCst) {
                        // The reply to COMMIT: read, never delivered.
                        let _ = c_write.shutdown(Shutdown::Both);
                        break;
                    }
                    if c_write.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = c_write.shutdown(Shutdown::Both);
    });
    let mut buf = [0u8; 16384];
    let mut tail: Vec<u8> = Vec::new();
    loop {
        match c_read.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                tail.extend_from_slice(&buf[..n]);
                let seen = tail.windows(COMMIT.len()).any(|w| w == COMMIT);
                if seen && !fired.swap(true, Ordering::SeqCst) {
                    this_one.store(true, Ordering::SeqCst);
                }
                let keep = tail.len().saturating_sub(COMMIT.len());
                tail.drain(..keep);
                if s_write.write_all(&buf[..n]).is_err() {
                    break;
                }
                if this_one.load(Ordering::SeqCst) {
                    // Let the server finish the COMMIT (its reply is read
                    // and dropped above), then cut this connection.
                    break;
                }
            }
        }
    }
    let _ = downstream.join();
    let _ = s_write.shutdown(Shutdown::Both);
}

/// A server that accepts connections and never says a word.
pub fn silent_server() -> (u16, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    (port, handle)
}

/// A server that answers a TLS request with "no TLS here", as a
/// PostgreSQL server without TLS does, then holds the connection.
pub fn server_without_tls() -> (u16, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let mut held = Vec::new();
        for mut stream in listener.incoming().flatten() {
            let mut request = [0u8; 8];
            if stream.read_exact(&mut request).is_ok() {
                let _ = stream.write_all(b"N");
            }
            held.push(stream);
        }
    });
    (port, handle)
}

/// A proxy that can be cut (every connection closed, new ones refused) and
/// restored, as a network outage does; `freeze` instead stops forwarding
/// without closing anything, as a frozen route does.
pub struct Outage {
    pub port: u16,
    state: Arc<std::sync::Mutex<LinkState>>,
}

#[derive(Default)]
struct LinkState {
    down: bool,
    frozen: bool,
    open: Vec<TcpStream>,
}

impl Outage {
    pub fn start(upstream: String) -> Outage {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(std::sync::Mutex::new(LinkState::default()));
        let shared = state.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if shared.lock().unwrap().down {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                {
                    let mut st = shared.lock().unwrap();
                    st.open.push(client.try_clone().unwrap());
                    st.open.push(server.try_clone().unwrap());
                }
                let (a, b) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let s1 = shared.clone();
                let s2 = shared.clone();
                std::thread::spawn(move || copy(a, server, s1));
                std::thread::spawn(move || copy(b, client, s2));
            }
        });
        Outage { port, state }
    }

    pub fn cut(&self) {
        let mut st = self.state.lock().unwrap();
        st.down = true;
        for s in st.open.drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    pub fn freeze(&self) {
        self.state.lock().unwrap().frozen = true;
    }

    pub fn restore(&self) {
        let mut st = self.state.lock().unwrap();
        st.down = false;
        st.frozen = false;
    }
}

fn copy(mut from: TcpStream, mut to: TcpStream, state: Arc<std::sync::Mutex<LinkState>>) {
    let mut buf = [0u8; 16384];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                // A frozen link swallows everything, and closes nothing.
                if state.lock().unwrap().frozen {
                    continue;
                }
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Both);
}
