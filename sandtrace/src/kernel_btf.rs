//! Kernel struct layouts read from the running kernel's BTF.
//!
//! aya-ebpf has no CO-RE relocations, so the loader looks up the offsets of the few kernel
//! struct fields the programs dereference in `/sys/kernel/btf/vmlinux` and hands them to the
//! programs as [`KernelOffsets`]. aya's `Btf` does not expose type lookup, hence this small
//! reader of the format described at <https://docs.kernel.org/bpf/btf.html>.
//!
//! The whole type section is walked once at parse time: every record's position is kept so
//! that type ids resolve in O(1), and struct/union and function names are indexed in hash
//! maps, so repeated lookups are cheap.

use std::collections::{HashMap, hash_map::Entry};

use anyhow::{Context as _, Result, bail, ensure};
use sandtrace_common::config::{
    KernelOffsets, SB_MOUNTS_LINKED, SB_MOUNTS_LIST, SB_MOUNTS_UNKNOWN,
};

/// Where the running kernel exposes its own BTF (needs `CONFIG_DEBUG_INFO_BTF=y`).
pub const VMLINUX_BTF_PATH: &str = "/sys/kernel/btf/vmlinux";

/// Appended to lookup errors: a missing struct or field means the kernel's layout differs
/// from what sandtrace was written against.
const KERNEL_VERSION_HINT: &str = "this kernel may be too old or too new for sandtrace";

const BTF_MAGIC: u16 = 0xeb9f;
/// `struct btf_header` up to and including `str_len`; later versions may append fields.
const HEADER_LEN: usize = 24;
/// `struct btf_type`: name_off, info, size/type.
const TYPE_RECORD_LEN: usize = 12;
/// Bounds the typedef/const/volatile chains and anonymous-member nesting followed during a
/// lookup, so a malformed (cyclic) blob cannot hang or overflow the stack.
const MAX_RESOLVE_DEPTH: usize = 64;

/// BTF kinds (`BTF_KIND_*` in `include/uapi/linux/btf.h`).
mod kind {
    pub const INT: u32 = 1;
    pub const PTR: u32 = 2;
    pub const ARRAY: u32 = 3;
    pub const STRUCT: u32 = 4;
    pub const UNION: u32 = 5;
    pub const ENUM: u32 = 6;
    pub const FWD: u32 = 7;
    pub const TYPEDEF: u32 = 8;
    pub const VOLATILE: u32 = 9;
    pub const CONST: u32 = 10;
    pub const RESTRICT: u32 = 11;
    pub const FUNC: u32 = 12;
    pub const FUNC_PROTO: u32 = 13;
    pub const VAR: u32 = 14;
    pub const DATASEC: u32 = 15;
    pub const FLOAT: u32 = 16;
    pub const DECL_TAG: u32 = 17;
    pub const TYPE_TAG: u32 = 18;
    pub const ENUM64: u32 = 19;

    /// Human-readable kind, for error messages.
    pub fn name(kind: u32) -> &'static str {
        match kind {
            INT => "an integer",
            PTR => "a pointer",
            ARRAY => "an array",
            STRUCT => "a struct",
            UNION => "a union",
            ENUM | ENUM64 => "an enum",
            FWD => "a forward declaration",
            TYPEDEF => "a typedef",
            VOLATILE | CONST | RESTRICT | TYPE_TAG => "a type qualifier",
            FUNC => "a function",
            FUNC_PROTO => "a function prototype",
            VAR => "a variable",
            DATASEC => "a data section",
            FLOAT => "a float",
            DECL_TAG => "a declaration tag",
            _ => "an unknown kind",
        }
    }

    /// Bytes that follow the 12-byte `btf_type` record of this kind with `vlen` entries,
    /// or `None` for a kind this reader does not know (and so cannot skip).
    pub fn trailing_len(kind: u32, vlen: usize) -> Option<usize> {
        Some(match kind {
            // u32 encoding; btf_var (linkage); btf_decl_tag (component_idx)
            INT | VAR | DECL_TAG => 4,
            // btf_array: type, index_type, nelems
            ARRAY => 12,
            // btf_member: name_off, type, offset
            STRUCT | UNION => 12 * vlen,
            // btf_enum: name_off, val
            ENUM => 8 * vlen,
            // btf_param: name_off, type
            FUNC_PROTO => 8 * vlen,
            // btf_var_secinfo: type, offset, size
            DATASEC => 12 * vlen,
            // btf_enum64: name_off, val_lo32, val_hi32
            ENUM64 => 12 * vlen,
            // FUNC's vlen is its linkage, not a count.
            PTR | FWD | TYPEDEF | VOLATILE | CONST | RESTRICT | FUNC | FLOAT | TYPE_TAG => 0,
            _ => return None,
        })
    }
}

/// A struct or union name can have several distinct definitions in one BTF blob (static
/// types of different compilation units). Offsets are only trusted when there is one.
#[derive(Clone, Copy, Debug)]
enum Definition {
    Unique(u32),
    Ambiguous,
}

