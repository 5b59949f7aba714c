//! Tests of the relay's pipe regions over a fake VMM (plain host memory, no
//! VM): the test plays the guest, writing rings and bell bits as a program
//! would.

use super::*;
use crate::host;
use std::ptr::NonNull;
use std::sync::atomic::AtomicU32;
use std::sync::atomic::Ordering::SeqCst;
use std::time::Instant;
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};
use weft_control::control_pipe::{MAX_FRAME, Reply, Request};
use weft_control::frame::{self, Code};
use weft_control::streams::region_gpa;
use weft_control::streams::{PIPE_REGION_SIZE, RING_CAPACITY, bell, rings, slot};
use weft_data_pipe::{Error, Memory, NoNotify, Waitable};

const CAPACITY: usize = RING_CAPACITY as usize;

/// The longest a test waits for the relay: a guard against hanging, not a
/// measurement.
const PATIENCE: Duration = Duration::from_secs(2 * DRAIN_LIMIT.as_secs());

/// Calls `f` until it returns a value.
fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < PATIENCE, "the relay never {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A VMM with every pipe region in one host mapping and no guest: what the
/// relay asks of it is counted.
struct FakeVmm {
    memory: GuestMemoryMmap<()>,
    doorbells_registered: AtomicU64,
}

impl FakeVmm {
    fn new() -> Arc<Self> {
        let len = (REGIONS * PIPE_REGION_SIZE) as usize;
        Arc::new(Self {
            memory: GuestMemoryMmap::from_ranges(&[(GuestAddress(region_gpa(0)), len)]).unwrap(),
            doorbells_registered: AtomicU64::new(0),
        })
    }
}

// SAFETY: every region is part of `memory`, one page-aligned private
// anonymous mapping owned by the fake, read and written by the test only
// through `RawRegion`s.
unsafe impl Vmm for FakeVmm {
    fn pipe_region(&self, index: u64) -> Option<NonNull<u8>> {
        let region = self.memory.iter().next()?;
        let offset = region.to_region_addr(GuestAddress(region_gpa(index)))?;
        NonNull::new(region.get_host_address(offset).ok()?)
    }
    fn map_spawn_regions(&self) -> Result<(), VmmError> {
        Ok(())
    }
    fn zero_pipe_region(&self, index: u64) -> std::io::Result<()> {
        let base = self
            .pipe_region(index)
            .ok_or(std::io::ErrorKind::InvalidInput)?;
        // SAFETY: the region is a page-aligned range of the fake's own
        // private anonymous mapping, reached by no reference.
        unsafe { host::discard_pages(base, PIPE_REGION_SIZE as usize) }
    }
    fn stream_interrupt(&self) -> Result<EventFd, VmmError> {
        Ok(EventFd::new(libc::EFD_NONBLOCK)?)
    }
    fn register_doorbell(&self, _: &EventFd) -> Result<(), VmmError> {
        self.doorbells_registered.fetch_add(1, SeqCst);
        Ok(())
    }
    fn pin_relay_thread(&self) {}
}

/// The test's side of one process's region: its ends of the control pipe.
struct Process {
    region: RawRegion,
    control_tx: Producer<RawRegion>,
    control_rx: Consumer<RawRegion>,
}

impl Process {
    fn attach(relay: &Relay, index: u64) -> Self {
        let region = relay.region(index).unwrap();
        let r = rings(slot::CONTROL).unwrap();
        Self {
            region,
            control_tx: Producer::new(region, r.to_monitor as usize, CAPACITY, NoNotify).unwrap(),
            control_rx: Consumer::new(region, r.to_guest as usize, CAPACITY, NoNotify).unwrap(),
        }
    }

    /// Sets `slot`'s pending bit for `reason` and rings the doorbell (§8.2).
    /// Not an atomic OR: a bit the relay takes meanwhile is set again, which
    /// only costs a spurious wake-up.
    fn signal(&self, relay: &Relay, slot: u64, reason: u64) {
        let (offset, mask) = bell::bit(slot, reason);
        let word = self.region.load_u64(offset as usize, SeqCst);
        self.region.store_u64(offset as usize, word | mask, SeqCst);
        relay.ring();
    }

    /// Sends a control request and returns the reply.
    fn control(&mut self, relay: &Relay, request: Request) -> Reply {
        let mut buf = [0u8; MAX_FRAME];
        let n = request.encode(&mut buf);
        assert_eq!(self.control_tx.write(&buf[..n]), Ok(n));
        self.signal(relay, slot::CONTROL, bell::DATA);
        let mut got = Vec::new();
        eventually("replied", || {
            let mut chunk = [0u8; MAX_FRAME];
            match self.control_rx.read(&mut chunk) {
                Ok(n) => got.extend_from_slice(&chunk[..n]),
                Err(Error::WouldBlock) => {}
                Err(e) => panic!("control pipe: {e}"),
            }
            let (header, body) = frame::split(&got).ok()?;
            Some(Reply::decode(header, body).unwrap())
        })
    }

