//! Unit tests of the exit dispatcher with made-up exits over plain guest RAM.

use super::*;
use crate::guest_memory::{self, BootFrames, PhysRam};
use weft_control::boot::region_kind;
use weft_control::error::ErrorCode;
use weft_image::paging::{PageFlags, map_4k};

const MB: u64 = 0x1000;
const MEM: u64 = 2 << 20;

/// Process calls, recorded; spawn succeeds for slot 1 only.
#[derive(Default)]
struct FakeProcesses {
    calls: Vec<String>,
}

impl ProcessHost for FakeProcesses {
    fn spawn(
        &mut self,
        slot: u64,
        pid: u32,
        root: u64,
        req: u64,
    ) -> Result<ProgramInfo, ErrorCode> {
        self.calls
            .push(format!("spawn {slot} {pid} {root:#x} {req:#x}"));
        (slot == 1)
            .then_some(ProgramInfo {
                root: 0x5000,
                entry: 0x10_0000,
                ..ProgramInfo::default()
            })
            .ok_or(ErrorCode::TooManyProcesses)
    }
    fn map(&mut self, slot: u64, root: u64, vaddr: u64, pages: u64) -> Result<(), ErrorCode> {
        self.calls
            .push(format!("map {slot} {root:#x} {vaddr:#x} {pages}"));
        Ok(())
    }
    fn end(&mut self, slot: u64, pid: u32, how: u64, fault: Option<&FaultReport>) {
        let rip = fault.map(|f| f.frame.rip);
        self.calls.push(format!("end {slot} {pid} {how} {rip:?}"));
    }
    fn figures(&self) -> [SlotFigures; MAX_PROCESSES] {
        let mut f = [SlotFigures::default(); MAX_PROCESSES];
        f[2].memory = 77;
        f
    }
}

struct Harness {
    ram: Ram,
    stats: Stats,
    out: Vec<u8>,
    err: Vec<u8>,
    processes: FakeProcesses,
}

impl Harness {
    fn new() -> Self {
        Self {
            ram: guest_memory::create(MEM).unwrap(),
            stats: Stats::default(),
            out: Vec::new(),
            err: Vec::new(),
            processes: FakeProcesses::default(),
        }
    }

    fn args(&self, args: &[u64]) {
        for (i, a) in args.iter().enumerate() {
            self.ram
                .write_obj(*a, GuestAddress(MB + 8 * i as u64))
                .unwrap();
        }
    }

    fn run(&mut self, exit: Exit) -> Outcome {
        let mut cx = ExitContext {
            ram: &self.ram,
            mailbox: MB,
            stdout: &mut self.out,
            stderr: &mut self.err,
            stats: &mut self.stats,
            processes: &mut self.processes,
        };
        handle_exit(exit, &mut cx)
    }

    fn hypercall(&mut self, number: u32) -> Outcome {
        self.run(Exit::IoOut {
            port: hypercall::PORT,
            size: hypercall::WIDTH,
            value: number,
        })
    }

    fn result(&self) -> u64 {
        self.ram.read_obj(GuestAddress(MB + 48)).unwrap()
    }
}

#[test]
fn exit_hypercall_stops_with_status_and_rejects_out_of_range() {
    let mut h = Harness::new();
    h.args(&[7]);
    assert_eq!(h.hypercall(nr::EXIT), Outcome::Stop(Stop::Exited(7)));
    h.args(&[200]);
    assert_eq!(
        h.hypercall(nr::EXIT),
        Outcome::Stop(Stop::Violation(Violation::ExitStatus(200)))
    );
    assert_eq!(h.stats.hypercalls.exit, 2);
    assert_eq!(h.stats.exits.io, 2);
}

#[test]
fn inline_console_write_reaches_the_right_stream() {
    let mut h = Harness::new();
    h.ram
        .write_slice(b"kernel says hi", GuestAddress(MB + DATA_OFFSET as u64))
        .unwrap();
    h.args(&[console::STDERR, 14, console::SOURCE_INLINE]);
    assert_eq!(h.hypercall(nr::CONSOLE_WRITE), Outcome::Continue);
    assert_eq!(h.err, b"kernel says hi");
    assert!(h.out.is_empty());
    assert_eq!(h.result(), 0);
    h.args(&[console::STDOUT, DATA_LEN as u64 + 1, console::SOURCE_INLINE]);
    assert_eq!(
        h.hypercall(nr::CONSOLE_WRITE),
        Outcome::Stop(Stop::Violation(Violation::InlineLength(
            DATA_LEN as u64 + 1
        )))
    );
}

