//! Real, dynamically linked, multi-threaded programs run under the default
//! system call filter: a glibc program that starts threads (glibc tries
//! clone3 first and falls back to clone on ENOSYS), and Debian's Python
//! with threads and sockets.

use super::seccomp::{copy_libraries, program, secprobe};
use super::*;

#[test]
fn a_dynamic_multithreaded_glibc_program_runs_under_the_filter() {
    let mut fx = fixture!();
    let built = secprobe(&fx, true);
    require!(built.is_ok(), built.err().unwrap_or_default());
    fx.command(
        "threads",
        &program("/bin/secprobe-dyn", &["threads", "32"], ""),
    );
    let out = fx.run("threads", &[]);
    assert_eq!(ok(&out), "threads=ok\n", "{}", stderr(&out));
    // And it is filtered: the same binary's checks.
    fx.command("checks", &program("/bin/secprobe-dyn", &[], ""));
    let v = kv(&ok(&fx.run("checks", &[])));
    assert_eq!(v["clone3"], "ENOSYS");
    assert_eq!(v["pthread"], "ok");
    assert_eq!(v["keyctl"], "EPERM");
}

/// Debian's python3 on this host (`/usr/bin/python3`, a symlink to
/// python3.X): (binary, its stdlib dir).
fn debian_python() -> Option<(PathBuf, PathBuf)> {
    let bin = fs::canonicalize("/usr/bin/python3").ok()?;
    let name = bin.file_name()?.to_str()?.to_string();
    let lib = Path::new("/usr/lib").join(&name);
    (name.starts_with("python3.") && lib.join("threading.py").is_file()).then_some((bin, lib))
}

const PY: &str = r#"
import socket, sys, threading
srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.bind(("127.0.0.1", 0))
srv.listen(16)
port = srv.getsockname()[1]
N = 8
def serve():
    for _ in range(N):
        c, _ = srv.accept()
        with c:
            c.sendall(c.recv(64).upper())
server = threading.Thread(target=serve)
server.start()
got, lock = [], threading.Lock()
def client(i):
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"hello %d" % i)
        r = s.recv(64)
    with lock:
        got.append(r)
clients = [threading.Thread(target=client, args=(i,)) for i in range(N)]
for t in clients: t.start()
for t in clients: t.join()
server.join()
want = sorted(b"HELLO %d" % i for i in range(N))
print("python", sys.version_info[0], "replies", len(got), "match", sorted(got) == want)
"#;

#[test]
fn python_with_threads_and_sockets_runs_under_the_filter() {
    let mut fx = fixture!();
    let py = debian_python();
    require!(
        py.is_some(),
        "no Debian python3 in /usr/bin (apt-get install python3-minimal)"
    );
    let (bin, lib) = py.expect("checked above");
    let name = bin.file_name().unwrap().to_str().unwrap().to_string();
    let in_image = fx.set.p("images/bb/usr/bin").join(&name);
    fs::create_dir_all(in_image.parent().unwrap()).unwrap();
    fs::copy(&bin, &in_image).unwrap();
    copy_libraries(&fx, &bin);
    // The standard library from the host, as a read-only volume.
    let stdlib = format!("/usr/lib/{name}");
    fs::create_dir_all(fx.set.p("images/bb").join(stdlib.trim_start_matches('/'))).unwrap();
    fx.set.write(
        "sandboxes/box.yaml",
        format!(
            "image-dir: {images}\nreadonly-paths: {{/pylib: {lib}}}\n\
             allow-users: [1000-1999]\nallow-groups: [1000-1999]\n",
            images = fx.set.s("images"),
            lib = lib.display(),
        ),
    );
    fx.command(
        "python",
        &program(
            &format!("/usr/bin/{name}"),
            &["-I", "-B", "-c", PY],
            &format!("volumes:\n  {stdlib}: !Readonly /pylib\n"),
        ),
    );
    let out = fx.run("python", &[]);
    assert_eq!(
        ok(&out),
        "python 3 replies 8 match True\n",
        "{}",
        stderr(&out)
    );
}