    /// Opens a stream: its slot.
    fn open(&mut self, relay: &Relay, request: u32) -> u32 {
        match self.control(relay, Request::Open { request }) {
            Reply::Opened {
                request: r, slot, ..
            } if r == request => slot,
            other => panic!("OPEN answered with {other:?}"),
        }
    }
}

#[test]
fn regions_open_only_when_free_and_in_range() {
    let relay = Relay::start(FakeVmm::new(), Policy::default(), None, None).unwrap();
    assert!(!relay.region_free(0) && !relay.region_free(REGIONS));
    assert!((1..REGIONS).all(|i| relay.region_free(i)));
    assert_eq!(relay.open_streams(0), 4);
    assert_eq!(relay.open_streams(1), 0);
    for index in [0, REGIONS] {
        let e = relay.open_region(index).unwrap_err();
        assert!(
            matches!(e, RelayError::NoSuchRegion(i) if i == index),
            "{e}"
        );
    }
    relay.open_region(REGIONS - 1).unwrap();
    assert!(!relay.region_free(REGIONS - 1));
    let e = relay.open_region(REGIONS - 1).unwrap_err();
    assert!(matches!(e, RelayError::RegionBusy(_)), "{e}");
    // Closing a region that is not open does nothing.
    relay.close_region(2);
    relay.close_region(REGIONS);
    assert!(relay.region_free(2));
    // `finish` ends the spawned region too, and returns.
    relay.finish();
}

#[test]
fn a_spawned_region_serves_its_streams_and_is_zeroed_for_reuse() {
    let relay = Relay::start(FakeVmm::new(), Policy::default(), None, None).unwrap();
    relay.open_region(1).unwrap();
    // Control pipe, stdout and stderr; stdin is closed from the start.
    assert_eq!(relay.open_streams(1), 3);
    let mut p = Process::attach(&relay, 1);

    let to_guest = rings(slot::STDIN).unwrap().to_guest as usize;
    let mut stdin = Consumer::new(p.region, to_guest, CAPACITY, NoNotify).unwrap();
    assert_eq!(stdin.read(&mut [0u8; 8]), Ok(0), "stdin is at end-of-file");

    assert_eq!(p.open(&relay, 7), slot::FIRST_DYNAMIC as u32);
    assert_eq!(relay.open_streams(1), 4);
    let refused = p.control(
        &relay,
        Request::Close {
            request: 8,
            slot: 1,
        },
    );
    assert_eq!(
        refused,
        Reply::Refused {
            request: 8,
            code: Code::BadSlot
        }
    );

    // Standard output reaches `weft`'s (the test's) own.
    let line = b"relay test: a spawned process's standard output\n";
    let to_monitor = rings(slot::STDOUT).unwrap().to_monitor as usize;
    let mut stdout = Producer::new(p.region, to_monitor, CAPACITY, NoNotify).unwrap();
    assert_eq!(stdout.write(line), Ok(line.len()));
    p.signal(&relay, slot::STDOUT, bell::DATA);
    eventually("copied standard output", || {
        (stdout.writable_len() == Ok(CAPACITY)).then_some(())
    });

    // What the process leaves behind is gone when the region is reused.
    let tail = PIPE_REGION_SIZE as usize - 8;
    p.region.store_u64(tail, u64::MAX, SeqCst);
    // Ring ends close (write their headers) when dropped: before the region
    // is zeroed, and before the relay unmaps it at `finish`.
    drop((stdin, stdout, p));
    relay.close_region(1);
    assert_eq!(relay.open_streams(1), 0);
    eventually("freed the region", || relay.region_free(1).then_some(()));
    relay.open_region(1).unwrap();
    let mut p = Process::attach(&relay, 1);
    assert_eq!(p.region.load_u64(tail, SeqCst), 0);
    assert_eq!(p.open(&relay, 9), slot::FIRST_DYNAMIC as u32);
    drop(p);

    let stats = relay.finish();
    assert_eq!(stats.bytes_out.load(SeqCst), line.len() as u64);
    assert_eq!(stats.opened.load(SeqCst), 2);
}

