//! `stateful [--serve GUID] [--open PATH] [--udp ADDR] MIB PERIOD_MS
//! [BUSY_MS [EVERY DEVICE...]]`: an event app (PROTOCOL.md §13.2) for the
//! tests and benchmarks that move a running app between devices (§19). It
//! keeps a lot of state whose correctness shows in its output, and holds
//! no descriptor past the standard streams and the root but, with the
//! options, a service, a file and a UDP socket: its event buffer, one
//! timer at a time, and those descriptors. The options come first, in any
//! order, each at most once.
//!
//! With `--serve GUID` it provides service GUID (named `stateful`) as the
//! key-value service `kv` does (`set`, `get`, `del`, `count`, over a store
//! of its own that moves with it): a client that counts a key sees each of
//! its requests handled once and in order wherever the app runs. The
//! service's READABLE events are not part of the hash below (how many come
//! depends on timing), and its requests are answered in the batch that
//! reports them.
//!
//! With `--open PATH` it opens the file PATH and keeps it open: a file
//! cannot follow a move, so at the device it moves to the app is told (a
//! `MOVED` event, not hashed either) and prints `stateful: descriptor FD
//! (WHAT) was closed by the move`, WHAT being `file`, `UDP socket` (a
//! `--udp` socket that could not follow) or the event's number.
//!
//! With `--udp ADDR` it binds a UDP socket on ADDR (`IP:PORT`; under a
//! daemon a fabric address, whose socket follows the app when it moves,
//! §12.5) and prints `stateful udp BOUND_ADDR` (before `stateful ready`).
//! At each of the socket's READABLE events it takes every datagram that
//! waits and sends each back, unchanged, to its sender, one after the
//! other in the order they came (a send that would block is made again
//! when the socket is writable, before any other datagram is taken).
//! These events are not part of the hash below either. A refused earlier send's error, which the socket reports
//! once, is printed on standard error (`stateful: udp: ...`) and the call
//! made again; a socket that fails (the same errors 64 times in a row, or
//! ended by the monitor) prints `stateful: udp: WHY` and exits with
//! status 6.
//!
//! At start it allocates MIB mebibytes (0 to 256; the runtime caps an app's
//! memory at 256 MiB by default, so 256 itself only fits under a larger
//! cap) as 64 KiB blocks, fills block `i` with a pseudo-random sequence
//! seeded from `i` and records a 64-bit checksum of each block. It then
//! registers its event buffer, starts timer token 1 due after PERIOD_MS
//! milliseconds, prints `stateful ready MIB` and returns.
//!
//! Its state is `n`, the number of events seen, and `h`, a 64-bit FNV-1a
//! hash (offset basis `0xcbf29ce484222325`, prime `0x100000001b3`, one
//! byte at a time) of every event's 16-byte record as §13.4 lays it out,
//! in delivery order: `kind: u32`, `id: u32`, `value: u64`, little-endian.
//! Only timers count (kind 4, id 0, value the token). On each timer with
//! token `t` it:
//!
//! 1. feeds the record into `h` and counts it in `n`;
//! 2. overwrites block `n mod B` (B = MIB × 16 blocks; nothing when MIB is
//!    0) with a sequence seeded from `h` and records its checksum;
//! 3. checks block `(n + B/2) mod B` against its recorded checksum: on a
//!    mismatch it prints `stateful CORRUPT block BLOCK at n N` and exits
//!    with status 3;
//! 4. with BUSY_MS, computes (checking the monotonic clock) for BUSY_MS
//!    milliseconds inside this batch;
//! 5. prints `tick N HASH`: `n` in decimal and `h` as 16 lowercase hex
//!    digits;
//! 6. starts timer token `t + 1`, due after PERIOD_MS;
//! 7. with EVERY and DEVICEs, on every EVERY-th tick, asks to move itself
//!    (`move_self`) to the next DEVICE in turn, round and round, and prints
//!    `going DEVICE` (or `stay DEVICE: WHY` when the runtime refuses).
//!
//! So the app's `n`-th line is `tick N HASH` with HASH the FNV-1a of the
//! concatenation, for `t` = 1 to N, of the records `(4u32, 0u32, t as u64)`,
//! all little-endian. In Python:
//!
//! ```text
//! h = 0xcbf29ce484222325
//! for t in range(1, n + 1):
//!     for b in struct.pack("<IIQ", 4, 0, t):
//!         h = ((h ^ b) * 0x100000001b3) % 2**64
//! expected = f"tick {n} {h:016x}"
//! ```
//!
//! Every line goes to standard output and is flushed when written. The
//! app never ends by itself. An event other than a timer or its service's
//! (which the app never asks for) prints `stateful UNEXPECTED EVENT` and
//! the event, and exits with status 4; a failure of its service prints
//! `stateful: service: WHY` and exits with status 5 (a UDP failure: 6,
//! above). Memory it cannot allocate prints
//! `stateful: cannot allocate MIB MiB` on standard error and exits 1; bad
//! arguments print the usage on standard error and exit 2.

extern crate alloc;

