//! A TCP proxy between a pool and a database server that forwards bytes both ways and can
//! be armed to cut one connection at a chosen client command: the way to lose a statement
//! in flight at an exact point.
//!
//! Both directions are read packet by packet (no TLS, no compression in tests: a 4-byte
//! header of a 3-byte little-endian payload length and a sequence id; a command is a client
//! packet with sequence id 0 whose first payload byte is the command). The proxy remembers,
//! per connection, the text each `COM_STMT_PREPARE` prepared and the statement id the server
//! gave it, so an `COM_STMT_EXECUTE` can be matched by its statement's text.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

const COM_QUERY: u8 = 0x03;
const COM_STMT_PREPARE: u8 = 0x16;
const COM_STMT_EXECUTE: u8 = 0x17;

/// A client command to cut at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// A `COM_QUERY` whose text starts with this (ignoring ASCII case), e.g. `COMMIT`.
    Query(String),
    /// A `COM_STMT_EXECUTE` of a statement prepared from a text that starts with this
    /// (ignoring ASCII case), e.g. `CALL vs_create_node_v6`.
    Execute(String),
}

/// Where the connection is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// The command is swallowed: the server never gets it.
    Unsent,
    /// Right after the command was forwarded: the server may or may not run it.
    Sent,
    /// When the server's reply to the command arrives: the reply is swallowed (the server
    /// ran it, the client never hears).
    Answered,
}

/// The proxy; dropping it stops it and cuts every connection.
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

struct Shared {
    server: SocketAddr,
    trap: Mutex<Option<(Command, Cut)>>,
    fired: AtomicUsize,
    stopping: AtomicBool,
    /// Both sockets of every connection, for cutting them all when stopping.
    links: Mutex<Vec<(TcpStream, TcpStream)>>,
}

/// What the two directions of one connection tell each other.
#[derive(Default)]
struct Link {
    /// The text of the prepare whose reply (with the statement id) comes next.
    preparing: Option<String>,
    /// Statement ids and the texts they were prepared from.
    statements: HashMap<u32, String>,
    /// Cut when the next server packet arrives, swallowing it.
    cut_on_reply: bool,
}

impl Proxy {
    /// A proxy on a free loopback port forwarding to `host:port`.
    pub fn start(host: &str, port: u16) -> Proxy {
        let server = std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
            .expect("resolve the database address")
            .next()
            .expect("an address for the database");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let shared = Arc::new(Shared {
            server,
            trap: Mutex::new(None),
            fired: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
            links: Mutex::new(Vec::new()),
        });
        let accept = {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || accept_loop(listener, shared))
        };
        Proxy {
            addr,
            shared,
            accept: Some(accept),
        }
    }

    /// The loopback port clients connect to.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Cuts the connection that next sends `command`, at `cut` (once; re-arm for more).
    pub fn arm(&self, command: Command, cut: Cut) {
        *self.shared.trap.lock().unwrap() = Some((command, cut));
    }

    /// Whether the trap is still waiting for its command.
    pub fn armed(&self) -> bool {
        self.shared.trap.lock().unwrap().is_some()
    }

    /// How many connections were cut by a trap so far.
    pub fn fired(&self) -> usize {
        self.shared.fired.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(self.addr);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        for (client, server) in self.shared.links.lock().unwrap().drain(..) {
            let _ = client.shutdown(Shutdown::Both);
            let _ = server.shutdown(Shutdown::Both);
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for client in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        let Ok(server) = TcpStream::connect(shared.server) else {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
            continue;
        };
        if let (Ok(c3), Ok(s3)) = (client.try_clone(), server.try_clone()) {
            shared.links.lock().unwrap().push((c3, s3));
        }
        let link = Arc::new(Mutex::new(Link::default()));
        {
            let (shared, link) = (Arc::clone(&shared), Arc::clone(&link));
            let (client, server) = (client, server);
            std::thread::spawn(move || client_to_server(client, server, &shared, &link));
        }
        std::thread::spawn(move || server_to_client(s2, c2, &link));
    }
}

/// Reads one packet (header and payload); `None` at the end of the stream or on an error.
fn read_packet(from: &mut TcpStream) -> Option<Vec<u8>> {
    let mut header = [0u8; 4];
    from.read_exact(&mut header).ok()?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], 0]) as usize;
    let mut packet = header.to_vec();
    packet.resize(4 + len, 0);
    from.read_exact(&mut packet[4..]).ok()?;
    Some(packet)
}

fn cut(a: &TcpStream, b: &TcpStream) {
    let _ = a.shutdown(Shutdown::Both);
    let _ = b.shutdown(Shutdown::Both);
}

fn starts_with_ignore_case(text: &[u8], prefix: &str) -> bool {
    let text = trim_start(text);
    text.len() >= prefix.len() && text[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

fn trim_start(text: &[u8]) -> &[u8] {
    let skip = text.iter().take_while(|b| b.is_ascii_whitespace()).count();
    &text[skip..]
}

fn client_to_server(
    mut client: TcpStream,
    mut server: TcpStream,
    shared: &Shared,
    link: &Mutex<Link>,
) {
    while let Some(packet) = read_packet(&mut client) {
        let (seq, payload) = (packet[3], &packet[4..]);
        let mut cut_at = None;
        if seq == 0 && !payload.is_empty() {
            let command = payload[0];
            let body = &payload[1..];
            if command == COM_STMT_PREPARE {
                link.lock().unwrap().preparing = Some(String::from_utf8_lossy(body).into_owned());
            }
            let mut trap = shared.trap.lock().unwrap();
            let hit = match trap.as_ref() {
                Some((Command::Query(text), _)) if command == COM_QUERY => {
                    starts_with_ignore_case(body, text)
                }
                Some((Command::Execute(text), _))
                    if command == COM_STMT_EXECUTE && body.len() >= 4 =>
                {
                    let id = u32::from_le_bytes([body[0], body[1], body[2], body[3]]);
                    link.lock()
                        .unwrap()
                        .statements
                        .get(&id)
                        .is_some_and(|prepared| starts_with_ignore_case(prepared.as_bytes(), text))
                }
                _ => false,
            };
            if hit {
                cut_at = trap.take().map(|(_, cut)| cut);
                shared.fired.fetch_add(1, Ordering::SeqCst);
            }
        }
        match cut_at {
            Some(Cut::Unsent) => {
                cut(&client, &server);
                return;
            }
            Some(Cut::Answered) => link.lock().unwrap().cut_on_reply = true,
            _ => {}
        }
        if server.write_all(&packet).is_err() {
            cut(&client, &server);
            return;
        }
        if cut_at == Some(Cut::Sent) {
            let _ = server.flush();
            cut(&client, &server);
            return;
        }
    }
    cut(&client, &server);
}

fn server_to_client(mut server: TcpStream, mut client: TcpStream, link: &Mutex<Link>) {
    while let Some(packet) = read_packet(&mut server) {
        {
            let mut link = link.lock().unwrap();
            if link.cut_on_reply {
                cut(&client, &server);
                return;
            }
            if let Some(text) = link.preparing.take() {
                // COM_STMT_PREPARE_OK: status 0, then the statement id.
                if packet.len() >= 9 && packet[4] == 0 {
                    let id = u32::from_le_bytes([packet[5], packet[6], packet[7], packet[8]]);
                    link.statements.insert(id, text);
                }
            }
        }
        if client.write_all(&packet).is_err() {
            break;
        }
    }
    cut(&client, &server);
}
