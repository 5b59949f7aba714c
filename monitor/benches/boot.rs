//! `make bench`: whole-process boot time and monitor memory, each beside its
//! floor measured in the same run.
//!
//! - `hello_wall_ms`: median wall time of `weft run hello` (spawn to exit),
//!   against the floor: a process that only creates a VM, a vCPU and 4 MiB, puts
//!   the vCPU in 64-bit mode and runs it to its first exit (this same binary,
//!   re-executed with `floor`).
//! - `monitor_rss_mib`: peak RSS of `weft run hello` minus the guest RAM it
//!   touched (from `--stats`), against the floor process's peak RSS.
//! - `qemu_hello_wall_ms`, `qemu_tcg_hello_wall_ms`: median wall time of
//!   `weft run --vmm qemu --accel kvm|tcg hello` (the same kernel and
//!   program under QEMU, whole process), against `hello_wall_ms` of the
//!   same run: the ratio is how many times faster Weft's own monitor is
//!   (target: at least 5 against QEMU-KVM).

use kvm_bindings::{kvm_regs, kvm_segment, kvm_userspace_memory_region};
use kvm_ioctls::{Kvm, VcpuExit};
use std::process::Command;
use std::time::Instant;
use weft_benchkit::{Record, median, record};

const RUNS: usize = 41;

fn main() {
    if std::env::args().any(|a| a == "floor") {
        floor();
        return;
    }
    let weft = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/release/weft");
    let me = std::env::current_exe().expect("current exe");
    let time = |cmd: &mut Command| {
        let t = Instant::now();
        let out = cmd.output().expect("spawn");
        assert!(
            out.status.success(),
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        t.elapsed().as_secs_f64() * 1e3
    };
    // Warm the page cache, then alternate so drift hits both alike.
    time(Command::new(weft).args(["run", "hello"]));
    time(Command::new(&me).arg("floor"));
    let qemu = |accel: &str| -> Command {
        let mut c = Command::new(weft);
        c.args(["run", "--vmm", "qemu", "--accel", accel, "hello"]);
        c
    };
    time(&mut qemu("kvm"));
    time(&mut qemu("tcg"));
    let (mut hello, mut floor) = (Vec::new(), Vec::new());
    let (mut qemu_kvm, mut qemu_tcg) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        hello.push(time(Command::new(weft).args(["run", "hello"])));
        floor.push(time(Command::new(&me).arg("floor")));
        qemu_kvm.push(time(&mut qemu("kvm")));
        qemu_tcg.push(time(&mut qemu("tcg")));
    }

    let stats = Command::new(weft)
        .args(["run", "--stats", "hello"])
        .output()
        .expect("spawn weft");
    let text = String::from_utf8_lossy(&stats.stderr).into_owned();
    let field = |name: &str| -> f64 {
        text.split(&format!("{name}="))
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN)
    };
    let rss_mib = (field("rss_peak_kib") - field("guest_resident_kib")) / 1024.0;
    let floor_out = Command::new(&me)
        .arg("floor")
        .output()
        .expect("spawn floor");
    let floor_rss_mib = String::from_utf8_lossy(&floor_out.stdout)
        .trim()
        .parse::<f64>()
        .unwrap_or(f64::NAN)
        / 1024.0;

    let records = [
        Record::new(
            "hello_wall_ms",
            median(&hello),
            "ms",
            "vm_floor: create VM + vCPU + 4 MiB + long mode, run to first exit (whole process)",
            median(&floor),
        ),
        Record::new(
            "qemu_hello_wall_ms",
            median(&qemu_kvm),
            "ms",
            "hello_wall_ms: the same hello under weft's own monitor",
            median(&hello),
        ),
        Record::new(
            "qemu_tcg_hello_wall_ms",
            median(&qemu_tcg),
            "ms",
            "hello_wall_ms: the same hello under weft's own monitor",
            median(&hello),
        ),
        Record::new(
            "monitor_rss_mib",
            rss_mib,
            "MiB",
            "vm_floor process peak RSS",
            floor_rss_mib,
        ),
    ];
    record(
        &records,
        &[
            ("hello_wall_ms", &hello),
            ("vm_floor_ms", &floor),
            ("qemu_hello_wall_ms", &qemu_kvm),
            ("qemu_tcg_hello_wall_ms", &qemu_tcg),
        ],
    )
    .expect("write results");
    for r in &records {
        println!(
            "{:<22} {:>9.3} {:<4} baseline {:>9.3}  ratio {:.2}",
            r.name, r.value, r.unit, r.baseline_value, r.ratio
        );
    }
    println!("phases of one `weft run --stats hello`:");
    for line in text
        .lines()
        .filter(|l| l.contains("phases") || l.contains("exits") || l.contains("memory"))
    {
        println!("  {}", line.trim());
    }
}