#[path = "../../../src/bin/kv/rules.rs"]
mod rules;
mod udp;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};
use weft_app::ipc::{Guid, Service};
use weft_app::{App, Event, Interest};

const USAGE: &str = "usage: stateful [--serve GUID] [--open PATH] [--udp ADDR] MIB PERIOD_MS \
                     [BUSY_MS [EVERY DEVICE...]] (MIB 0 to 256)";

/// The most memory the app fills, in MiB.
const MAX_MIB: usize = 256;
/// Words (u64) of a 64 KiB block.
const BLOCK_WORDS: usize = (64 << 10) / 8;
/// Blocks of a MiB.
const BLOCKS_PER_MIB: usize = 16;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
/// The `kind` of a timer's record (§13.4).
const TIMER: u32 = 4;
/// Mixed into the seed of the initial fill of block `i`.
const FILL_SEED: u64 = 0x5354_4154_4546_554c;

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let options = Options::take(&mut args);
    let held = options.open.map(|path| match std::fs::File::open(&path) {
        Ok(file) => file,
        Err(e) => {
            eprintln!("stateful: cannot open {path}: {e}");
            std::process::exit(1);
        }
    });
    let (mib, period, busy, tour) = match args.as_slice() {
        [mib, period] => (mib, period, None, None),
        [mib, period, busy] => (mib, period, Some(busy), None),
        [mib, period, busy, every, devices @ ..] if !devices.is_empty() => {
            let every = number(every).max(1);
            (mib, period, Some(busy), Some((every, devices.to_vec())))
        }
        _ => usage(),
    };
    let mib = match mib.parse::<usize>() {
        Ok(m) if m <= MAX_MIB => m,
        _ => usage(),
    };
    let period = Duration::from_millis(number(period));
    let busy = busy.map_or(Duration::ZERO, |b| Duration::from_millis(number(b)));

    let blocks = mib * BLOCKS_PER_MIB;
    let mut memory = Vec::new();
    if memory.try_reserve_exact(blocks * BLOCK_WORDS).is_err() {
        eprintln!("stateful: cannot allocate {mib} MiB");
        std::process::exit(1);
    }
    memory.resize(blocks * BLOCK_WORDS, 0);
    let sums = memory
        .chunks_exact_mut(BLOCK_WORDS)
        .enumerate()
        .map(|(i, block)| fill(block, FILL_SEED ^ i as u64))
        .collect();

    // The socket first: a restore makes descriptors in their order, so a
    // destination that cannot provide the service has taken the socket
    // over by then, and gives it back.
    let udp = options.udp.map(udp::Echo::bind);
    let service = options.serve.map(|guid| {
        let service = Service::create(guid, "stateful").unwrap_or_else(|e| service_failed(&e));
        if let Err(e) = weft_app::interest(&service, Interest::Readable) {
            service_failed(&e);
        }
        (service, BTreeMap::new())
    });
    weft_app::run(Stateful {
        memory,
        sums,
        hash: FNV_OFFSET,
        seen: 0,
        period,
        busy,
        tour,
        service,
        udp,
        _held: held,
    });
    weft_app::timer(1, period);
    line(format_args!("stateful ready {mib}"));
}

/// The options before the other arguments.
#[derive(Default)]
struct Options {
    serve: Option<Guid>,
    open: Option<String>,
    udp: Option<SocketAddr>,
}

impl Options {
    /// Takes the options at the front of `args`; the usage for a bad one.
    fn take(args: &mut Vec<String>) -> Self {
        let mut options = Self::default();
        while let [option, value, ..] = args.as_slice()
            && option.starts_with("--")
        {
            let fresh = match option.as_str() {
                "--serve" => options
                    .serve
                    .replace(Guid::parse(value).unwrap_or_else(|| usage()))
                    .is_none(),
                "--open" => options.open.replace(value.clone()).is_none(),
                "--udp" => options
                    .udp
                    .replace(value.parse().unwrap_or_else(|_| usage()))
                    .is_none(),
                _ => usage(),
            };
            if !fresh {
                usage();
            }
            args.drain(..2);
        }
        options
    }
}

/// A whole number, or the usage.
fn number(arg: &str) -> u64 {
    arg.parse().unwrap_or_else(|_| usage())
}

fn usage() -> ! {
    eprintln!("{USAGE}");
    std::process::exit(2)
}

/// Prints one line on standard output and flushes it.
fn line(args: std::fmt::Arguments) {
    // Formatted first and written whole: the standard output writes the
    // pieces of a format one by one, and another writer's line (the
    // daemon's, in a shared log) could land between them.
    let text = format!("{args}\n");
    let mut out = std::io::stdout().lock();
    if out.write_all(text.as_bytes()).is_err() || out.flush().is_err() {
        std::process::exit(1);
    }
}

/// The key-value store its service keeps.
type Store = BTreeMap<Vec<u8>, Vec<u8>>;