/// Builds an address space at `root` with a user page at 0x40_0000 holding
/// "hello " then the start of "world", a second user page at 0x40_1000 (a
/// non-adjacent frame), a supervisor page at 0x50_0000, the doorbell page
/// at its user address (§1.3) and, at [`STRAY_USER`], a user page over
/// [`STRAY_GPA`], which is not RAM (no monitor-built space maps one).
fn user_space(h: &Harness) -> u64 {
    let mut frames = BootFrames::new(MEM);
    frames.alloc(1, region_kind::BOOT, "mailbox").unwrap();
    frames.reserve_page_tables(16).unwrap();
    let root = weft_image::paging::FrameAllocator::alloc_zeroed(&mut frames).unwrap();
    let user = PageFlags {
        writable: false,
        user: true,
        executable: false,
        global: false,
    };
    let a = frames.alloc(1, region_kind::PROGRAM, "a").unwrap();
    frames.alloc(1, region_kind::PROGRAM, "gap").unwrap();
    let b = frames.alloc(1, region_kind::PROGRAM, "b").unwrap();
    let k = frames.alloc(1, region_kind::KERNEL, "k").unwrap();
    let mut mem = PhysRam(&h.ram);
    map_4k(&mut mem, &mut frames, root, 0x40_0000, a, user).unwrap();
    map_4k(&mut mem, &mut frames, root, 0x40_1000, b, user).unwrap();
    map_4k(
        &mut mem,
        &mut frames,
        root,
        0x50_0000,
        k,
        PageFlags {
            user: false,
            ..user
        },
    )
    .unwrap();
    map_4k(
        &mut mem,
        &mut frames,
        root,
        weft_control::streams::USER_DOORBELLS_ADDR,
        weft_control::streams::DOORBELL_GPA,
        PageFlags {
            writable: true,
            ..user
        },
    )
    .unwrap();
    map_4k(&mut mem, &mut frames, root, STRAY_USER, STRAY_GPA, user).unwrap();
    h.ram
        .write_slice(b"hello wo", GuestAddress(a + 0xFF8))
        .unwrap();
    h.ram.write_slice(b"rld", GuestAddress(b)).unwrap();
    root
}

/// A guest-physical address that is not RAM, and where [`user_space`] maps
/// it for ring 3.
const STRAY_GPA: u64 = 0xFEC0_0000;
const STRAY_USER: u64 = 0x70_0000;

#[test]
fn a_programs_access_to_memory_that_is_not_ram_is_refused_as_its_page_fault() {
    use weft_control::hypercall::pf;
    use weft_control::streams::{DOORBELL_GPA, USER_DOORBELLS_ADDR};
    let mut h = Harness::new();
    let root = user_space(&h);
    // CR3's flag bits do not hide the PML4.
    let program = Ring::User { cr3: root | 0x8 };
    let refused = |address, write| Outcome::Refuse(PageFault { address, write });
    // A read of the doorbell page (§8.2), at the user address that maps it.
    let read = h.run(Exit::Mmio {
        addr: DOORBELL_GPA + 0x10,
        write: false,
        ring: program,
    });
    assert_eq!(read, refused(USER_DOORBELLS_ADDR + 0x10, false));
    let Outcome::Refuse(fault) = read else {
        unreachable!()
    };
    assert_eq!(fault.error_code(), pf::PRESENT | pf::USER);
    // Any other address that is not RAM, read or written.
    for write in [false, true] {
        assert_eq!(
            h.run(Exit::Mmio {
                addr: STRAY_GPA + 0x123,
                write,
                ring: program
            }),
            refused(STRAY_USER + 0x123, write)
        );
    }
    // A doorbell is a doorbell whoever rings it.
    assert_eq!(
        h.run(Exit::Mmio {
            addr: DOORBELL_GPA,
            write: true,
            ring: program
        }),
        Outcome::Doorbell
    );
    // The same accesses by the kernel are violations.
    for (addr, write) in [(DOORBELL_GPA, false), (STRAY_GPA, true)] {
        assert_eq!(
            h.run(Exit::Mmio {
                addr,
                write,
                ring: Ring::Kernel
            }),
            Outcome::Stop(Stop::Violation(Violation::Mmio { addr, write }))
        );
    }
    // Ring 3 through page tables that map the address to no user page:
    // not the program's doing.
    assert_eq!(
        h.run(Exit::Mmio {
            addr: 0xFED0_0000,
            write: false,
            ring: program
        }),
        Outcome::Stop(Stop::Violation(Violation::Mmio {
            addr: 0xFED0_0000,
            write: false
        }))
    );
    assert_eq!(h.stats.exits.mmio, 7);
}

