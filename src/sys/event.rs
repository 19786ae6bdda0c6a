//! epoll(7): the one blocking wait of the supervisor.

use std::os::fd::{AsFd, BorrowedFd};

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};

use super::Error;

fn err(op: &'static str, e: nix::Error) -> Error {
    Error::new(op, "epoll", std::io::Error::from_raw_os_error(e as i32))
}

/// A set of fds to wait on, each with a token.
pub struct Poller {
    ep: Epoll,
}

impl Poller {
    pub fn new() -> Result<Poller, Error> {
        Ok(Poller {
            ep: Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(|e| err("epoll_create1", e))?,
        })
    }

    /// Watch `fd` for input (and hang-up) under `token`.
    pub fn add(&self, fd: BorrowedFd<'_>, token: u64) -> Result<(), Error> {
        self.ep
            .add(fd, EpollEvent::new(EpollFlags::EPOLLIN, token))
            .map_err(|e| err("epoll_ctl add", e))
    }

    /// Watch `fd` for output (a non-blocking connect that finished) under
    /// `token`.
    pub fn add_out(&self, fd: BorrowedFd<'_>, token: u64) -> Result<(), Error> {
        self.ep
            .add(fd, EpollEvent::new(EpollFlags::EPOLLOUT, token))
            .map_err(|e| err("epoll_ctl add", e))
    }

    /// Watch an fd already added for input instead.
    pub fn watch_in(&self, fd: BorrowedFd<'_>, token: u64) -> Result<(), Error> {
        let mut ev = EpollEvent::new(EpollFlags::EPOLLIN, token);
        self.ep
            .modify(fd, &mut ev)
            .map_err(|e| err("epoll_ctl mod", e))
    }

    pub fn delete(&self, fd: BorrowedFd<'_>) -> Result<(), Error> {
        self.ep.delete(fd).map_err(|e| err("epoll_ctl del", e))
    }

    /// Block until something is ready or `timeout_ms` passes (`None` =
    /// forever). Returns the tokens that are ready.
    pub fn wait(&self, timeout_ms: Option<u64>, out: &mut Vec<u64>) -> Result<(), Error> {
        let mut events = [EpollEvent::empty(); 64];
        let timeout = match timeout_ms {
            None => EpollTimeout::NONE,
            Some(ms) => EpollTimeout::try_from(ms.min(i32::MAX as u64 - 1) as i32)
                .unwrap_or(EpollTimeout::NONE),
        };
        out.clear();
        match self.ep.wait(&mut events, timeout) {
            Ok(n) => {
                out.extend(events[..n].iter().map(|e| e.data()));
                Ok(())
            }
            Err(nix::Error::EINTR) => Ok(()),
            Err(e) => Err(err("epoll_wait", e)),
        }
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.ep.0.as_fd()
    }
}