/// The types of one BTF blob, indexed for lookups by name.
pub struct KernelBtf {
    types: Vec<u8>,
    strings: Vec<u8>,
    /// Offset in `types` of each record; entry `i` is type id `i + 1` (id 0 is `void`).
    record_offsets: Vec<u32>,
    /// Struct and union definitions by name (forward declarations are not definitions).
    composites: HashMap<Box<str>, Definition>,
    /// BTF `FUNC`s by name (kernel functions, including `bpf_lsm_*` hook stubs), with the id
    /// of their prototype.
    functions: HashMap<Box<str>, u32>,
}

/// One decoded `btf_type` record plus the kind-specific bytes that follow it.
#[derive(Clone, Copy)]
struct TypeRecord<'a> {
    name_off: u32,
    kind: u32,
    vlen: usize,
    kind_flag: bool,
    /// `size` for INT/STRUCT/UNION/ENUM/DATASEC/FLOAT, otherwise the referenced type id.
    size_or_type: u32,
    trailing: &'a [u8],
}

/// Where a member sits in its (outermost) struct.
struct MemberLocation {
    bit_offset: u32,
    type_id: u32,
}

/// The kernel's BTF as aya reads it (program loading and LSM attachment need it), parsed
/// once per process: each parse costs tens of milliseconds here and seconds under emulation.
pub fn aya_btf() -> Result<&'static aya::Btf> {
    static BTF: std::sync::OnceLock<aya::Btf> = std::sync::OnceLock::new();
    if let Some(btf) = BTF.get() {
        return Ok(btf);
    }
    let btf = aya::Btf::parse(vmlinux_bytes()?, aya::Endianness::default())
        .with_context(|| format!("parsing {VMLINUX_BTF_PATH}"))?;
    Ok(BTF.get_or_init(|| btf))
}

/// The raw bytes of [`VMLINUX_BTF_PATH`], read once per process: sysfs hands the 5 MB or so
/// out a page per read, and both [`KernelBtf`] and aya's reader parse them.
fn vmlinux_bytes() -> Result<&'static [u8]> {
    static BYTES: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    if let Some(bytes) = BYTES.get() {
        return Ok(bytes);
    }
    let bytes = std::fs::read(VMLINUX_BTF_PATH).with_context(|| {
        format!(
            "reading the kernel's BTF from {VMLINUX_BTF_PATH}: sandtrace needs a kernel built \
             with CONFIG_DEBUG_INFO_BTF=y"
        )
    })?;
    Ok(BYTES.get_or_init(|| bytes))
}

fn read_u16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

impl KernelBtf {
    /// Reads and indexes the running kernel's BTF from [`VMLINUX_BTF_PATH`].
    pub fn from_sys_fs() -> Result<Self> {
        Self::parse(vmlinux_bytes()?).with_context(|| format!("parsing {VMLINUX_BTF_PATH}"))
    }

    /// Parses a raw BTF blob (header, type section, string section) in native byte order.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let magic = read_u16(bytes, 0).context("BTF blob is shorter than its magic number")?;
        ensure!(
            magic == BTF_MAGIC,
            "not native-endian BTF: magic is {magic:#06x}, expected {BTF_MAGIC:#06x}"
        );
        let field = |at: usize| read_u32(bytes, at).context("BTF header is truncated");
        let header_len = field(4)? as usize;
        ensure!(
            header_len >= HEADER_LEN,
            "BTF header length {header_len} is shorter than the {HEADER_LEN} bytes it must hold"
        );
        let (type_off, type_len) = (field(8)? as usize, field(12)? as usize);
        let (str_off, str_len) = (field(16)? as usize, field(20)? as usize);
        let section = |name: &str, off: usize, len: usize| -> Result<&[u8]> {
            header_len
                .checked_add(off)
                .and_then(|start| Some(start..start.checked_add(len)?))
                .and_then(|range| bytes.get(range))
                .with_context(|| {
                    format!(
                        "BTF {name} section (offset {off}, length {len}) lies outside the \
                         {}-byte blob",
                        bytes.len()
                    )
                })
        };
        let types = section("type", type_off, type_len)?.to_vec();
        let strings = section("string", str_off, str_len)?.to_vec();