#[test]
fn each_interrupt_names_the_region_it_is_for() {
    let relay = Relay::start(FakeVmm::new(), Policy::default(), None, None).unwrap();
    let page = Box::into_raw(Box::new(StatusPage::decode(&[0; StatusPage::SIZE])));
    // SAFETY: a status page that outlives the relay (freed after `finish`
    // below), whose `wake` word is reached only atomically meanwhile.
    unsafe { relay.set_status_page(NonNull::new(page).unwrap()) };
    // SAFETY: `page` is live until freed below; `wake` is 4-aligned.
    let word = unsafe { AtomicU32::from_ptr(std::ptr::addr_of_mut!((*page).wake)) };
    relay.open_region(3).unwrap();
    let mut p = Process::attach(&relay, 3);
    // A reply into a ring the process sleeps on raises the interrupt.
    assert_eq!(
        p.control_rx.prepare_wait(),
        Ok(weft_data_pipe::WaitDecision::Sleep)
    );
    assert_eq!(p.open(&relay, 1), slot::FIRST_DYNAMIC as u32);
    assert_eq!(word.load(SeqCst), 1 << 3, "only region 3's bit");
    drop(p);
    let stats = relay.finish();
    assert!(stats.interrupts.load(SeqCst) >= 1);
    // SAFETY: made by `Box::into_raw` above; the relay is gone.
    drop(unsafe { Box::from_raw(page) });
}

#[test]
fn the_doorbell_becomes_an_ioeventfd_once_busy() {
    let vmm = FakeVmm::new();
    let relay = Relay::start(vmm.clone(), Policy::default(), None, None).unwrap();
    for _ in 1..UPGRADE_AFTER {
        relay.ring();
    }
    assert_eq!(vmm.doorbells_registered.load(SeqCst), 0);
    relay.ring();
    relay.ring();
    assert_eq!(vmm.doorbells_registered.load(SeqCst), 1);
    assert_eq!(relay.forwarded(), UPGRADE_AFTER + 1);
    relay.finish();
}

/// The test's ends of one open stream's rings, as its program's.
struct Ends {
    slot: u64,
    tx: Producer<RawRegion>,
    rx: Consumer<RawRegion>,
    /// Bytes read and not yet taken as a frame.
    got: Vec<u8>,
}

impl Ends {
    fn new(p: &Process, slot: u32) -> Self {
        let r = rings(slot.into()).unwrap();
        Self {
            slot: slot.into(),
            tx: Producer::new(p.region, r.to_monitor as usize, CAPACITY, NoNotify).unwrap(),
            rx: Consumer::new(p.region, r.to_guest as usize, CAPACITY, NoNotify).unwrap(),
            got: Vec::new(),
        }
    }

    fn send(&mut self, p: &Process, relay: &Relay, frame: &[u8]) {
        assert_eq!(self.tx.write(frame), Ok(frame.len()));
        p.signal(relay, self.slot, bell::DATA);
    }

    /// The next whole frame the relay writes: its kind and body.
    fn recv(&mut self) -> (u16, Vec<u8>) {
        eventually("answered", || {
            let mut chunk = [0u8; 512];
            match self.rx.read(&mut chunk) {
                Ok(n) => self.got.extend_from_slice(&chunk[..n]),
                Err(Error::WouldBlock) => {}
                Err(e) => panic!("stream {}: {e}", self.slot),
            }
            let (header, body) = frame::split(&self.got).ok()?;
            let taken = (header.kind, body.to_vec());
            self.got.drain(..frame::HEADER + body.len());
            Some(taken)
        })
    }

    /// Whether the relay has written nothing not taken yet.
    fn quiet(&mut self) -> bool {
        let mut chunk = [0u8; 512];
        match self.rx.read(&mut chunk) {
            Ok(n) => {
                self.got.extend_from_slice(&chunk[..n]);
                false
            }
            Err(Error::WouldBlock) => self.got.is_empty(),
            Err(e) => panic!("stream {}: {e}", self.slot),
        }
    }

    /// The code of the `ERROR` frame the relay answers with.
    fn error(&mut self) -> Code {
        let (kind, body) = self.recv();
        assert_eq!(kind, frame::kind::ERROR);
        frame::ErrorBody::decode(&body).unwrap().code
    }
}

fn device_first() -> Vec<u8> {
    let mut buf = [0u8; frame::HEADER + 4];
    let mut e = frame::Encoder::new(&mut buf, frame::kind::DEVICE);
    e.u32(frame::VERSION);
    let n = e.finish().unwrap();
    buf[..n].to_vec()
}

/// Runs `call` on a thread and runtime of its own, as the daemon does.
fn on_the_side<T: Send + 'static>(
    call: impl Future<Output = T> + Send + 'static,
) -> std::thread::JoinHandle<T> {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(call)
    })
}