struct Stateful {
    /// The blocks, one after another.
    memory: Vec<u64>,
    /// The checksum of each block as last written.
    sums: Vec<u64>,
    /// `h`: FNV-1a of every event record seen.
    hash: u64,
    /// `n`: events seen.
    seen: u64,
    period: Duration,
    busy: Duration,
    /// Every how many ticks it moves itself, and where to, in turn.
    tour: Option<(u64, Vec<String>)>,
    /// With `--serve`: the service and its store.
    service: Option<(Service, Store)>,
    /// With `--udp`: the socket it echoes on.
    udp: Option<udp::Echo>,
    /// With `--open`: the file it keeps open.
    _held: Option<std::fs::File>,
}

fn service_failed(e: &dyn std::fmt::Display) -> ! {
    line(format_args!("stateful: service: {e}"));
    std::process::exit(5)
}

impl App for Stateful {
    fn event(&mut self, event: Event) {
        match event {
            Event::Timer(token) => self.tick(token),
            Event::Readable(fd)
                if self
                    .service
                    .as_ref()
                    .is_some_and(|(s, _)| s.as_raw_fd() == fd) =>
            {
                self.answer();
            }
            Event::Readable(fd) | Event::Writable(fd) if self.udp_fd() == Some(fd) => {
                self.udp.iter_mut().for_each(udp::Echo::echo);
            }
            Event::Closed { fd, code } if self.udp_fd() == Some(fd) => {
                udp::failed(format_args!("the socket was ended (code {code})"));
            }
            Event::Moved { fd, what } => {
                let what = match what {
                    1 => "file".to_string(),
                    5 => "UDP socket".to_string(),
                    other => other.to_string(),
                };
                line(format_args!(
                    "stateful: descriptor {fd} ({what}) was closed by the move"
                ));
            }
            other => {
                line(format_args!("stateful UNEXPECTED EVENT {other:?}"));
                std::process::exit(4);
            }
        }
    }
}

impl Stateful {
    /// The descriptor of its `--udp` socket.
    fn udp_fd(&self) -> Option<i32> {
        self.udp.as_ref().map(udp::Echo::fd)
    }

    fn tick(&mut self, token: u64) {
        let mut record = [0; 16];
        record[0..4].copy_from_slice(&TIMER.to_le_bytes());
        record[4..8].copy_from_slice(&0u32.to_le_bytes());
        record[8..16].copy_from_slice(&token.to_le_bytes());
        self.hash = fnv1a(self.hash, &record);
        self.seen += 1;

        let blocks = self.sums.len() as u64;
        if blocks > 0 {
            let write = (self.seen % blocks) as usize;
            let seed = self.hash ^ write as u64;
            self.sums[write] = fill(self.block(write), seed);
            let check = ((self.seen + blocks / 2) % blocks) as usize;
            if checksum(self.block(check)) != self.sums[check] {
                line(format_args!(
                    "stateful CORRUPT block {check} at n {}",
                    self.seen
                ));
                std::process::exit(3);
            }
        }

        if !self.busy.is_zero() {
            let start = Instant::now();
            while start.elapsed() < self.busy {
                std::hint::spin_loop();
            }
        }

        line(format_args!("tick {} {:016x}", self.seen, self.hash));
        weft_app::timer(token.wrapping_add(1), self.period);
        if let Some((every, devices)) = &self.tour
            && self.seen.is_multiple_of(*every)
        {
            let next = &devices[((self.seen / every - 1) % devices.len() as u64) as usize];
            match weft_app::fabric::move_self(next) {
                Ok(()) => line(format_args!("going {next}")),
                Err(e) => line(format_args!("stay {next}: {e}")),
            }
        }
    }

    /// Answers every request its service has now.
    fn answer(&mut self) {
        let Some((service, store)) = &mut self.service else {
            return;
        };
        loop {
            let m = match service.next_message() {
                Ok(Some(m)) => m,
                Ok(None) => return,
                Err(e) => service_failed(&e),
            };
            let answer = rules::apply(store, &m.data).map(<[u8]>::to_vec);
            let sent = match (m.request, answer) {
                (false, _) => Ok(()),
                (true, Ok(value)) => service.reply(m.id, &value),
                (true, Err(why)) => service.refuse(m.id, why),
            };
            if let Err(e) = sent {
                service_failed(&e);
            }
        }
    }

    fn block(&mut self, i: usize) -> &mut [u64] {
        &mut self.memory[i * BLOCK_WORDS..(i + 1) * BLOCK_WORDS]
    }
}

/// 64-bit FNV-1a of `bytes`, continuing from `hash`.
fn fnv1a(hash: u64, bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(hash, |h, &b| (h ^ u64::from(b)).wrapping_mul(FNV_PRIME))
}

/// Fills `block` with the SplitMix64 sequence from `seed`; its checksum.
fn fill(block: &mut [u64], seed: u64) -> u64 {
    let mut state = seed;
    for word in block.iter_mut() {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        *word = z ^ (z >> 31);
    }
    checksum(block)
}

/// A cheap 64-bit checksum of a block: FNV-1a-like, a word at a time.
fn checksum(block: &[u64]) -> u64 {
    block.iter().fold(FNV_OFFSET, |c, &w| {
        (c ^ w).rotate_left(23).wrapping_mul(FNV_PRIME)
    })
}