#[test]
fn user_console_write_walks_pages_and_refuses_bad_ranges() {
    let mut h = Harness::new();
    let root = user_space(&h);
    h.args(&[console::STDOUT, 11, console::SOURCE_USER, 0x40_0FF8, root]);
    assert_eq!(h.hypercall(nr::CONSOLE_WRITE), Outcome::Continue);
    assert_eq!(h.out, b"hello world");
    assert_eq!(h.result(), 0);
    assert_eq!(h.stats.console_bytes, 11);

    for (addr, len) in [
        (0x40_1000, 0x2000),
        (0x50_0000, 4),
        (0x60_0000, 1),
        (u64::MAX - 2, 8),
    ] {
        h.out.clear();
        h.args(&[console::STDOUT, len, console::SOURCE_USER, addr, root]);
        assert_eq!(h.hypercall(nr::CONSOLE_WRITE), Outcome::Continue);
        assert_eq!(h.result(), ErrorCode::BadAddress as u64, "{addr:#x}+{len}");
        assert!(h.out.is_empty());
    }
    h.args(&[
        console::STDOUT,
        console::MAX_USER_WRITE + 1,
        console::SOURCE_USER,
        0x40_0000,
        root,
    ]);
    h.hypercall(nr::CONSOLE_WRITE);
    assert_eq!(h.result(), ErrorCode::BadLength as u64);
    h.args(&[9, 1, console::SOURCE_USER, 0x40_0000, root]);
    h.hypercall(nr::CONSOLE_WRITE);
    assert_eq!(h.result(), ErrorCode::BadArgument as u64);
    // A root outside guest memory is a bad address, not a crash.
    h.args(&[console::STDOUT, 1, console::SOURCE_USER, 0x40_0000, 1 << 40]);
    h.hypercall(nr::CONSOLE_WRITE);
    assert_eq!(h.result(), ErrorCode::BadAddress as u64);
}