        let mut btf = Self {
            types,
            strings,
            record_offsets: Vec::new(),
            composites: HashMap::new(),
            functions: HashMap::new(),
        };
        btf.index_types()?;
        Ok(btf)
    }

    /// Walks the type section once, recording each type's position and indexing names.
    fn index_types(&mut self) -> Result<()> {
        let mut offset = 0;
        while offset < self.types.len() {
            let id = self.record_offsets.len() as u32 + 1;
            let record = self
                .record_at(offset)
                .with_context(|| format!("BTF type {id} at type-section offset {offset}"))?;
            let (kind, name_off) = (record.kind, record.name_off);
            let next = offset + TYPE_RECORD_LEN + record.trailing.len();
            let indexed_name = |btf: &Self| -> Result<Box<str>> {
                Ok(btf
                    .string(name_off)
                    .with_context(|| format!("name of BTF type {id}"))?
                    .into())
            };
            match kind {
                kind::STRUCT | kind::UNION if name_off != 0 => {
                    match self.composites.entry(indexed_name(self)?) {
                        Entry::Vacant(slot) => {
                            slot.insert(Definition::Unique(id));
                        }
                        Entry::Occupied(mut slot) => {
                            slot.insert(Definition::Ambiguous);
                        }
                    }
                }
                kind::FUNC if name_off != 0 => {
                    let name = indexed_name(self)?;
                    self.functions.insert(name, record.size_or_type);
                }
                _ => {}
            }
            self.record_offsets
                .push(u32::try_from(offset).context("BTF type section is over 4 GiB")?);
            offset = next;
        }
        Ok(())
    }

    /// Decodes the record starting at `offset` in the type section.
    fn record_at(&self, offset: usize) -> Result<TypeRecord<'_>> {
        let word = |at: usize| {
            read_u32(&self.types, offset + at).context("type record runs past the type section")
        };
        let (name_off, info, size_or_type) = (word(0)?, word(4)?, word(8)?);
        let kind = (info >> 24) & 0x1f;
        let vlen = (info & 0xffff) as usize;
        let trailing_len = kind::trailing_len(kind, vlen)
            .with_context(|| format!("unknown BTF kind {kind}; sandtrace cannot skip it"))?;
        let start = offset + TYPE_RECORD_LEN;
        let trailing = self
            .types
            .get(start..start + trailing_len)
            .with_context(|| format!("{} record runs past the type section", kind::name(kind)))?;
        Ok(TypeRecord {
            name_off,
            kind,
            vlen,
            kind_flag: info >> 31 == 1,
            size_or_type,
            trailing,
        })
    }

    /// The record of type `id` (`void`, id 0, has none).
    fn record(&self, id: u32) -> Result<TypeRecord<'_>> {
        let offset = id
            .checked_sub(1)
            .and_then(|index| self.record_offsets.get(index as usize))
            .with_context(|| {
                format!("BTF refers to type id {id}, which does not exist (malformed BTF)")
            })?;
        self.record_at(*offset as usize)
    }

    /// The NUL-terminated string at `offset` in the string section.
    fn string(&self, offset: u32) -> Result<&str> {
        let tail = self
            .strings
            .get(offset as usize..)
            .with_context(|| format!("string offset {offset} is past the string section"))?;
        let len = tail
            .iter()
            .position(|&b| b == 0)
            .with_context(|| format!("string at offset {offset} is not NUL-terminated"))?;
        std::str::from_utf8(&tail[..len])
            .with_context(|| format!("string at offset {offset} is not UTF-8"))
    }

    /// The unique struct or union definition called `name`.
    fn composite(&self, name: &str) -> Result<u32> {
        match self.composites.get(name) {
            Some(Definition::Unique(id)) => Ok(*id),
            Some(Definition::Ambiguous) => bail!(
                "kernel BTF has several different definitions of struct `{name}`, so its \
                 layout is ambiguous"
            ),
            None => bail!("kernel BTF has no struct or union `{name}`: {KERNEL_VERSION_HINT}"),
        }
    }

    /// Follows typedefs and const/volatile/restrict/type-tag qualifiers to the underlying type.
    fn strip_aliases(&self, mut id: u32) -> Result<(u32, Option<TypeRecord<'_>>)> {
        for _ in 0..MAX_RESOLVE_DEPTH {
            if id == 0 {
                return Ok((0, None));
            }
            let record = self.record(id)?;
            match record.kind {
                kind::TYPEDEF | kind::CONST | kind::VOLATILE | kind::RESTRICT | kind::TYPE_TAG => {
                    id = record.size_or_type;
                }
                _ => return Ok((id, Some(record))),
            }
        }
        bail!(
            "BTF type {id} is a typedef/qualifier chain deeper than {MAX_RESOLVE_DEPTH} (cyclic?)"
        )
    }

    /// Finds member `name` of composite `record`, looking through anonymous struct and union
    /// members the way C does. The offset is relative to `record`.
    fn find_member(
        &self,
        record: TypeRecord<'_>,
        name: &str,
        depth: usize,
    ) -> Result<Option<MemberLocation>> {
        ensure!(
            depth < MAX_RESOLVE_DEPTH,
            "anonymous members nested deeper than {MAX_RESOLVE_DEPTH} (malformed BTF)"
        );
        for member in record.trailing.chunks_exact(12).take(record.vlen) {
            let word = |at| read_u32(member, at).expect("chunks_exact yields 12-byte members");
            let (name_off, type_id, raw_offset) = (word(0), word(4), word(8));
            // With kind_flag set, the top 8 bits hold the bitfield size.
            let (bit_offset, bitfield_size) = if record.kind_flag {
                (raw_offset & 0x00ff_ffff, raw_offset >> 24)
            } else {
                (raw_offset, 0)
            };
            let location = || {
                self.check_not_bitfield(type_id, bit_offset, bitfield_size)?;
                Ok::<_, anyhow::Error>(MemberLocation {
                    bit_offset,
                    type_id,
                })
            };
            if name_off != 0 {
                if self.string(name_off)? == name {
                    return location().map(Some);
                }
                continue;
            }
            // An anonymous member: a nested struct/union whose members belong to this one.
            if let (_, Some(inner)) = self.strip_aliases(type_id)?
                && matches!(inner.kind, kind::STRUCT | kind::UNION)
                && let Some(found) = self.find_member(inner, name, depth + 1)?
            {
                let bit_offset = bit_offset
                    .checked_add(found.bit_offset)
                    .context("member offset overflows (malformed BTF)")?;
                return Ok(Some(MemberLocation {
                    bit_offset,
                    ..found
                }));
            }
        }
        Ok(None)
    }

    /// Bitfields have no byte offset the programs could read at.
    fn check_not_bitfield(&self, type_id: u32, bit_offset: u32, bitfield_size: u32) -> Result<()> {
        let int_bitfield = match self.strip_aliases(type_id)? {
            // Without kind_flag, a bitfield is an INT narrower than its storage or shifted in it.
            (_, Some(record)) if record.kind == kind::INT => {
                let encoding = read_u32(record.trailing, 0).expect("INT records carry 4 bytes");
                let (bits, shift) = (encoding & 0xff, (encoding >> 16) & 0xff);
                shift != 0 || u64::from(bits) != u64::from(record.size_or_type) * 8
            }
            _ => false,
        };
        ensure!(
            bitfield_size == 0 && !int_bitfield && bit_offset.is_multiple_of(8),
            "it is a bitfield (bit offset {bit_offset}), which the kernel programs cannot read"
        );
        Ok(())
    }

    /// Byte offset of `field_path` inside struct (or union) `struct_name`.
    ///
    /// `field_path` may be dotted to reach into embedded structs (`"f_path.dentry"`,
    /// `"d_name.name"`); each step follows typedefs and qualifiers, and members of anonymous
    /// nested structs and unions are found as C finds them. Pointers are not followed: the
    /// offset is within one object.
    ///
    /// Errors name the struct and field and say the kernel may be too old or too new when the
    /// struct or a field does not exist; bitfields and non-struct steps are errors too.
    pub fn member_offset(&self, struct_name: &str, field_path: &str) -> Result<u32> {
        let full = || format!("{struct_name}.{field_path}");
        let mut id = self.composite(struct_name)?;
        let mut byte_offset: u32 = 0;
        let mut walked = struct_name.to_owned();
        for segment in field_path.split('.') {
            ensure!(
                !segment.is_empty(),
                "field path `{field_path}` has an empty component"
            );
            let (_, record) = self
                .strip_aliases(id)
                .with_context(|| format!("resolving `{walked}`"))?;
            let record = match record {
                Some(r) if matches!(r.kind, kind::STRUCT | kind::UNION) => r,
                other => bail!(
                    "cannot look up `{segment}` in `{walked}` (looking up `{}`): `{walked}` is {}, \
                     not a struct or union",
                    full(),
                    other.map_or("void", |r| kind::name(r.kind)),
                ),
            };
            let member = self
                .find_member(record, segment, 0)
                .with_context(|| format!("field `{segment}` of `{walked}` (looking up `{}`)", full()))?
                .with_context(|| {
                    format!(
                        "`{walked}` has no field `{segment}` (looking up `{}`): {KERNEL_VERSION_HINT}",
                        full()
                    )
                })?;
            byte_offset = byte_offset
                .checked_add(member.bit_offset / 8)
                .with_context(|| format!("offset of `{}` overflows (malformed BTF)", full()))?;
            id = member.type_id;
            walked.push('.');
            walked.push_str(segment);
        }
        Ok(byte_offset)
    }

    /// Size in bytes of struct (or union) `name`.
    pub fn struct_size(&self, name: &str) -> Result<u32> {
        Ok(self.record(self.composite(name)?)?.size_or_type)
    }

    /// Whether the kernel has a function `name` in its BTF. BPF LSM hooks are BTF functions
    /// named `bpf_lsm_<hook>`, so `has_function("bpf_lsm_file_open")` tells whether the
    /// `file_open` hook exists on this kernel.
    pub fn has_function(&self, name: &str) -> bool {
        self.functions.contains_key(name)
    }

    /// The number of parameters of function `name` (a variadic `...` not counted), `None`
    /// when there is no such function or its prototype is malformed.
    pub fn function_params(&self, name: &str) -> Option<usize> {
        let proto = self.record(*self.functions.get(name)?).ok()?;
        if proto.kind != kind::FUNC_PROTO {
            return None;
        }
        // Each parameter is (name offset, type id); the variadic marker is (0, 0).
        let variadic = proto.vlen > 0
            && read_u32(proto.trailing, (proto.vlen - 1) * 8) == Some(0)
            && read_u32(proto.trailing, (proto.vlen - 1) * 8 + 4) == Some(0);
        Some(proto.vlen - usize::from(variadic))
    }
}

