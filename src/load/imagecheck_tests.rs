use std::fs;
use std::os::unix::fs::symlink;

use super::*;

/// An image dir with everything `spec::tests::sample` needs: /bin/srv,
/// the four volume mount points, /etc/hosts and /etc/resolv.conf.
fn image() -> (tempfile::TempDir, InstanceSpec) {
    let dir = tempfile::tempdir().expect("tempdir");
    let img = dir.path().join("web");
    for d in ["bin", "var/data", "ro", "tmp", "state", "etc"] {
        fs::create_dir_all(img.join(d)).expect("mkdir");
    }
    for f in ["bin/srv", "etc/hosts", "etc/resolv.conf"] {
        fs::write(img.join(f), "").expect("file");
    }
    let mut spec = crate::spec::tests::sample("");
    spec.image_dir = dir.path().to_path_buf();
    spec.image = "web".into();
    (dir, spec)
}

fn errors(f: &Findings) -> Vec<String> {
    f.errors.iter().map(|e| e.to_string()).collect()
}

#[test]
fn a_complete_image_passes() {
    let (_d, spec) = image();
    let f = check(&spec, "/img/web/config.yaml");
    assert!(f.errors.is_empty() && f.warnings.is_empty(), "{f:?}");
}

#[test]
fn a_missing_executable_workdir_or_mount_point_is_an_error_naming_it() {
    let (d, mut spec) = image();
    let img = d.path().join("web");
    fs::remove_file(img.join("bin/srv")).expect("rm");
    fs::remove_dir(img.join("tmp")).expect("rmdir");
    spec.workdir = "/srv/app".into();
    let e = errors(&check(&spec, "/img/web/config.yaml"));
    assert_eq!(e.len(), 3, "{e:?}");
    assert!(e.iter().any(|m| m.contains("executable") && m.contains("/bin/srv does not exist in the image")), "{e:?}");
    assert!(
        e.iter()
            .any(|m| m.contains("workdir") && m.contains("/srv/app does not exist")),
        "{e:?}"
    );
    assert!(
        e.iter()
            .any(|m| m.contains("volumes./tmp") && m.contains("mount point /tmp does not exist")),
        "{e:?}"
    );
    assert!(
        e.iter().all(|m| m.starts_with("/img/web/config.yaml")),
        "{e:?}"
    );
}

#[test]
fn wrong_kinds_and_symlinked_mount_points_are_errors() {
    let (d, mut spec) = image();
    let img = d.path().join("web");
    fs::remove_dir(img.join("ro")).expect("rmdir");
    symlink("/etc", img.join("ro")).expect("symlink");
    spec.executable = "/bin".into();
    spec.workdir = "/bin/srv".into();
    let e = errors(&check(&spec, "/f"));
    assert!(e.iter().any(|m| m.contains("/bin is a directory")), "{e:?}");
    assert!(
        e.iter().any(|m| m.contains("/bin/srv is not a directory")),
        "{e:?}"
    );
    assert!(
        e.iter()
            .any(|m| m.contains("mount point /ro leads through a symlink")),
        "{e:?}"
    );
}

#[test]
fn paths_a_volume_provides_are_not_looked_for_in_the_image() {
    let (_d, mut spec) = image();
    // The program and the workdir come with the /var/data volume.
    spec.executable = "/var/data/bin/app".into();
    spec.workdir = "/var/data".into();
    let f = check(&spec, "/f");
    assert!(f.errors.is_empty(), "{f:?}");
}

#[test]
fn an_image_without_etc_hosts_is_a_warning_or_with_mount_true_an_error() {
    let (d, mut spec) = image();
    fs::remove_file(d.path().join("web/etc/hosts")).expect("rm");
    spec.hosts_file.extra_lines = vec!["10.1.1.1 db".into()];
    let f = check(&spec, "/f");
    assert!(f.errors.is_empty(), "{f:?}");
    assert_eq!(f.warnings.len(), 1, "{f:?}");
    assert!(f.warnings[0].contains("no regular /etc/hosts"), "{f:?}");
    spec.hosts_file.mount = Some(true);
    let e = errors(&check(&spec, "/f"));
    assert!(
        e.iter()
            .any(|m| m.contains("hosts-file") && m.contains("fails every start")),
        "{e:?}"
    );
    spec.hosts_file.mount = Some(false);
    let f = check(&spec, "/f");
    assert!(f.errors.is_empty() && f.warnings.is_empty(), "{f:?}");
}

#[test]
fn a_missing_image_is_an_error() {
    let (_d, mut spec) = image();
    spec.image = "gone".into();
    let e = errors(&check(&spec, "/f"));
    assert!(
        e.len() == 1 && e[0].contains("image \"gone\" not found"),
        "{e:?}"
    );
}
