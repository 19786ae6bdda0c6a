use super::*;

use std::io::Read;
use std::os::fd::AsRawFd;

#[test]
fn the_layout_is_read_after_the_name() {
    // Fields 3.. numbered by their own value, with a name that holds
    // spaces and a `)`.
    let fields: Vec<String> = (3..=52).map(|n| n.to_string()).collect();
    let stat = format!("42 (a) b (c) {}\n", fields.join(" "));
    let l = parse_layout(&stat).expect("parsed");
    assert_eq!((l.start_code, l.end_code, l.start_stack), (26, 27, 28));
    assert_eq!((l.start_data, l.end_data, l.start_brk), (45, 46, 47));
    assert_eq!(
        (l.arg_start, l.arg_end, l.env_start, l.env_end),
        (48, 49, 50, 51)
    );
    // Cut short (an old kernel, or a reader without access): none.
    assert!(parse_layout("42 (a) R 1 2 3").is_none());
    assert!(parse_layout("no parenthesis").is_none());
    // Ours: the command line lies before the environment.
    let own = own_layout().expect("own layout");
    assert!(own.arg_start > 0 && own.arg_start < own.arg_end && own.arg_end <= own.env_start);
}

/// Run `f` in a forked child (single-threaded, as the knot is) and return
/// what it prints to the pipe: its own cmdline and comm after `f`.
fn in_child(f: fn()) -> (Vec<u8>, String) {
    let (r, w) = crate::sys::fd::pipe().expect("pipe");
    match crate::sys::process::fork().expect("fork") {
        None => {
            drop(r);
            f();
            let cmdline = std::fs::read("/proc/self/cmdline").unwrap_or_default();
            let comm = std::fs::read("/proc/self/comm").unwrap_or_default();
            let mut out = (cmdline.len() as u32).to_ne_bytes().to_vec();
            out.extend(cmdline);
            out.extend(comm);
            // SAFETY: a valid fd and buffer.
            unsafe { libc::write(w.as_raw_fd(), out.as_ptr().cast(), out.len()) };
            crate::sys::process::exit_now(0)
        }
        Some(pid) => {
            drop(w);
            let mut out = Vec::new();
            std::fs::File::from(r).read_to_end(&mut out).expect("read");
            let exit = crate::sys::process::wait_for(pid).expect("wait");
            assert_eq!(exit.as_status(), 0);
            let n = u32::from_ne_bytes(out[..4].try_into().expect("4 bytes")) as usize;
            let comm = String::from_utf8_lossy(&out[4 + n..])
                .trim_end()
                .to_string();
            (out[4..4 + n].to_vec(), comm)
        }
    }
}

#[test]
fn a_mapped_title_is_the_whole_command_line_and_the_name_is_15_bytes() {
    let (cmdline, comm) = in_child(|| {
        let long = format!("cairn-knot box/{}.0", "w".repeat(300));
        if !matches!(set_cmdline(&long), Ok(How::Mapped)) {
            crate::sys::process::exit_now(3);
        }
        if set_name("box/a-long-process-name.12").is_err() {
            crate::sys::process::exit_now(4);
        }
    });
    assert_eq!(
        cmdline,
        format!("cairn-knot box/{}.0\0", "w".repeat(300)).into_bytes()
    );
    assert_eq!(comm, "box/a-long-proc");
}

#[test]
fn a_title_written_in_place_is_cut_to_the_argv_area() {
    let (cmdline, _) = in_child(|| {
        if set_cmdline_in_place("cairn-knot box/web.0").is_err() {
            crate::sys::process::exit_now(3);
        }
    });
    // The test binary's own argv area (its path at least): the title,
    // then NULs to its end.
    assert!(
        cmdline.starts_with(b"cairn-knot box/web.0\0"),
        "{cmdline:?}"
    );
    assert!(cmdline[20..].iter().all(|&b| b == 0), "{cmdline:?}");
    let (cmdline, _) = in_child(|| {
        if set_cmdline_in_place(&"x".repeat(100_000)).is_err() {
            crate::sys::process::exit_now(3);
        }
    });
    let n = cmdline.len();
    assert!(n > 1 && n < 100_000, "{n}");
    assert!(cmdline[..n - 1].iter().all(|&b| b == b'x'));
    assert_eq!(cmdline[n - 1], 0);
}