/// The kernel struct offsets the eBPF programs need, read from `btf`.
pub fn kernel_offsets(btf: &KernelBtf) -> Result<KernelOffsets> {
    // Only the metadata hooks need a superblock's mounts: an unknown layout denies those,
    // and nothing else.
    let (sb_mounts_layout, mount_sb_link) = [
        (SB_MOUNTS_LIST, "mnt_instance"),
        (SB_MOUNTS_LINKED, "mnt_next_for_sb"),
    ]
    .into_iter()
    .find_map(|(layout, field)| Some((layout, btf.member_offset("mount", field).ok()?)))
    .unwrap_or((SB_MOUNTS_UNKNOWN, 0));
    Ok(KernelOffsets {
        task_pid: btf.member_offset("task_struct", "pid")?,
        task_tgid: btf.member_offset("task_struct", "tgid")?,
        task_exit_code: btf.member_offset("task_struct", "exit_code")?,
        task_real_parent: btf.member_offset("task_struct", "real_parent")?,
        bprm_filename: btf.member_offset("linux_binprm", "filename")?,
        bprm_file: btf.member_offset("linux_binprm", "file")?,
        file_f_path: btf.member_offset("file", "f_path")?,
        file_f_mode: btf.member_offset("file", "f_mode")?,
        file_f_inode: btf.member_offset("file", "f_inode")?,
        inode_i_ino: btf.member_offset("inode", "i_ino")?,
        inode_i_sb: btf.member_offset("inode", "i_sb")?,
        sb_s_dev: btf.member_offset("super_block", "s_dev")?,
        path_mnt: btf.member_offset("path", "mnt")?,
        path_dentry: btf.member_offset("path", "dentry")?,
        dentry_d_parent: btf.member_offset("dentry", "d_parent")?,
        dentry_d_name_name: btf.member_offset("dentry", "d_name.name")?,
        dentry_d_inode: btf.member_offset("dentry", "d_inode")?,
        vfsmount_mnt_root: btf.member_offset("vfsmount", "mnt_root")?,
        file_f_flags: btf.member_offset("file", "f_flags")?,
        mount_mnt: btf.member_offset("mount", "mnt")?,
        mount_mnt_parent: btf.member_offset("mount", "mnt_parent")?,
        mount_mnt_mountpoint: btf.member_offset("mount", "mnt_mountpoint")?,
        task_fs: btf.member_offset("task_struct", "fs")?,
        fs_root: btf.member_offset("fs_struct", "root")?,
        inode_i_mode: btf.member_offset("inode", "i_mode")?,
        task_group_leader: btf.member_offset("task_struct", "group_leader")?,
        task_thread_pid: btf.member_offset("task_struct", "thread_pid")?,
        pid_level: btf.member_offset("pid", "level")?,
        pid_numbers: btf.member_offset("pid", "numbers")?,
        upid_size: btf.struct_size("upid")?,
        upid_nr: btf.member_offset("upid", "nr")?,
        socket_sk: btf.member_offset("socket", "sk")?,
        unix_sock_path: btf.member_offset("unix_sock", "path")?,
        sb_s_magic: btf.member_offset("super_block", "s_magic")?,
        dentry_d_sb: btf.member_offset("dentry", "d_sb")?,
        sb_s_mounts: btf.member_offset("super_block", "s_mounts")?,
        sb_mounts_layout,
        mount_sb_link,
        mount_mnt_ns: btf.member_offset("mount", "mnt_ns")?,
        task_nsproxy: btf.member_offset("task_struct", "nsproxy")?,
        nsproxy_mnt_ns: btf.member_offset("nsproxy", "mnt_ns")?,
        iattr_ia_valid: btf.member_offset("iattr", "ia_valid")?,
        task_flags: btf.member_offset("task_struct", "flags")?,
        task_cred: btf.member_offset("task_struct", "cred")?,
        task_real_cred: btf.member_offset("task_struct", "real_cred")?,
        task_signal: btf.member_offset("task_struct", "signal")?,
        signal_live: btf.member_offset("signal_struct", "live.counter")?,
        bprm_interp: btf.member_offset("linux_binprm", "interp")?,
        task_mm: btf.member_offset("task_struct", "mm")?,
        mm_arg_start: btf.member_offset("mm_struct", "arg_start")?,
        mm_arg_end: btf.member_offset("mm_struct", "arg_end")?,
        fs_pwd: btf.member_offset("fs_struct", "pwd")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds small BTF blobs type by type; ids are assigned in order from 1.
    #[derive(Default)]
    struct BtfBuilder {
        types: Vec<u8>,
        strings: Vec<u8>,
        next_id: u32,
    }

    impl BtfBuilder {
        fn new() -> Self {
            // String offset 0 is the empty name.
            Self {
                strings: vec![0],
                next_id: 1,
                ..Self::default()
            }
        }

        fn name(&mut self, name: &str) -> u32 {
            if name.is_empty() {
                return 0;
            }
            let offset = self.strings.len() as u32;
            self.strings.extend_from_slice(name.as_bytes());
            self.strings.push(0);
            offset
        }

        fn words(&mut self, words: &[u32]) {
            for w in words {
                self.types.extend_from_slice(&w.to_ne_bytes());
            }
        }

        /// Appends a `btf_type` record and returns its id; `trailing` follows it.
        fn record(
            &mut self,
            name: &str,
            kind: u32,
            vlen: u32,
            flag: bool,
            size_or_type: u32,
            trailing: &[u32],
        ) -> u32 {
            let name_off = self.name(name);
            let info = (u32::from(flag) << 31) | (kind << 24) | vlen;
            self.words(&[name_off, info, size_or_type]);
            self.words(trailing);
            self.next_id += 1;
            self.next_id - 1
        }

        fn int(&mut self, name: &str, size: u32) -> u32 {
            self.record(name, kind::INT, 0, false, size, &[size * 8])
        }

        /// `members` are (name, type, bit offset or, with `flag`, bitfield_size << 24 | offset).
        fn composite(
            &mut self,
            kind: u32,
            name: &str,
            size: u32,
            flag: bool,
            members: &[(&str, u32, u32)],
        ) -> u32 {
            let mut trailing = Vec::new();
            for &(member, type_id, offset) in members {
                trailing.extend([self.name(member), type_id, offset]);
            }
            self.record(name, kind, members.len() as u32, flag, size, &trailing)
        }

        fn build(&self) -> Vec<u8> {
            let mut blob = Vec::new();
            let header = [
                HEADER_LEN as u32,
                0,
                self.types.len() as u32,
                self.types.len() as u32,
                self.strings.len() as u32,
            ];
            blob.extend_from_slice(&BTF_MAGIC.to_ne_bytes());
            blob.extend_from_slice(&[1, 0]); // version, flags
            for w in header {
                blob.extend_from_slice(&w.to_ne_bytes());
            }
            blob.extend_from_slice(&self.types);
            blob.extend_from_slice(&self.strings);
            blob
        }
    }

    /// One type of every kind, each with trailing data, so a wrong skip rule shifts every
    /// later record and breaks the lookups that follow.
    fn every_kind(b: &mut BtfBuilder) -> u32 {
        let int = b.int("int", 4);
        let ptr = b.record("", kind::PTR, 0, false, int, &[]);
        b.record("", kind::ARRAY, 0, false, 0, &[int, int, 16]);
        let (red, blue) = (b.name("RED"), b.name("BLUE"));
        b.record("color", kind::ENUM, 2, false, 4, &[red, 0, blue, 1]);
        b.record("fwd_only", kind::FWD, 0, false, 0, &[]);
        b.record("int_t", kind::TYPEDEF, 0, false, int, &[]);
        b.record("", kind::VOLATILE, 0, false, int, &[]);
        b.record("", kind::CONST, 0, false, int, &[]);
        b.record("", kind::RESTRICT, 0, false, ptr, &[]);
        let (a, bb) = (b.name("a"), b.name("b"));
        // The last parameter (0, 0) is the variadic marker.
        let proto = b.record(
            "",
            kind::FUNC_PROTO,
            3,
            false,
            int,
            &[a, int, bb, ptr, 0, 0],
        );
        b.record("do_thing", kind::FUNC, 1, false, proto, &[]);
        let var = b.record("counter", kind::VAR, 0, false, int, &[1]);
        b.record(".data", kind::DATASEC, 2, false, 8, &[var, 0, 4, var, 4, 4]);
        b.record("double", kind::FLOAT, 0, false, 8, &[]);
        b.record("tag", kind::DECL_TAG, 0, false, var, &[u32::MAX]);
        b.record("user", kind::TYPE_TAG, 0, false, int, &[]);
        let (lo, hi) = (b.name("LO"), b.name("HI"));
        b.record("big", kind::ENUM64, 2, false, 8, &[lo, 1, 0, hi, 0, 1]);
        int
    }

    /// struct inner { int x; int y; };
    /// typedef const struct inner inner_t;
    /// struct outer {
    ///     int first;                                  // 0
    ///     union { int u_a; struct { int deep; }; };   // 4
    ///     inner_t nested;                             // 8
    ///     int *ptr;                                   // 16
    ///     unsigned flag:1;                            // 24 (bitfield, kind_flag encoding)
    /// };
    /// struct legacy { int whole; int bits /* INT of 3 bits */; };
    fn sample() -> KernelBtf {
        let mut b = BtfBuilder::new();
        let int = every_kind(&mut b);
        let inner = b.composite(
            kind::STRUCT,
            "inner",
            8,
            false,
            &[("x", int, 0), ("y", int, 32)],
        );
        let const_inner = b.record("", kind::CONST, 0, false, inner, &[]);
        let inner_t = b.record("inner_t", kind::TYPEDEF, 0, false, const_inner, &[]);
        let deep = b.composite(kind::STRUCT, "", 4, false, &[("deep", int, 0)]);
        let anon_union = b.composite(kind::UNION, "", 4, false, &[("u_a", int, 0), ("", deep, 0)]);
        let ptr = b.record("", kind::PTR, 0, false, int, &[]);
        b.composite(
            kind::STRUCT,
            "outer",
            32,
            true,
            &[
                ("first", int, 0),
                ("", anon_union, 32),
                ("nested", inner_t, 64),
                ("ptr", ptr, 128),
                ("flag", int, (1 << 24) | 192),
            ],
        );
        let int3 = b.record("int3", kind::INT, 0, false, 4, &[3]);
        b.composite(
            kind::STRUCT,
            "legacy",
            8,
            false,
            &[("whole", int, 0), ("bits", int3, 32)],
        );
        // Two different definitions sharing a name.
        b.composite(kind::STRUCT, "twice", 4, false, &[("a", int, 0)]);
        b.composite(kind::STRUCT, "twice", 8, false, &[("b", int, 32)]);
        KernelBtf::parse(&b.build()).expect("the hand-built BTF parses")
    }

    fn error_of(result: Result<u32>) -> String {
        format!("{:#}", result.expect_err("the lookup should fail"))
    }

    #[test]
    fn members_through_anonymous_and_typedefd_structs() {
        let btf = sample();
        assert_eq!(btf.member_offset("outer", "first").unwrap(), 0);
        assert_eq!(btf.member_offset("outer", "u_a").unwrap(), 4);
        assert_eq!(
            btf.member_offset("outer", "deep").unwrap(),
            4,
            "anonymous struct in anonymous union"
        );
        assert_eq!(btf.member_offset("outer", "nested").unwrap(), 8);
        assert_eq!(
            btf.member_offset("outer", "nested.y").unwrap(),
            12,
            "through typedef + const"
        );
        assert_eq!(btf.member_offset("outer", "ptr").unwrap(), 16);
        assert_eq!(btf.member_offset("legacy", "whole").unwrap(), 0);
        assert_eq!(btf.struct_size("outer").unwrap(), 32);
        assert_eq!(btf.struct_size("inner").unwrap(), 8);
    }

    #[test]
    fn every_kind_is_skipped_and_functions_are_indexed() {
        let btf = sample();
        assert!(btf.has_function("do_thing"));
        assert!(!btf.has_function("counter"), "a VAR is not a function");
        assert!(!btf.has_function("missing"));
        assert_eq!(
            btf.function_params("do_thing"),
            Some(2),
            "the variadic marker is no parameter"
        );
        assert_eq!(btf.function_params("counter"), None);
        let err = format!("{:#}", btf.struct_size("fwd_only").unwrap_err());
        assert!(err.contains("no struct or union `fwd_only`"), "{err}");
    }

    #[test]
    fn lookup_errors_name_struct_and_field() {
        let btf = sample();
        let err = error_of(btf.member_offset("nonexistent", "pid"));
        assert!(
            err.contains("`nonexistent`") && err.contains("too old or too new"),
            "{err}"
        );
        let err = error_of(btf.member_offset("outer", "nested.z"));
        assert!(
            err.contains("`outer.nested` has no field `z`") && err.contains("too old or too new"),
            "{err}"
        );
        let err = error_of(btf.member_offset("outer", "ptr.x"));
        assert!(err.contains("`outer.ptr` is a pointer"), "{err}");
        let err = error_of(btf.member_offset("outer", "first."));
        assert!(err.contains("empty component"), "{err}");
        let err = error_of(btf.member_offset("twice", "a"));
        assert!(
            err.contains("several different definitions of struct `twice`"),
            "{err}"
        );
    }

    #[test]
    fn bitfields_are_refused() {
        let btf = sample();
        let err = error_of(btf.member_offset("outer", "flag"));
        assert!(
            err.contains("`flag` of `outer`") && err.contains("bitfield"),
            "{err}"
        );
        let err = error_of(btf.member_offset("legacy", "bits"));
        assert!(
            err.contains("`bits` of `legacy`") && err.contains("bitfield"),
            "{err}"
        );
    }

    #[test]
    fn malformed_blobs_are_rejected() {
        let mut b = BtfBuilder::new();
        b.int("int", 4);
        let good = b.build();

        let err = format!(
            "{:#}",
            KernelBtf::parse(&good[..10])
                .err()
                .expect("truncated header")
        );
        assert!(err.contains("header is truncated"), "{err}");

        let mut bad_magic = good.clone();
        bad_magic[0] ^= 0xff;
        let err = format!(
            "{:#}",
            KernelBtf::parse(&bad_magic).err().expect("bad magic")
        );
        assert!(err.contains("magic"), "{err}");

        // Type section length pointing past the blob.
        let mut long_types = good.clone();
        long_types[12..16].copy_from_slice(&1000u32.to_ne_bytes());
        let err = format!(
            "{:#}",
            KernelBtf::parse(&long_types)
                .err()
                .expect("section out of range")
        );
        assert!(err.contains("type section"), "{err}");

        let mut unknown = BtfBuilder::new();
        unknown.record("", 31, 0, false, 0, &[]);
        let err = format!(
            "{:#}",
            KernelBtf::parse(&unknown.build())
                .err()
                .expect("unknown kind")
        );
        assert!(err.contains("unknown BTF kind 31"), "{err}");

        // A struct claiming more members than the section holds.
        let mut short = BtfBuilder::new();
        short.record("s", kind::STRUCT, 5, false, 4, &[0, 0, 0]);
        let err = format!(
            "{:#}",
            KernelBtf::parse(&short.build())
                .err()
                .expect("truncated struct")
        );
        assert!(err.contains("runs past the type section"), "{err}");
    }

    #[test]
    fn typedef_cycles_do_not_hang() {
        let mut b = BtfBuilder::new();
        // Type 1 is a typedef of type 2, which is a typedef of type 1.
        b.record("a_t", kind::TYPEDEF, 0, false, 2, &[]);
        b.record("b_t", kind::TYPEDEF, 0, false, 1, &[]);
        b.composite(kind::STRUCT, "s", 4, false, &[("m", 1, 0)]);
        let btf = KernelBtf::parse(&b.build()).unwrap();
        let err = error_of(btf.member_offset("s", "m.x"));
        assert!(err.contains("cyclic"), "{err}");
    }

    fn host_btf() -> KernelBtf {
        KernelBtf::from_sys_fs().unwrap_or_else(|e| panic!("this host's kernel BTF: {e:#}"))
    }

    #[test]
    fn host_kernel_offsets_are_plausible() {
        let btf = host_btf();
        let offsets = kernel_offsets(&btf).unwrap_or_else(|e| panic!("{e:#}"));
        let task_size = btf.struct_size("task_struct").unwrap();
        assert!(task_size > 1000, "task_struct is {task_size} bytes");
        for (field, offset) in [
            ("pid", offsets.task_pid),
            ("tgid", offsets.task_tgid),
            ("exit_code", offsets.task_exit_code),
            ("real_parent", offsets.task_real_parent),
        ] {
            assert!(
                offset > 0 && offset < task_size,
                "task_struct.{field} at {offset}"
            );
        }
        // pid_t pid; pid_t tgid; are adjacent in every kernel since 2.6.
        assert_eq!(offsets.task_tgid, offsets.task_pid + 4);
        assert_eq!(
            offsets.task_real_parent % 8,
            0,
            "a pointer is 8-byte aligned"
        );
        let bprm_size = btf.struct_size("linux_binprm").unwrap();
        assert!(offsets.bprm_filename > 0 && offsets.bprm_filename < bprm_size);
    }

    #[test]
    fn host_dotted_paths_and_anonymous_members() {
        let btf = host_btf();
        let f_path = btf.member_offset("file", "f_path").unwrap();
        let dentry_in_path = btf.member_offset("path", "dentry").unwrap();
        assert_eq!(
            btf.member_offset("file", "f_path.dentry").unwrap(),
            f_path + dentry_in_path
        );
        let d_name = btf.member_offset("dentry", "d_name").unwrap();
        let name_in_qstr = btf.member_offset("qstr", "name").unwrap();
        assert_eq!(
            btf.member_offset("dentry", "d_name.name").unwrap(),
            d_name + name_in_qstr
        );
        // `qstr.len` is inside an anonymous struct inside an anonymous union.
        assert_eq!(btf.member_offset("qstr", "len").unwrap(), 4);
        assert!(
            btf.has_function("bpf_lsm_file_open"),
            "CONFIG_BPF_LSM=y on this host"
        );
        assert!(btf.has_function("do_sys_openat2"));
        assert!(!btf.has_function("bpf_lsm_no_such_hook"));
    }

    #[test]
    fn host_unknown_names_give_the_documented_error() {
        let btf = host_btf();
        let err = error_of(btf.member_offset("task_struct", "no_such_field"));
        assert!(
            err.contains("`task_struct` has no field `no_such_field`")
                && err.contains("too old or too new"),
            "{err}"
        );
        let err = error_of(btf.member_offset("no_such_struct", "pid"));
        assert!(
            err.contains("no struct or union `no_such_struct`")
                && err.contains("too old or too new"),
            "{err}"
        );
        let err = error_of(btf.member_offset("task_struct", "pid.x"));
        assert!(err.contains("`task_struct.pid` is an integer"), "{err}");
    }
}