#[test]
fn panic_and_fault_reports_are_decoded() {
    let mut h = Harness::new();
    h.ram
        .write_slice(b"boom", GuestAddress(MB + DATA_OFFSET as u64))
        .unwrap();
    h.args(&[4, 0x11, 0x22, 0x33, 0x44]);
    assert_eq!(
        h.hypercall(nr::PANIC),
        Outcome::Stop(Stop::Panic {
            message: "boom".into(),
            rip: 0x11,
            rbp: 0x22,
            rsp: 0x33,
            cr3: 0x44
        })
    );
    // An absurd length is clamped to the data area.
    h.args(&[u64::MAX]);
    assert!(
        matches!(h.hypercall(nr::PANIC), Outcome::Stop(Stop::Panic { message, .. }) if message.len() == DATA_LEN)
    );

    let mut bytes = [0u8; FaultReport::SIZE];
    bytes[120..128].copy_from_slice(&14u64.to_le_bytes());
    bytes[176..184].copy_from_slice(&0xdeadu64.to_le_bytes());
    h.ram
        .write_slice(&bytes, GuestAddress(MB + DATA_OFFSET as u64))
        .unwrap();
    match h.hypercall(nr::FAULT) {
        Outcome::Stop(Stop::Fault(r)) => assert_eq!((r.frame.vector, r.cr2), (14, 0xdead)),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn a_programs_exception_offered_with_no_debugger_takes_its_course() {
    let mut h = Harness::new();
    h.ram.write_obj(0u64, GuestAddress(MB + 48)).unwrap();
    assert_eq!(h.hypercall(nr::DEBUG), Outcome::Continue);
    assert_eq!(h.result(), ErrorCode::Unsupported as u64);
}

#[test]
fn stray_exits_are_violations_and_halts_continue() {
    let mut h = Harness::new();
    assert_eq!(
        h.hypercall(99),
        Outcome::Stop(Stop::Violation(Violation::UnknownHypercall(99)))
    );
    assert_eq!(
        h.run(Exit::IoOut {
            port: hypercall::PORT,
            size: 4,
            value: 2
        }),
        Outcome::Stop(Stop::Violation(Violation::HypercallWidth(4)))
    );
    assert_eq!(
        h.run(Exit::IoOut {
            port: 0x3F8,
            size: 1,
            value: 0
        }),
        Outcome::Stop(Stop::Violation(Violation::UnexpectedPort {
            port: 0x3F8,
            direction: "output"
        }))
    );
    assert!(matches!(
        h.run(Exit::IoIn { port: 0x60 }),
        Outcome::Stop(Stop::Violation(_))
    ));
    assert_eq!(
        h.run(Exit::Mmio {
            addr: 0xFEC0_0000,
            write: true,
            ring: Ring::Kernel
        }),
        Outcome::Stop(Stop::Violation(Violation::Mmio {
            addr: 0xFEC0_0000,
            write: true
        }))
    );
    let bell = weft_control::streams::DOORBELL_GPA;
    assert_eq!(
        h.run(Exit::Mmio {
            addr: bell + 4,
            write: true,
            ring: Ring::Kernel
        }),
        Outcome::Doorbell
    );
    assert!(matches!(
        h.run(Exit::Mmio {
            addr: bell,
            write: false,
            ring: Ring::Kernel
        }),
        Outcome::Stop(Stop::Violation(_))
    ));
    let past = bell + 4096;
    assert!(matches!(
        h.run(Exit::Mmio {
            addr: past,
            write: true,
            ring: Ring::Kernel
        }),
        Outcome::Stop(Stop::Violation(_))
    ));
    assert_eq!(h.run(Exit::Hlt), Outcome::Continue);
    assert_eq!(h.run(Exit::Interrupted), Outcome::Continue);
    assert_eq!(h.run(Exit::Shutdown), Outcome::Stop(Stop::TripleFault));
    assert!(matches!(
        h.run(Exit::Other("FailEntry")),
        Outcome::Stop(Stop::Violation(_))
    ));
    let e = h.stats.exits;
    assert_eq!(
        (e.io, e.mmio, e.hlt, e.interrupted, e.shutdown, e.other),
        (4, 4, 1, 1, 1, 1)
    );
    // A mailbox outside guest memory is a violation, not a panic.
    let mut cx = ExitContext {
        ram: &h.ram,
        mailbox: MEM - 8,
        stdout: Vec::new(),
        stderr: Vec::new(),
        stats: &mut h.stats,
        processes: &mut h.processes,
    };
    assert_eq!(
        handle_exit(
            Exit::IoOut {
                port: hypercall::PORT,
                size: hypercall::WIDTH,
                value: nr::EXIT
            },
            &mut cx
        ),
        Outcome::Stop(Stop::Violation(Violation::Mailbox(MEM)))
    );
}

#[test]
fn process_calls_reach_the_host_and_answer_in_the_mailbox() {
    let mut h = Harness::new();
    let call = |n| Exit::IoOut {
        port: hypercall::PORT,
        size: hypercall::WIDTH,
        value: n,
    };
    let data = MB + DATA_OFFSET as u64;
    let result = |h: &Harness| h.ram.read_obj::<u64>(GuestAddress(MB + 48)).unwrap();
    h.args(&[1, 7, 0x3000, 0x2000]);
    assert_eq!(h.run(call(nr::SPAWN)), Outcome::Continue);
    assert_eq!(result(&h), 0);
    let mut raw = [0u8; ProgramInfo::SIZE];
    h.ram.read_slice(&mut raw, GuestAddress(data)).unwrap();
    assert_eq!(ProgramInfo::decode(&raw).entry, 0x10_0000);
    // A refusal is an error code for the kernel, not a stop.
    h.args(&[2, 8, 0x3000, 0x2000]);
    assert_eq!(h.run(call(nr::SPAWN)), Outcome::Continue);
    assert_eq!(result(&h), ErrorCode::TooManyProcesses as u64);
    // A pid that does not fit 32 bits is refused before the host sees it.
    h.args(&[1, 1 << 40, 0x3000, 0x2000]);
    h.run(call(nr::SPAWN));
    assert_eq!(result(&h), ErrorCode::BadArgument as u64);
    h.args(&[1, 0x5000, 0x4000_0000_0000, 3]);
    h.run(call(nr::MAP));
    assert_eq!(result(&h), 0);
    // The fault report's rip is its 18th word (§3.4).
    let mut bytes = Vec::new();
    for i in 0..FaultReport::SIZE / 8 {
        let v = if i == 17 { 0x1234u64 } else { 0 };
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    h.ram.write_slice(&bytes, GuestAddress(data)).unwrap();
    h.args(&[1, 7, end::FAULTED]);
    h.run(call(nr::PROCESS_END));
    h.args(&[1, 7, end::EXITED]);
    h.run(call(nr::PROCESS_END));
    h.run(call(nr::FIGURES));
    let mut f = [0u8; SlotFigures::SIZE];
    h.ram
        .read_slice(&mut f, GuestAddress(data + 2 * SlotFigures::SIZE as u64))
        .unwrap();
    assert_eq!(SlotFigures::decode(&f).memory, 77);
    assert_eq!(
        h.processes.calls,
        [
            "spawn 1 7 0x3000 0x2000",
            "spawn 2 8 0x3000 0x2000",
            "map 1 0x5000 0x400000000000 3",
            "end 1 7 2 Some(4660)",
            "end 1 7 0 None",
        ]
    );
    assert_eq!(h.stats.hypercalls.process, 7);
}

mod hostile {
    //! The dispatcher under a hostile guest: any exit, with any hypercall
    //! number and any mailbox (arguments, result word and inline data),
    //! gives an outcome and never panics; the fake host sees only calls
    //! whose numbers name them.
    use super::*;
    use proptest::prelude::*;

    fn exit() -> impl Strategy<Value = Exit> {
        prop_oneof![
            4 => (0u32..24).prop_map(|value| Exit::IoOut { port: hypercall::PORT, size: hypercall::WIDTH, value }),
            1 => any::<u32>().prop_map(|value| Exit::IoOut { port: hypercall::PORT, size: hypercall::WIDTH, value }),
            1 => (any::<u16>(), any::<u8>(), any::<u32>())
                .prop_map(|(port, size, value)| Exit::IoOut { port, size, value }),
            1 => any::<u16>().prop_map(|port| Exit::IoIn { port }),
            1 => (any::<u64>(), any::<bool>(), any::<Option<u64>>()).prop_map(|(addr, write, cr3)| {
                let ring = cr3.map_or(Ring::Kernel, |cr3| Ring::User { cr3 });
                Exit::Mmio { addr, write, ring }
            }),
            1 => Just(Exit::Hlt),
            1 => Just(Exit::Shutdown),
            1 => Just(Exit::Interrupted),
            1 => Just(Exit::Debug),
        ]
    }

    /// A mailbox argument: small values, values near the ends of RAM and
    /// of the address space, anything.
    fn word() -> impl Strategy<Value = u64> {
        prop_oneof![
            0u64..64,
            (MEM - 64)..(MEM + 64),
            (u64::MAX - 64)..=u64::MAX,
            any::<u64>(),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn any_exit_and_mailbox_gets_an_outcome(
            exits in proptest::collection::vec(exit(), 1..6),
            args in proptest::collection::vec(word(), 6),
            data in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            let mut h = Harness::new();
            h.args(&args);
            h.ram.write_slice(&data, GuestAddress(MB + DATA_OFFSET as u64)).unwrap();
            for e in exits {
                // Every outcome is acceptable; a panic is not.
                let _ = h.run(e);
            }
            for call in &h.processes.calls {
                let name = call.split(' ').next().unwrap_or("");
                prop_assert!(["spawn", "map", "end"].contains(&name), "{call}");
            }
        }
    }
}
