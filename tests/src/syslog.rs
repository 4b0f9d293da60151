//! A stand-in for syslogd: a datagram socket bound at a world's `/dev/log`
//! (after [`World::mount_private_dev`]), collecting what is sent to it.
//!
//! The socket is bound from outside, through `/proc/<world>/root/dev/log`,
//! so the records queue in this process's socket without any listener
//! process running in the world.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::world::World;

/// A bound `/dev/log` of one world. The socket file is removed on drop.
pub struct SyslogSink {
    socket: UnixDatagram,
    path: PathBuf,
}

impl SyslogSink {
    /// Binds `/dev/log` in `world` (whose /dev must be its own: see
    /// [`World::mount_private_dev`]), writable by everyone as syslogd's is:
    /// netsetgo logs after it has become the caller.
    pub fn bind(world: &World) -> SyslogSink {
        let dev = world.path("/dev");
        let machine_dev = fs::metadata("/dev").expect("stat /dev");
        let world_dev = fs::metadata(&dev).expect("stat the world's /dev");
        {
            use std::os::unix::fs::MetadataExt;
            assert!(
                (machine_dev.dev(), machine_dev.ino()) != (world_dev.dev(), world_dev.ino()),
                "the world's /dev is the machine's: call mount_private_dev first"
            );
        }
        let path = world.path("/dev/log");
        let socket =
            UnixDatagram::bind(&path).unwrap_or_else(|e| panic!("bind {}: {e}", path.display()));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).expect("chmod /dev/log");
        SyslogSink { socket, path }
    }

    /// Every record received so far and any arriving within `quiet` of the
    /// last one (at most 5 s in all), as text.
    pub fn records(&self, quiet: Duration) -> Vec<String> {
        let start = Instant::now();
        let mut out = Vec::new();
        let mut buf = vec![0u8; 8192];
        self.socket
            .set_read_timeout(Some(quiet))
            .expect("set read timeout");
        while start.elapsed() < Duration::from_secs(5) {
            match self.socket.recv(&mut buf) {
                Ok(n) => out.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
                Err(_) => break,
            }
        }
        out
    }
}

impl Drop for SyslogSink {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}
