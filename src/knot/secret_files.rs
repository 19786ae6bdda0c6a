//! The secret files (`secret-files`): a tmpfs of their own, filled by the
//! knot before the pivot and mounted read-only on `secret-files-dir`.
//! Each file is 0400 and the dir 0500, owned by the workload's uid and gid
//! (on the host); the mount is `ro,nosuid,nodev,noexec` and, where the
//! kernel has it (6.4 and later), `noswap`: the plaintext is in memory
//! only, never on a disk, and goes with the container's mount namespace.

use zeroize::Zeroizing;

use crate::spec::InstanceSpec;
use crate::sys::fs::Resolve;
use crate::sys::mount::{Attrs, Recursive};

use super::seam::Kernel;
use super::steps::{Result, ctx, image_dir};

/// Bytes of a tmpfs page: each file takes at least one.
const PAGE: u64 = 4096;

/// Mount the secret files of `spec` (none: nothing happens).
pub(super) fn mount<K: Kernel>(
    k: &K,
    root: &K::Fd,
    spec: &InstanceSpec,
    files: &[(String, Zeroizing<Vec<u8>>)],
) -> Result<()> {
    let Some(dir) = &spec.secrets.files_dir else {
        return Ok(());
    };
    let t = &dir.path;
    let target = image_dir(
        k,
        root,
        t,
        "secret-files-dir must exist in the image or in a volume",
    )?;
    let what = || format!("secret-files-dir {t}");
    // Room for exactly these files, and no more inodes than they need.
    let size = files
        .iter()
        .map(|(_, c)| (c.len() as u64).div_ceil(PAGE).max(1) * PAGE)
        .sum::<u64>()
        + PAGE;
    let (size, inodes) = (size.to_string(), (files.len() + 2).to_string());
    let opts = [
        ("size", size.as_str()),
        ("nr_inodes", &inodes),
        ("mode", "700"),
    ];
    let mut with_noswap = opts.to_vec();
    with_noswap.push(("noswap", ""));
    let mnt = match k.new_fs("tmpfs", &with_noswap, Attrs::SAFE) {
        Ok(m) => m,
        // Kernels before 6.4 do not know noswap.
        Err(e) if e.errno() == Some(libc::EINVAL) => {
            ctx(k.new_fs("tmpfs", &opts, Attrs::SAFE), what)?
        }
        Err(e) => return ctx(Err(e), what),
    };
    for (name, content) in files {
        ctx(k.replace_file(&mnt, name, content, 0o400), what)?;
        let f = ctx(
            k.openat2(
                &mnt,
                name,
                libc::O_PATH | libc::O_NOFOLLOW,
                0,
                Resolve::BeneathNoSymlinks,
            ),
            what,
        )?;
        ctx(k.chown_chmod(&f, name, dir.uid, dir.gid, 0o400), what)?;
    }
    ctx(k.chown_chmod(&mnt, t, dir.uid, dir.gid, 0o500), what)?;
    ctx(
        k.set_attrs(
            &mnt,
            t,
            Attrs::RDONLY.or(Attrs::SAFE),
            Attrs::NONE,
            Recursive::No,
        ),
        what,
    )?;
    ctx(k.attach(&mnt, &target, t), || {
        format!("mount secret-files-dir {t}")
    })
}