#[test]
fn the_device_stream_is_the_first_programs_once_and_its_replies_are_checked() {
    use weft_control::device_proto::{self as proto, Request};

    let (link, handle) = device_link();
    let relay = Relay::start(FakeVmm::new(), Policy::default(), Some(link), None).unwrap();
    let mut p = Process::attach(&relay, 0);
    let slot = p.open(&relay, 1);
    let mut agent = Ends::new(&p, slot);
    agent.send(&p, &relay, &device_first());
    assert_eq!(agent.recv(), (proto::kind::ATTACHED, Vec::new()));
    on_the_side({
        let h = handle.clone();
        async move { h.ready().await }
    })
    .join()
    .unwrap()
    .unwrap();

    // A second DEVICE stream, and one of a spawned process, are refused.
    let slot2 = p.open(&relay, 2);
    let mut second = Ends::new(&p, slot2);
    second.send(&p, &relay, &device_first());
    assert_eq!(second.error(), Code::Exists);
    relay.open_region(1).unwrap();
    let mut child = Process::attach(&relay, 1);
    let slot3 = child.open(&relay, 3);
    let mut theirs = Ends::new(&child, slot3);
    theirs.send(&child, &relay, &device_first());
    assert_eq!(theirs.error(), Code::NotAllowed);

    // A request, answered as the protocol says.
    let h = handle.clone();
    let call = on_the_side(async move { h.kill(5).await });
    let (kind, body) = agent.recv();
    let Ok(Request::Kill(target)) = Request::decode(kind, &body) else {
        panic!("not KILL: {kind:#x}");
    };
    assert_eq!(target.pid, 5);
    let mut buf = [0u8; proto::MAX_REPLY];
    let n = proto::Reply::Done {
        request: target.request,
    }
    .encode(&mut buf)
    .unwrap();
    agent.send(&p, &relay, &buf[..n]);
    assert_eq!(call.join().unwrap(), Ok(()));
    // Without a run, no status page to list from: nothing answers.
    let h = handle.clone();
    let listed = on_the_side(async move { h.list().await }).join().unwrap();
    assert_eq!(listed, Err(DeviceError::Gone));

    // A reply to no request breaks the protocol: the stream ends with that
    // status, and the call waiting, and every later one, finds it gone.
    let h = handle.clone();
    let call = on_the_side(async move { h.kill(6).await });
    let (kind, _) = agent.recv();
    assert_eq!(kind, proto::kind::KILL);
    let n = proto::Reply::Done { request: 999 }
        .encode(&mut buf)
        .unwrap();
    agent.send(&p, &relay, &buf[..n]);
    assert_eq!(call.join().unwrap(), Err(DeviceError::Gone));
    let status = rings(slot.into()).unwrap().status as usize;
    eventually("ended the stream", || {
        (p.region.load_u32(status, SeqCst) == Code::Protocol as u32).then_some(())
    });
    let h = handle.clone();
    let later = on_the_side(async move { h.kill(2).await });
    assert_eq!(later.join().unwrap(), Err(DeviceError::Gone));

    drop((agent, second, theirs, p, child));
    relay.finish();
}

#[test]
fn without_a_link_a_device_stream_is_refused_and_an_unused_link_is_gone() {
    let relay = Relay::start(FakeVmm::new(), Policy::default(), None, None).unwrap();
    let mut p = Process::attach(&relay, 0);
    let slot = p.open(&relay, 1);
    let mut agent = Ends::new(&p, slot);
    agent.send(&p, &relay, &device_first());
    assert_eq!(agent.error(), Code::Unsupported);
    drop((agent, p));
    relay.finish();

    let (link, handle) = device_link();
    let mut exits = handle.exits();
    drop(link);
    let h = handle.clone();
    let (ready, spawned) = on_the_side(async move {
        let spawned = h.spawn(SpawnImage::Bundled("hello".into()), Vec::new());
        (h.ready().await, spawned.await)
    })
    .join()
    .unwrap();
    assert_eq!(
        (ready, spawned),
        (Err(DeviceError::Gone), Err(DeviceError::Gone))
    );
    assert_eq!(
        exits.try_recv(),
        Err(tokio::sync::broadcast::error::TryRecvError::Closed)
    );
}

fn fabric_first() -> Vec<u8> {
    let mut buf = [0u8; frame::HEADER + 4];
    let mut e = frame::Encoder::new(&mut buf, frame::kind::FABRIC);
    e.u32(frame::VERSION);
    let n = e.finish().unwrap();
    buf[..n].to_vec()
}

fn fabric_request(r: weft_control::fabric_proto::Request<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; frame::HEADER + frame::MAX_BODY];
    let n = r.encode(&mut buf).unwrap();
    buf.truncate(n);
    buf
}

/// Opens a FABRIC stream in `p`'s region and checks the monitor is ready.
fn fabric_stream(p: &mut Process, relay: &Relay, request: u32) -> Ends {
    let slot = p.open(relay, request);
    let mut ends = Ends::new(p, slot);
    ends.send(p, relay, &fabric_first());
    assert_eq!(
        ends.recv(),
        (weft_control::fabric_proto::kind::READY, Vec::new())
    );
    ends
}

