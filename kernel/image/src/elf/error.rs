//! Why an ELF image was refused.
//!
//! Each rule [`parse`](super::parse) enforces has its own variant; `index` fields
//! are program-header indices (as `readelf -l` numbers them), not positions in the
//! sorted plan. The `Display` text names the rule and the offending values.

use core::fmt;

/// Why [`parse`](super::parse) refused an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfError {
    /// The file does not start with `\x7fELF`.
    NotElf,
    /// The file is shorter than the 64-byte ELF header.
    HeaderTruncated { file_len: u64 },
    /// `EI_CLASS` is not `ELFCLASS64`.
    Not64Bit { class: u8 },
    /// `EI_DATA` is not `ELFDATA2LSB`.
    NotLittleEndian { data: u8 },
    /// `EI_VERSION` is not `EV_CURRENT`.
    BadVersion { version: u8 },
    /// `e_type` is `ET_DYN`.
    PositionIndependent,
    /// `e_type` is neither `ET_EXEC` nor `ET_DYN`.
    NotExecutable { e_type: u16 },
    /// `e_machine` is not `EM_X86_64`.
    WrongMachine { machine: u16 },
    /// `e_phnum` is `PN_XNUM` (more than 65534 program headers).
    ExtendedProgramHeaderCount,
    /// `e_phentsize` is not 56.
    BadProgramHeaderSize { size: u16 },
    /// The program-header table does not lie inside the file.
    ProgramHeadersOutOfFile {
        offset: u64,
        count: u16,
        file_len: u64,
    },
    /// A `PT_INTERP` header: the image wants a dynamic loader.
    Interpreter { index: u16 },
    /// A `PT_DYNAMIC` header: the image needs dynamic linking.
    Dynamic { index: u16 },
    /// A `PT_TLS` header.
    ThreadLocalStorage { index: u16 },
    /// No `PT_LOAD` header with a non-zero memory size.
    NoLoadableSegments,
    /// More than `max` non-empty `PT_LOAD` headers.
    TooManySegments { max: usize },
    /// A segment has more file bytes than memory bytes.
    FileLargerThanMemory {
        index: u16,
        file_size: u64,
        mem_size: u64,
    },
    /// A segment's file bytes do not lie inside the file.
    SegmentPastEndOfFile {
        index: u16,
        offset: u64,
        file_size: u64,
        file_len: u64,
    },
    /// A segment's virtual range is not inside the allowed range (or overflows).
    OutsideAllowedRange {
        index: u16,
        vaddr: u64,
        mem_size: u64,
        allowed_start: u64,
        allowed_end: u64,
    },
    /// A segment's `vaddr` and file offset differ modulo the page size.
    Misaligned { index: u16, vaddr: u64, offset: u64 },
    /// Two segments share bytes; `address` is the start of the later one.
    Overlap {
        first: u16,
        second: u16,
        address: u64,
    },
    /// Two segments with different flags touch the same page.
    SharedPageFlags { first: u16, second: u16, page: u64 },
    /// The entry point is not inside an executable segment.
    EntryNotExecutable { entry: u64 },
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::NotElf => f.write_str("not an ELF file"),
            Self::HeaderTruncated { file_len } => {
                write!(
                    f,
                    "file too short for an ELF header ({file_len} bytes, need 64)"
                )
            }
            Self::Not64Bit { class } => write!(f, "not a 64-bit ELF file (EI_CLASS {class})"),
            Self::NotLittleEndian { data } => {
                write!(f, "not a little-endian ELF file (EI_DATA {data})")
            }
            Self::BadVersion { version } => write!(f, "unsupported ELF version {version}"),
            Self::PositionIndependent => f.write_str(
                "position-independent executables are not supported; \
                 link with -C relocation-model=static",
            ),
            Self::NotExecutable { e_type } => {
                write!(f, "not an executable (e_type {e_type}, expected ET_EXEC)")
            }
            Self::WrongMachine { machine } => {
                write!(
                    f,
                    "not an x86_64 executable (e_machine {machine}, expected 62)"
                )
            }
            Self::ExtendedProgramHeaderCount => {
                f.write_str("too many program headers (extended numbering is not supported)")
            }
            Self::BadProgramHeaderSize { size } => {
                write!(f, "program-header entry size is {size}, expected 56")
            }
            Self::ProgramHeadersOutOfFile {
                offset,
                count,
                file_len,
            } => write!(
                f,
                "program-header table ({count} entries at offset {offset:#x}) \
                 extends past the end of the file ({file_len:#x} bytes)"
            ),
            Self::Interpreter { index } => write!(
                f,
                "segment {index} is PT_INTERP: dynamically linked executables are not supported"
            ),
            Self::Dynamic { index } => write!(
                f,
                "segment {index} is PT_DYNAMIC: dynamically linked executables are not supported"
            ),
            Self::ThreadLocalStorage { index } => {
                write!(
                    f,
                    "segment {index} is PT_TLS: thread-local storage is not supported"
                )
            }
            Self::NoLoadableSegments => f.write_str("no loadable (PT_LOAD) segment"),
            Self::TooManySegments { max } => {
                write!(
                    f,
                    "too many loadable segments (at most {max} are supported)"
                )
            }
            Self::FileLargerThanMemory {
                index,
                file_size,
                mem_size,
            } => write!(
                f,
                "segment {index} has more file bytes than memory bytes \
                 (file size {file_size:#x} > memory size {mem_size:#x})"
            ),
            Self::SegmentPastEndOfFile {
                index,
                offset,
                file_size,
                file_len,
            } => write!(
                f,
                "segment {index} extends past the end of the file \
                 (offset {offset:#x} + {file_size:#x} > {file_len:#x})"
            ),
            Self::OutsideAllowedRange {
                index,
                vaddr,
                mem_size,
                allowed_start,
                allowed_end,
            } => {
                write!(
                    f,
                    "segment {index} at {vaddr:#x} + {mem_size:#x} is outside the allowed \
                     virtual range {allowed_start:#x}..{allowed_end:#x}"
                )
            }
            Self::Misaligned {
                index,
                vaddr,
                offset,
            } => write!(
                f,
                "segment {index} is misaligned: virtual address {vaddr:#x} and file offset \
                 {offset:#x} differ modulo 4096"
            ),
            Self::Overlap {
                first,
                second,
                address,
            } => write!(
                f,
                "segments {first} and {second} overlap (segment {second} starts at {address:#x}, \
                 inside segment {first})"
            ),
            Self::SharedPageFlags {
                first,
                second,
                page,
            } => write!(
                f,
                "segments {first} and {second} share the page at {page:#x} \
                 but have different permissions"
            ),
            Self::EntryNotExecutable { entry } => {
                write!(
                    f,
                    "entry point {entry:#x} is not inside an executable segment"
                )
            }
        }
    }
}
