use super::*;

#[test]
fn only_a_missing_proc_file_goes_without_its_mask() {
    let err =
        |errno| crate::sys::Error::new("openat2", "x", std::io::Error::from_raw_os_error(errno));
    assert!(matches!(
        missing_is_none(Err::<(), _>(err(libc::ENOENT))),
        Ok(None)
    ));
    assert!(matches!(missing_is_none(Ok(1)), Ok(Some(1))));
    for errno in [
        libc::EACCES,
        libc::ELOOP,
        libc::EXDEV,
        libc::ENOMEM,
        libc::EPERM,
        libc::EIO,
    ] {
        assert!(
            missing_is_none(Err::<(), _>(err(errno))).is_err(),
            "errno {errno}"
        );
    }
}
