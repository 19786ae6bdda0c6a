//! A process's title, as `ps` and `top` show it: its command line
//! (`/proc/PID/cmdline`, what `ps -f` and `top -c` print) and its name
//! (`/proc/PID/comm`, 15 bytes, what `top` and `ps -e` print).
//!
//! A forked process (the knot) has its parent's argv. The kernel reads the
//! command line from the memory between the `arg_start` and `arg_end`
//! addresses it keeps for the process; prctl(PR_SET_MM, PR_SET_MM_MAP)
//! points them at a buffer of ours. That call needs no capability as long
//! as it leaves the exe link and the auxiliary vector alone (only
//! CONFIG_CHECKPOINT_RESTORE, which Debian, Ubuntu, Fedora and RHEL
//! kernels have); the single-field PR_SET_MM_ARG_START would need
//! CAP_SYS_RESOURCE, which hosts and containers often withhold. Where the
//! map call fails, the argv area itself is overwritten, cut to its length
//! (the classic way; it shows less when the parent's command line was
//! short).

use super::{Error, Result, check, cstr};

/// What `/proc/self/stat` tells of our memory layout (proc(5), fields 26
/// to 28 and 45 to 51).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub start_code: u64,
    pub end_code: u64,
    pub start_stack: u64,
    pub start_data: u64,
    pub end_data: u64,
    pub start_brk: u64,
    pub arg_start: u64,
    pub arg_end: u64,
    pub env_start: u64,
    pub env_end: u64,
}

/// The layout fields of a `/proc/PID/stat` line. The name (field 2) may
/// hold spaces and parentheses: fields are counted after the last `)`.
pub fn parse_layout(stat: &str) -> Option<Layout> {
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    // After ')' comes field 3: field N is at index N - 3.
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |field: usize| -> Option<u64> { f.get(field - 3)?.parse().ok() };
    Some(Layout {
        start_code: n(26)?,
        end_code: n(27)?,
        start_stack: n(28)?,
        start_data: n(45)?,
        end_data: n(46)?,
        start_brk: n(47)?,
        arg_start: n(48)?,
        arg_end: n(49)?,
        env_start: n(50)?,
        env_end: n(51)?,
    })
}

/// `struct prctl_mm_map` (linux/prctl.h).
#[repr(C)]
struct MmMap {
    start_code: u64,
    end_code: u64,
    start_data: u64,
    end_data: u64,
    start_brk: u64,
    brk: u64,
    start_stack: u64,
    arg_start: u64,
    arg_end: u64,
    env_start: u64,
    env_end: u64,
    auxv: *mut u64,
    auxv_size: u32,
    exe_fd: u32,
}

/// How the command line was set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// The kernel reads it from a buffer of ours, whole.
    Mapped,
    /// Written over the argv area, cut to its length.
    InPlace,
}

/// PR_SET_NAME: our name (`comm`); the kernel keeps its first 15 bytes.
pub fn set_name(name: &str) -> Result<()> {
    let c = cstr(name)?;
    // SAFETY: a valid C string; the kernel copies at most 16 bytes of it.
    check(
        unsafe { libc::prctl(libc::PR_SET_NAME, c.as_ptr()) },
        "prctl PR_SET_NAME",
        name.escape_debug(),
    )?;
    Ok(())
}

fn own_layout() -> Result<Layout> {
    let stat = super::proc::read_text("/proc/self/stat")
        .map_err(|e| Error::new("read", "/proc/self/stat", e))?;
    parse_layout(&stat).ok_or_else(|| {
        Error::new(
            "parse",
            "/proc/self/stat",
            std::io::Error::from(std::io::ErrorKind::InvalidData),
        )
    })
}

/// Our command line becomes `title` (one argument: a title with spaces
/// reads as words in `ps`). The caller must be single-threaded: the
/// current program break is read and handed back to the kernel with the
/// rest of the layout, and a `brk` of another thread in between would be
/// undone.
pub fn set_cmdline(title: &str) -> Result<How> {
    let layout = own_layout()?;
    let buf = cstr(title)?.into_bytes_with_nul();
    // The kernel reads it for as long as the process lives; heap memory
    // (anonymous: the kernel reads a command line from no file mapping).
    let buf: &'static mut [u8] = Box::leak(buf.into_boxed_slice());
    // SAFETY: brk(0) changes nothing and returns the current break.
    let brk = unsafe { libc::syscall(libc::SYS_brk, 0usize) } as u64;
    let map = MmMap {
        start_code: layout.start_code,
        end_code: layout.end_code,
        start_data: layout.start_data,
        end_data: layout.end_data,
        start_brk: layout.start_brk,
        brk,
        start_stack: layout.start_stack,
        arg_start: buf.as_ptr() as u64,
        arg_end: buf.as_ptr() as u64 + buf.len() as u64,
        env_start: layout.env_start,
        env_end: layout.env_end,
        // Zero size: the kernel keeps the auxiliary vector it has.
        auxv: std::ptr::null_mut(),
        auxv_size: 0,
        // -1: the exe link stays (changing it needs CAP_CHECKPOINT_RESTORE).
        exe_fd: u32::MAX,
    };
    // SAFETY: a valid prctl_mm_map of exactly the size passed; every
    // address but arg_start/arg_end is the one the kernel gave us, and
    // those bound a buffer that lives as long as the process.
    let ret = unsafe {
        libc::prctl(
            libc::PR_SET_MM,
            libc::PR_SET_MM_MAP as libc::c_ulong,
            &map as *const MmMap,
            std::mem::size_of::<MmMap>() as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    if ret == 0 {
        return Ok(How::Mapped);
    }
    let mapped = Error::last("prctl PR_SET_MM_MAP", "");
    match mapped.errno() {
        // No CONFIG_CHECKPOINT_RESTORE (EINVAL), or a policy refuses it.
        Some(libc::EINVAL) | Some(libc::EPERM) | Some(libc::EACCES) => {
            in_place(&layout, title);
            Ok(How::InPlace)
        }
        _ => Err(mapped),
    }
}

/// Overwrite the argv area with `title`, cut to fit, NUL-padded: the
/// kernel shows up to its last byte, which stays NUL.
fn in_place(layout: &Layout, title: &str) {
    let len = layout.arg_end.saturating_sub(layout.arg_start) as usize;
    if len == 0 || layout.arg_start == 0 {
        return;
    }
    let bytes = title.as_bytes();
    let keep = bytes.len().min(len - 1);
    // SAFETY: [arg_start, arg_end) is our own argv strings, as the kernel
    // laid them out at exec: mapped, writable (the stack) and ours for
    // the life of the process. Nothing reads argv after this but the
    // kernel (std's `env::args` would read the title).
    unsafe {
        let p = layout.arg_start as *mut u8;
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, keep);
        std::ptr::write_bytes(p.add(keep), 0, len - keep);
    }
}

/// `in_place` on our own argv area: for the test of that way.
#[cfg(test)]
pub(crate) fn set_cmdline_in_place(title: &str) -> Result<()> {
    in_place(&own_layout()?, title);
    Ok(())
}

#[cfg(test)]
#[path = "proctitle_tests.rs"]
mod tests;