#[test]
fn fabric_calls_reach_the_link_and_are_answered_by_id_in_any_order() {
    use weft_control::device_proto::ArgList;
    use weft_control::fabric_proto::{Reply, Request, SpawnHead, kind, source};
    use weft_fabric::local::{LocalRequest, LocalResponse, Program};
    use weft_fabric::wire::Device;

    let (link, mut calls) = tokio::sync::mpsc::channel(4);
    let relay = Relay::start(FakeVmm::new(), Policy::default(), None, Some(link)).unwrap();
    // A spawned process's stream, not only the first program's.
    relay.open_region(1).unwrap();
    let mut p = Process::attach(&relay, 1);
    let mut app = fabric_stream(&mut p, &relay, 1);

    // Three requests in flight at once.
    app.send(
        &p,
        &relay,
        &fabric_request(Request::Wait {
            request: 10,
            limit_secs: 5,
            pid: "b:7",
        }),
    );
    app.send(
        &p,
        &relay,
        &fabric_request(Request::Devices {
            request: 11,
            available: false,
        }),
    );
    // In several IMAGE frames.
    let module = vec![7u8; 2500];
    let mut raw = [0u8; 32];
    let head = SpawnHead {
        request: 12,
        source: source::MODULE,
        image_len: module.len() as u32,
        tier: weft_control::process::tier::COMPILED,
    };
    let spawn = Request::Spawn {
        head,
        device: Some("b"),
        args: ArgList::new(&["app.wasm", "x"], &mut raw).unwrap(),
    };
    app.send(&p, &relay, &fabric_request(spawn));
    for chunk in module.chunks(1000) {
        let image = Request::Image { request: 12, chunk };
        app.send(&p, &relay, &fabric_request(image));
    }

    let mut next = || match calls.blocking_recv().unwrap() {
        super::FabricAsk::Call(call) => call,
        other => panic!("not a call: {other:?}"),
    };
    let wait = next();
    assert_eq!(
        wait.request,
        LocalRequest::Wait {
            pid: "b:7".into(),
            limit_secs: 5
        }
    );
    let devices = next();
    assert_eq!(devices.request, LocalRequest::Devices { available: false });
    let spawned = next();
    assert_eq!(
        spawned.request,
        LocalRequest::Spawn {
            device: Some("b".into()),
            program: Program::Module { bytes: module },
            args: vec!["app.wasm".into(), "x".into()],
            engine: Some(weft_fabric::wire::Engine::Aot),
        }
    );
    // Answered last to first.
    spawned
        .reply
        .send(LocalResponse::Spawned { pid: "b:7".into() })
        .unwrap();
    let (k, body) = app.recv();
    assert_eq!(
        Reply::decode(k, &body),
        Ok(Reply::Spawned {
            request: 12,
            pid: "b:7"
        })
    );
    let alpha = Device {
        name: "alpha".into(),
        id: "00aa".into(),
        available: true,
        addresses: vec!["10.0.0.1:7447".into()],
        figures: None,
    };
    devices
        .reply
        .send(LocalResponse::Devices {
            devices: vec![alpha],
        })
        .unwrap();
    let (k, body) = app.recv();
    let Ok(Reply::Devices { request, devices }) = Reply::decode(k, &body) else {
        panic!("not a device list: {k:#x}");
    };
    assert_eq!(request, 11);
    let listed: Vec<_> = devices.iter().collect();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].name, listed[0].id), ("alpha", "00aa"));
    assert!(listed[0].addresses.iter().eq(["10.0.0.1:7447"]));
    // An answer that does not fit the call is a FAILED reply, not silence.
    wait.reply.send(LocalResponse::Done).unwrap();
    let (k, body) = app.recv();
    assert_eq!(k, kind::FAILED);
    let Ok(Reply::Failed {
        request: 10,
        message,
    }) = Reply::decode(k, &body)
    else {
        panic!("not FAILED for 10");
    };
    assert!(message.contains("Exit"), "{message}");

    // A dropped call is answered too.
    app.send(
        &p,
        &relay,
        &fabric_request(Request::Kill {
            request: 13,
            pid: "a:99",
        }),
    );
    drop(next());
    let (k, body) = app.recv();
    assert_eq!(
        Reply::decode(k, &body),
        Ok(Reply::Failed {
            request: 13,
            message: "the fabric daemon dropped the call"
        })
    );
    drop((app, p));
    relay.finish();
}