/// The floor: the least a KVM process must do to run a 64-bit guest to its
/// first exit. Prints its peak RSS in KiB.
fn floor() {
    const MEM: usize = 4 << 20;
    let kvm = Kvm::new().expect("open /dev/kvm");
    let vm = kvm.create_vm().expect("create VM");
    let ram = vm_memory::GuestMemoryMmap::<()>::from_ranges(&[(vm_memory::GuestAddress(0), MEM)])
        .expect("mmap");
    use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryRegion};
    let host = ram
        .iter()
        .next()
        .and_then(|r| r.get_host_address(vm_memory::MemoryRegionAddress(0)).ok())
        .expect("host address");
    let region = kvm_userspace_memory_region {
        slot: 0,
        flags: 0,
        guest_phys_addr: 0,
        memory_size: MEM as u64,
        userspace_addr: host as u64,
    };
    // SAFETY: `ram` lives until the process exits, after the VM.
    unsafe { vm.set_user_memory_region(region) }.expect("set memory");
    // Identity map of the first 2 MiB: PML4 at 0x1000, PDPT 0x2000, PD 0x3000.
    ram.write_obj(0x2003u64, GuestAddress(0x1000))
        .expect("pml4");
    ram.write_obj(0x3003u64, GuestAddress(0x2000))
        .expect("pdpt");
    ram.write_obj(0x83u64, GuestAddress(0x3000)).expect("pd");
    // out 0x510, eax; hlt
    ram.write_slice(&[0x66, 0xBA, 0x10, 0x05, 0xEF, 0xF4], GuestAddress(0x4000))
        .expect("code");
    let vcpu = vm.create_vcpu(0).expect("create vCPU");
    let mut sregs = vcpu.get_sregs().expect("sregs");
    let code = kvm_segment {
        base: 0,
        limit: 0xFFFF_FFFF,
        selector: 8,
        type_: 0xB,
        present: 1,
        dpl: 0,
        db: 0,
        s: 1,
        l: 1,
        g: 1,
        avl: 0,
        unusable: 0,
        padding: 0,
    };
    sregs.cs = code;
    let data = kvm_segment {
        selector: 0x10,
        type_: 3,
        db: 1,
        l: 0,
        ..code
    };
    (sregs.ds, sregs.es, sregs.ss) = (data, data, data);
    (sregs.cr0, sregs.cr3, sregs.cr4, sregs.efer) = (0x8000_0033, 0x1000, 0x20, 0x500);
    vcpu.set_sregs(&sregs).expect("set sregs");
    vcpu.set_regs(&kvm_regs {
        rip: 0x4000,
        rsp: 0x8000,
        rflags: 2,
        ..Default::default()
    })
    .expect("set regs");
    let mut vcpu = vcpu;
    match vcpu.run().expect("run") {
        VcpuExit::IoOut(0x510, _) => {}
        other => panic!("unexpected first exit {other:?}"),
    }
    let hwm = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        });
    println!("{}", hwm.unwrap_or(0));
}