#[test]
fn a_watching_stream_interleaves_events_with_replies_and_ends_with_its_writer() {
    use super::{FabricAsk, FabricEvent, FabricWatch};
    use weft_control::fabric_proto::{Event, Reply, Request, kind};
    use weft_fabric::local::LocalResponse;

    let (link, mut calls) = tokio::sync::mpsc::channel(4);
    let relay = Relay::start(FakeVmm::new(), Policy::default(), None, Some(link)).unwrap();
    let mut p = Process::attach(&relay, 0);
    let mut app = fabric_stream(&mut p, &relay, 1);
    let event = |(k, body): (u16, Vec<u8>)| {
        assert_eq!(k, kind::EVENT);
        format!("{:?}", Event::decode(&body).unwrap())
    };

    app.send(&p, &relay, &fabric_request(Request::Watch { request: 20 }));
    let Some(FabricAsk::Watch(granted)) = calls.blocking_recv() else {
        panic!("no watch asked for");
    };
    let (publish, events) = tokio::sync::broadcast::channel(16);
    let watch = FabricWatch {
        available: vec!["a".into()],
        events,
    };
    granted.send(watch).unwrap();
    let (k, body) = app.recv();
    assert_eq!(Reply::decode(k, &body), Ok(Reply::Watching { request: 20 }));
    assert_eq!(event(app.recv()), r#"DeviceUp("a")"#);
    publish.send(FabricEvent::DeviceDown("c".into())).unwrap();
    assert_eq!(event(app.recv()), r#"DeviceDown("c")"#);

    // One watch per stream.
    app.send(&p, &relay, &fabric_request(Request::Watch { request: 21 }));
    let (k, body) = app.recv();
    assert!(
        matches!(Reply::decode(k, &body), Ok(Reply::Failed { request: 21, message }) if message.contains("already")),
        "{k:#x}"
    );

    // A call on the watching stream is answered among the events.
    let devices = Request::Devices {
        request: 22,
        available: true,
    };
    app.send(&p, &relay, &fabric_request(devices));
    let Some(FabricAsk::Call(call)) = calls.blocking_recv() else {
        panic!("no call");
    };
    publish
        .send(FabricEvent::Ended {
            pid: "b:3".into(),
            status: 3,
        })
        .unwrap();
    call.reply
        .send(LocalResponse::Devices {
            devices: Vec::new(),
        })
        .unwrap();
    let mut got = [app.recv(), app.recv()];
    got.sort();
    assert_eq!(got[0].0, kind::DEVICE_LIST);
    assert_eq!(event(got[1].clone()), r#"Ended { pid: "b:3", status: 3 }"#);

    // The program closes its end: the watch ends with it.
    app.tx.close();
    p.signal(&relay, app.slot, bell::DATA);
    eventually("ended the watch", || {
        (publish.receiver_count() == 0).then_some(())
    });
    drop((app, p));
    relay.finish();
}

#[test]
fn hostile_fabric_frames_end_only_their_stream() {
    use weft_control::device_proto::ArgList;
    use weft_control::fabric_proto::{Request, SpawnHead, source};

    let (link, _calls) = tokio::sync::mpsc::channel(4);
    let relay = Relay::start(FakeVmm::new(), Policy::default(), None, Some(link)).unwrap();
    let mut p = Process::attach(&relay, 0);
    let status = |ends: &Ends| rings(ends.slot).unwrap().status as usize;
    let hostile: Vec<Vec<u8>> = vec![
        // A kind no request has.
        {
            let mut f = fabric_request(Request::Devices {
                request: 1,
                available: true,
            });
            f[4] = 0x77;
            f
        },
        // An image with no SPAWN.
        fabric_request(Request::Image {
            request: 1,
            chunk: b"x",
        }),
        // A SPAWN whose image is interrupted by another request.
        {
            let mut raw = [0u8; 8];
            let head = SpawnHead {
                request: 2,
                source: source::NAME,
                image_len: 5,
                tier: 0,
            };
            let args = ArgList::new(&["a"], &mut raw).unwrap();
            let mut f = fabric_request(Request::Spawn {
                head,
                device: None,
                args,
            });
            f.extend(fabric_request(Request::Kill {
                request: 3,
                pid: "a:1",
            }));
            f
        },
        // Flags in the header.
        vec![0, 0, 0, 0, 1, 5, 1, 0],
    ];
    for (i, frames) in hostile.iter().enumerate() {
        let mut ends = fabric_stream(&mut p, &relay, 10 + i as u32);
        ends.send(&p, &relay, frames);
        assert_eq!(ends.error(), Code::Protocol, "case {i}");
        let at = status(&ends);
        eventually("ended the stream", || {
            (p.region.load_u32(at, SeqCst) == Code::Protocol as u32).then_some(())
        });
    }
    // The relay still serves new streams.
    let ends = fabric_stream(&mut p, &relay, 20);
    drop((ends, p));
    relay.finish();
}

#[test]
fn without_a_link_a_fabric_stream_is_refused() {
    let relay = Relay::start(FakeVmm::new(), Policy::default(), None, None).unwrap();
    let mut p = Process::attach(&relay, 0);
    let slot = p.open(&relay, 1);
    let mut app = Ends::new(&p, slot);
    app.send(&p, &relay, &fabric_first());
    let (kind, body) = app.recv();
    assert_eq!(kind, frame::kind::ERROR);
    let e = frame::ErrorBody::decode(&body).unwrap();
    assert_eq!(e.code, Code::Unsupported);
    assert!(
        e.message.contains("not a device of a fabric"),
        "{}",
        e.message
    );
    drop((app, p));
    relay.finish();
}

/// An IPC frame as the program writes it.
fn ipc_request(r: weft_control::ipc_proto::Request<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; frame::HEADER + 256];
    let n = r.encode(&mut buf).unwrap();
    buf.truncate(n);
    buf
}

/// A program's IPC stream that provides a service: the relay, the program's
/// side, its stream's ends, the inbox the test delivers to, and what
/// tells when the instance's registration is dropped (withdrawn).
struct Serving {
    relay: Relay,
    p: Process,
    app: Ends,
    inbox: tokio::sync::mpsc::Sender<super::ipc::Delivery>,
    /// The way around the inbox the daemon delivers through.
    direct: std::sync::Arc<super::ipc::Direct>,
    holds: tokio::sync::mpsc::Sender<super::ipc::Hold>,
    withdrawn: tokio::sync::oneshot::Receiver<()>,
}

fn serving() -> Serving {
    use super::ipc::{Inbox, IpcAsk};
    use weft_control::ipc_proto::{Guid, Request, Response, kind};

    let (link, mut asks) = tokio::sync::mpsc::channel(4);
    let relay = Relay::start(FakeVmm::new(), Policy::default(), None, Some(link)).unwrap();
    let mut p = Process::attach(&relay, 0);
    let slot = p.open(&relay, 1);
    let mut app = Ends::new(&p, slot);
    let mut first = [0u8; frame::HEADER + 4];
    let mut e = frame::Encoder::new(&mut first, frame::kind::IPC);
    e.u32(frame::VERSION);
    let n = e.finish().unwrap();
    app.send(&p, &relay, &first[..n]);
    assert_eq!(app.recv(), (kind::READY, Vec::new()));
    let serve = Request::Serve {
        request: 1,
        guid: Guid::parse("0f0e0d0c-0b0a-0908-0706-050403020100").unwrap(),
        name: "late",
    };
    app.send(&p, &relay, &ipc_request(serve));
    let (inbox, messages) = tokio::sync::mpsc::channel(4);
    let (holds, held) = tokio::sync::mpsc::channel(4);
    let (registration, withdrawn) = tokio::sync::oneshot::channel::<()>();
    let direct = match asks.blocking_recv().unwrap() {
        super::FabricAsk::Ipc(IpcAsk::Serve {
            granted, direct, ..
        }) => {
            granted
                .send(Ok(Inbox {
                    messages,
                    holds: held,
                    registration: Box::new(registration),
                }))
                .unwrap();
            direct
        }
        other => panic!("not a SERVE: {other:?}"),
    };
    let (kind, body) = app.recv();
    assert_eq!(
        Response::decode(kind, &body).unwrap(),
        Response::Serving { request: 1 }
    );
    Serving {
        relay,
        p,
        app,
        inbox,
        direct,
        holds,
        withdrawn,
    }
}

#[test]
fn a_reply_written_just_before_close_reaches_its_requester() {
    use weft_control::ipc_proto::kind;

    let Serving {
        relay,
        mut p,
        mut app,
        inbox,
        direct,
        withdrawn: _withdrawn,
        ..
    } = serving();
    // A first message, taken by the program, shows the delivery task
    // running (until then a message waits in the inbox, after SERVING).
    direct.post(one_way(6), &inbox).unwrap();
    assert_eq!(app.recv().0, kind::MESSAGE);
    // A request comes (written straight into the ring: nothing waits
    // before it); the program answers it and closes the stream at once,
    // without ringing for the reply (the monitor learns of it only
    // through the CLOSE).
    let (way_back, answer) = super::ipc::Answerer::channel();
    direct.post(request(7, b"hello", way_back), &inbox).unwrap();
    assert_eq!(
        inbox.capacity(),
        inbox.max_capacity(),
        "it went through the inbox"
    );
    assert_eq!(app.recv().0, kind::MESSAGE);
    let reply = ipc_request(weft_control::ipc_proto::Request::Reply {
        message: 7,
        data: b"woke",
    });
    assert_eq!(app.tx.write(&reply), Ok(reply.len()));
    app.tx.close();
    let slot = app.slot as u32;
    assert!(matches!(
        p.control(&relay, Request::Close { request: 2, slot }),
        Reply::Closed { .. }
    ));
    assert_eq!(answer.blocking_recv().unwrap(), Ok(b"woke".to_vec()));
    drop((app, p));
    relay.finish();
}

#[test]
fn a_provider_that_closes_its_end_is_withdrawn_at_once() {
    use weft_control::ipc_proto::{IpcError, kind};

    let Serving {
        relay,
        p,
        mut app,
        inbox,
        direct,
        mut withdrawn,
        ..
    } = serving();
    // A request is delivered; its requester (on this device, say) holds
    // its answerer too, as its timeout does.
    let (way_back, answer) = super::ipc::Answerer::channel();
    let held = way_back.clone();
    direct
        .post(request(9, b"never answered", way_back), &inbox)
        .unwrap();
    assert_eq!(app.recv().0, kind::MESSAGE);
    // The program closes its writing end and goes on: nothing it could
    // answer is delivered to it any more, and the request in its hands
    // is answered at once: the provider ended.
    app.tx.close();
    p.signal(&relay, app.slot, bell::DATA);
    eventually("withdrew the instance", || {
        withdrawn
            .try_recv()
            .err()
            .filter(|e| *e == tokio::sync::oneshot::error::TryRecvError::Closed)
    });
    assert!(inbox.is_closed());
    let ended = answer.blocking_recv().unwrap().unwrap_err();
    assert_eq!(ended.0, IpcError::ProviderEnded);
    assert!(held.is_done());
    drop((app, p));
    relay.finish();
}

/// Request `id` carrying `data` for a served instance, answered to `way`.
fn request(id: u64, data: &[u8], way: super::ipc::Answerer) -> super::ipc::Delivery {
    super::ipc::Delivery {
        id,
        request: true,
        sender: "a:1".into(),
        data: data.to_vec(),
        timeout: std::time::Duration::from_secs(5),
        answer: Some(super::ipc::WayBack::new(way)),
    }
}

/// A one-way message for a served instance's queue.
fn one_way(id: u64) -> super::ipc::Delivery {
    super::ipc::Delivery {
        id,
        request: false,
        sender: "a:1".into(),
        data: id.to_le_bytes().to_vec(),
        timeout: std::time::Duration::from_secs(5),
        answer: None,
    }
}

#[test]
fn a_paused_delivery_holds_its_messages_until_resumed_or_handed_over() {
    use super::ipc::Hold;
    use weft_control::ipc_proto::kind;

    let Serving {
        relay,
        p,
        mut app,
        inbox,
        direct,
        holds,
        withdrawn: _withdrawn,
    } = serving();
    let post = |d| direct.post(d, &inbox).unwrap();
    // Paused: PAUSED is written, then nothing while messages queue.
    let (queued, paused) = tokio::sync::oneshot::channel();
    holds.blocking_send(Hold::Pause(queued)).unwrap();
    paused.blocking_recv().unwrap();
    assert_eq!(app.recv(), (kind::PAUSED, Vec::new()));
    post(one_way(1));
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert!(app.quiet(), "a paused delivery wrote a message");
    // Resumed: RESUMED, then the message that waited.
    holds.blocking_send(Hold::Resume).unwrap();
    assert_eq!(app.recv(), (kind::RESUMED, Vec::new()));
    assert_eq!(app.recv().0, kind::MESSAGE);
    // Paused again, then handed over: the queue comes back whole, with
    // what came while paused, and nothing more is written.
    let (queued, paused) = tokio::sync::oneshot::channel();
    holds.blocking_send(Hold::Pause(queued)).unwrap();
    paused.blocking_recv().unwrap();
    assert_eq!(app.recv(), (kind::PAUSED, Vec::new()));
    post(one_way(2));
    let (way, taken) = tokio::sync::oneshot::channel();
    holds.blocking_send(Hold::Surrender(way)).unwrap();
    let mut taken = taken.blocking_recv().unwrap();
    assert_eq!(taken.messages.blocking_recv().unwrap().id, 2);
    post(one_way(3));
    assert_eq!(taken.messages.blocking_recv().unwrap().id, 3);
    assert!(app.quiet(), "a handed-over delivery wrote a message");
    drop((app, p));
    relay.finish();
}

#[test]
fn messages_the_ring_cannot_take_now_wait_and_arrive_whole_in_order() {
    use weft_control::ipc_proto::{Response, kind};

    let Serving {
        relay,
        p,
        mut app,
        inbox,
        direct,
        withdrawn: _withdrawn,
        ..
    } = serving();
    // Eight messages of 60 KiB while the program reads nothing: the first
    // four go straight into the 256 KiB ring, the rest wait (in the inbox,
    // then in the stream's outbox) until the program makes room.
    let big = |id: u64| super::ipc::Delivery {
        data: vec![id as u8; 60 * 1024],
        ..one_way(id)
    };
    for id in 1..=8 {
        direct.post(big(id), &inbox).unwrap();
    }
    assert!(inbox.capacity() < inbox.max_capacity(), "none waited");
    for id in 1..=8u64 {
        // What the program's ring end would say once it read: room.
        p.signal(&relay, app.slot, bell::SPACE);
        let (k, body) = app.recv();
        assert_eq!(k, kind::MESSAGE);
        match Response::decode(k, &body).unwrap() {
            Response::Message { message, data, .. } => {
                assert_eq!(message, id);
                assert!(data.len() == 60 * 1024 && data.iter().all(|&b| b == id as u8));
            }
            other => panic!("not a message: {other:?}"),
        }
    }
    drop((app, p));
    relay.finish();
}
